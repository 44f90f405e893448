"""The probit_scoring suite: its numpy scorer selects what ``jnp`` and the policy select, and a
tiny run writes its files."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bench import probit_scoring
from prime_science.bench.driver import SuiteConfig, run_suite, write_results


def test_numpy_top_k_selects_what_jnp_and_the_policy_select_on_the_same_draw():
    from prime_science.bandits.probit import probit_adf

    mean, variance, ids = probit_scoring.probit_workload(20_000, seed=1)
    assert ids.shape == (20_000, 8) and ids.dtype == np.int32
    assert 0 <= ids.min() and ids.max() < probit_scoring.NUM_FEATURES
    assert 0.01 <= variance.min() and variance.max() <= 1
    policy = probit_adf(num_features=probit_scoring.NUM_FEATURES, exploration="thompson")
    state = policy.init()._replace(mean=jnp.asarray(mean), variance=jnp.asarray(variance))
    key = jax.random.key(7)
    # The policy's own draw (probit.py): w = mu + sigma * normal(key, (M,)).
    weights = state.mean + jnp.sqrt(state.variance) * jax.random.normal(key, mean.shape)
    rows, scores = probit_scoring.numpy_top_k(np.asarray(weights), ids, 10)
    oracle_scores, oracle_rows = jax.lax.top_k(jnp.sum(weights[ids], axis=1), 10)
    np.testing.assert_array_equal(rows, oracle_rows)
    np.testing.assert_allclose(scores, oracle_scores, rtol=1e-5)
    np.testing.assert_array_equal(rows, policy.sample(key, state, ids, 10).arms)


def test_numpy_top_k_breaks_ties_by_row():
    weights = np.array([1.0, 1.0, 0.0], np.float32)
    ids = np.array([[2, 2], [0, 2], [2, 1], [0, 1], [2, 2]], np.int32)
    rows, scores = probit_scoring.numpy_top_k(weights, ids, 3)
    np.testing.assert_array_equal(rows, [3, 1, 2])
    np.testing.assert_array_equal(scores, [2.0, 1.0, 1.0])


def test_tiny_probit_suite_writes_json_and_markdown(tmp_path):
    pytest.importorskip("prime_science.bandits.probit")
    config = SuiteConfig(sizes=(10_000,), batches=(1, 2), repeats=2)
    results = run_suite(probit_scoring.probit_scoring_suite(), config)
    write_results(results, tmp_path)
    assert not (tmp_path / "beta_bernoulli_sample.json").exists()
    results = json.loads((tmp_path / "probit_scoring.json").read_text())
    assert results["benchmark"] == "probit_scoring"
    assert results["methods"]["k"] == 10 and results["methods"]["num_active"] == 8
    assert set(results["posteriors"]) == {"10000"}
    expected = [(k, 10_000, b) for b in (1, 2) for k in ("ours", "ours_greedy")]
    expected += [("numpy", 10_000, b) for b in (1, 2)]
    rows = {(r["kernel"], r["num_arms"], r["batch"]): r for r in results["rows"]}
    assert [(r["kernel"], r["num_arms"], r["batch"]) for r in results["rows"]] == expected
    assert results["planned_rows"] == len(expected)
    for (kernel, _, batch), row in rows.items():
        assert row["status"] == "ok", row
        assert row["repeats"] == 2 and row["median_seconds"] > 0
        assert row["arms_per_second"] == pytest.approx(10_000 * batch / row["median_seconds"])
        assert row["speedup_vs_numpy"] == pytest.approx(
            rows["numpy", 10_000, batch]["median_seconds"] / row["median_seconds"]
        )
        assert row["time_over_normal_argmax"] is None
        assert (row["compile_seconds"] is None) == (kernel == "numpy")
    markdown = (tmp_path / "probit_scoring.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0] == (
        "| kernel | N | B | median | min | IQR | repeats | compile | candidates/s "
        "| speed-up vs numpy | note |"
    )
    assert len(table) == 1 + len(expected)
    assert all(line.count("|") == table[0].count("|") for line in table)
