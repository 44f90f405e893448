"""The ``bench`` command: its parser and the registry of suites it runs."""

import pytest

from prime_science.bench import command
from prime_science.bench.driver import Suite
from prime_science.bench.registry import SUITES


def test_cli_parses_counts_and_rejects_bad_ones():
    parser = command._parser()
    args = parser.parse_args(["--sizes", "1e4", "300", "--batches", "1", "2", "--quick"])
    assert args.sizes == [10_000, 300] and args.batches == [1, 2] and args.quick
    assert args.suite == "all"
    assert parser.parse_args(["--suite", "probit_scoring"]).suite == "probit_scoring"
    bad_args = (["--sizes", "0"], ["--sizes", "1.5"], ["--batches", "x"], ["--max-seconds", "0"])
    for bad in (*bad_args, ["--suite", "nope"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_registry_builds_every_suite_under_its_name():
    assert list(SUITES) == [
        "beta_bernoulli_sample",
        "probit_scoring",
        "hill_climb",
        "ope",
        "membership_counterfactual",
    ]
    for name, entry in SUITES.items():
        suite = entry.build()
        assert isinstance(suite, Suite) and suite.name == name
        assert set(entry.cpu_sizes) <= set(entry.accelerator_sizes)
        assert (
            entry.sizes(True) == entry.accelerator_sizes and entry.sizes(False) == entry.cpu_sizes
        )
    assert [name for name, entry in SUITES.items() if not entry.counts_items] == ["hill_climb"]
