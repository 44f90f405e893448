"""The beta_bernoulli_sample suite and the driver under it: the posterior generator, the plan,
tiny runs with budgets, and the ``bench`` command on the real kernel.

The suite runs against a stand-in policy with the kernel's API (a Gaussian approximation to the
Beta posterior + ``top_k``: cheap to compile) so that it does not depend on the real kernel; one
more test runs the command on the real kernel.
"""

import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bench import beta_bernoulli_sample, command
from prime_science.bench.beta_bernoulli_sample import beta_bernoulli_suite, realistic_posterior
from prime_science.bench.driver import SuiteConfig, run_suite, write_results
from prime_science.core.errors import InvalidArgumentError
from prime_science.core.types import Selection


class _State(NamedTuple):
    alpha: jax.Array
    beta: jax.Array
    active: jax.Array


class _Policy(NamedTuple):
    init: object
    sample: object
    sample_batch: object


def _stand_in(prior_alpha=1.0, prior_beta=1.0, approximate=False):
    """The kernel's API; scores are draws from the Gaussian with each arm's Beta moments."""

    def init(num_arms):
        ones = jnp.ones(num_arms, jnp.float32)
        return _State(prior_alpha * ones, prior_beta * ones, jnp.ones(num_arms, bool))

    def sample(key, state, k=1):
        total = state.alpha + state.beta
        mean = state.alpha / total
        std = jnp.sqrt(mean * (1 - mean) / (total + 1))
        draws = mean + std * jax.random.normal(key, mean.shape)
        scores = jnp.where(state.active, draws, -jnp.inf)
        top, arms = jax.lax.top_k(scores, k)
        return Selection(arms.astype(jnp.int32), top)

    def sample_batch(key, state, k, num_requests):
        return jax.vmap(sample, in_axes=(0, None, None))(
            jax.random.split(key, num_requests), state, k
        )

    return _Policy(init, sample, sample_batch)


def _stand_in_without_approximate(prior_alpha=1.0, prior_beta=1.0):
    return _stand_in(prior_alpha, prior_beta)


def test_realistic_posterior_shapes_ranges_and_moments():
    num_arms = 100_000
    alpha, beta = realistic_posterior(num_arms, seed=0)
    assert alpha.shape == beta.shape == (num_arms,)
    assert alpha.dtype == beta.dtype == np.float32
    assert alpha.min() >= 1 and beta.min() >= 1
    np.testing.assert_array_equal(alpha, np.round(alpha))
    np.testing.assert_array_equal(beta, np.round(beta))
    impressions = alpha.astype(np.float64) + beta - 2
    # floor(LogNormal(3, 2)) has median floor(e^3) = 20; the sample median's standard error
    # is about 0.8% of it at this N, so [18, 22] is > 5 standard errors wide.
    assert 18 <= np.median(impressions) <= 22
    # Pooled CTR estimates E[p] = 1/31; heavy-tailed impressions leave an effective sample of
    # about N / e^4 arms, standard error about 0.0007: 5 standard errors = 0.0037.
    pooled_ctr = (alpha.astype(np.float64) - 1).sum() / impressions.sum()
    assert abs(pooled_ctr - 1 / 31) < 0.0037


def test_realistic_posterior_is_seeded_and_checks_num_arms():
    first, again, other = (realistic_posterior(1000, s) for s in (3, 3, 4))
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    for bad in (0, -5, 2.5, True):
        with pytest.raises(InvalidArgumentError, match="num_arms"):
            realistic_posterior(bad, 0)


def test_approximate_rows_only_when_the_factory_accepts_it():
    assert beta_bernoulli_sample._approximate_policy(_stand_in) is not None
    assert beta_bernoulli_sample._approximate_policy(_stand_in_without_approximate) is None
    config = SuiteConfig(sizes=(10, 2_000_000), batches=(1, 2))
    kernels = {k for k, _, _ in beta_bernoulli_sample._plan(config, with_approximate=False)}
    assert kernels == {"normal_argmax", "ours", "jax_beta", "numpy"}
    plan = beta_bernoulli_sample._plan(config, with_approximate=True)
    assert ("jax_beta", 10, 1) in plan and ("jax_beta", 10, 2) not in plan
    assert ("jax_beta", 2_000_000, 1) not in plan
    assert plan[-4:] == [("numpy", n, b) for n in (10, 2_000_000) for b in (1, 2)]


def _check_outputs(out_dir, num_arms, batches, kernels):
    results = json.loads((out_dir / "beta_bernoulli_sample.json").read_text())
    assert results["benchmark"] == "beta_bernoulli_sample"
    assert {"platform", "device_kind", "jax_version", "cpu_model", "cpu_count", "date"} <= set(
        results["device"]
    )
    rows = {(r["kernel"], r["num_arms"], r["batch"]): r for r in results["rows"]}
    expected = {(k, num_arms, b) for k in kernels for b in batches}
    expected |= {("jax_beta", num_arms, 1)}
    assert set(rows) == expected
    assert results["planned_rows"] == len(expected)
    for (kernel, _, batch), row in rows.items():
        assert row["status"] == "ok", row
        assert row["repeats"] == 2
        assert row["median_seconds"] > 0 and row["min_seconds"] <= row["median_seconds"]
        assert row["arms_per_second"] == pytest.approx(num_arms * batch / row["median_seconds"])
        numpy_row = rows["numpy", num_arms, batch]
        assert row["speedup_vs_numpy"] == pytest.approx(
            numpy_row["median_seconds"] / row["median_seconds"]
        )
        assert row["time_over_normal_argmax"] > 0
        assert (row["compile_seconds"] is None) == (kernel == "numpy")
    markdown = (out_dir / "beta_bernoulli_sample.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| kernel | N | B | median")
    assert len(table) == 1 + len(expected)
    assert all(f"| {kernel} | 1e4 |" in markdown for kernel, _, _ in expected)


@pytest.mark.slow
def test_tiny_suite_with_a_stand_in_writes_json_and_markdown(tmp_path):
    config = SuiteConfig(sizes=(10_000,), batches=(1, 2), repeats=2)
    written = []
    results = run_suite(beta_bernoulli_suite(_stand_in), config, on_row=written.append)
    assert len(written) == len(results["rows"]) == 9
    write_results(results, tmp_path)
    kernels = ("normal_argmax", "ours", "ours_approximate", "numpy")
    _check_outputs(tmp_path, 10_000, (1, 2), kernels)


def test_budgets_skip_and_extrapolate_with_reasons(tmp_path, monkeypatch):
    monkeypatch.setattr(
        beta_bernoulli_sample, "JAX_BETA_MAX_ARMS", 0
    )  # its 2 s compile is not needed
    config = SuiteConfig(sizes=(10_000,), batches=(1, 512), repeats=2)
    config = config._replace(max_seconds=1e-6)
    rows = run_suite(beta_bernoulli_suite(_stand_in_without_approximate), config)["rows"]
    by_key = {(r["kernel"], r["batch"]): r for r in rows}
    assert by_key["ours", 1]["status"] == "ok" and by_key["ours", 1]["repeats"] == 1
    assert by_key["ours", 512]["status"] == "skipped"
    assert "--max-seconds" in by_key["ours", 512]["note"]
    numpy_row = by_key["numpy", 512]
    assert numpy_row["status"] == "extrapolated" and numpy_row["extrapolated_from_batch"] == 1
    assert "1 of 512 draws per repeat timed" in numpy_row["note"]
    config = config._replace(total_seconds=1e-9)
    results = run_suite(beta_bernoulli_suite(_stand_in_without_approximate), config)
    assert all(r["status"] == "skipped" and "--total-seconds" in r["note"] for r in results["rows"])
    write_results(results, tmp_path)
    assert "skipped: suite budget exhausted" in (tmp_path / "beta_bernoulli_sample.md").read_text()


@pytest.mark.slow
def test_bench_command_on_the_real_kernel(tmp_path):
    pytest.importorskip("prime_science.bandits.beta_bernoulli")
    argv = ["--sizes", "1e4", "--batches", "1", "2", "--repeats", "2", "--out", str(tmp_path)]
    assert command.main(argv) == 0
    kernels = {"normal_argmax", "ours", "numpy"}
    rows = json.loads((tmp_path / "beta_bernoulli_sample.json").read_text())["rows"]
    kernels |= {r["kernel"] for r in rows if r["kernel"] == "ours_approximate"}
    _check_outputs(tmp_path, 10_000, (1, 2), kernels)
    probit = json.loads((tmp_path / "probit_scoring.json").read_text())  # --suite all
    assert {r["kernel"] for r in probit["rows"]} == {"ours", "ours_greedy", "numpy"}
    # hill_climb's N counts components: --sizes does not reach it under --suite all
    layouts = json.loads((tmp_path / "hill_climb.json").read_text())
    assert {r["num_arms"] for r in layouts["rows"]} == {10}
