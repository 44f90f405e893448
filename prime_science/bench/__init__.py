"""Benchmarks: throughput of the library's kernels, with their baselines timed in the same run.

A tool layer beside the runner and the report: it imports the science packages, and only the
command line and the ``benchmarks/`` scripts import it.

* :mod:`.timing` — steady-state call timing and compile time.
* :mod:`.driver` — the harness every throughput suite shares (plan, budgets, memory checks,
  ratios to numpy, ``<suite>.json`` and ``.md``).
* :mod:`.beta_bernoulli_sample`, :mod:`.probit_scoring`, :mod:`.hill_climb`, :mod:`.ope` — the
  suites.
* :mod:`.registry` — the suites by name; :mod:`.command` — ``prime-science bench``.
* :mod:`.bellman`, :mod:`.meta_prior_fit`, :mod:`.membership` — whole-fit timings run by
  ``benchmarks/`` scripts.
"""

__all__: list[str] = []
