"""Run the benchmark suites (Beta–Bernoulli sampling, probit scoring, hill climbing); as
``prime-science bench``.

From the repository root, with the package installed (``pip install -e .``) or on the path::

    PYTHONPATH=. python benchmarks/run.py --quick
    PYTHONPATH=. python benchmarks/run.py --sizes 1e5 1e6 --batches 1 256 --max-seconds 30

See ``benchmarks/README.md`` and :mod:`prime_science.bench`.
"""

from prime_science.bench.command import main

if __name__ == "__main__":
    raise SystemExit(main())
