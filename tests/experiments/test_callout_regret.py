"""The callout-regret experiment on a tiny world: shapes, keys, one trace, sane metrics."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import callout_regret

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

TINY = callout_regret.Config(
    num_arms=1_000, num_new_arms=40, num_rounds=48, slate_size=16, rounds_per_day=6
)
SEEDS = 3


@pytest.fixture(scope="module")
def outcome(instrumented_run):
    """Run the experiment through the runner with a ``run`` that counts its traces."""
    record, traces, _, folder = instrumented_run(callout_regret, TINY, SEEDS)
    return record, traces, folder


def test_compiles_once_for_all_seeds(outcome):
    _, traces, _ = outcome
    assert len(traces) == 1


def test_results_file_and_plots(outcome):
    record, _, folder = outcome
    assert json.loads((folder / "results.json").read_text())["metrics"] == record["metrics"]
    assert sorted(record["plots"]) == ["cumulative_regret.png", "young_share.png"]
    for plot in record["plots"]:
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {t["metric"] for t in record["targets"]} <= set(record["metrics"])


def test_metrics_are_sane(outcome):
    record, _, _ = outcome
    metrics = {name: m["mean"] for name, m in record["metrics"].items()}
    for policy in callout_regret.POLICIES:
        assert metrics[f"regret_{policy}"] > 0
        assert 0 <= metrics[f"young_share_{policy}"] <= 1
        assert 0 <= metrics[f"ctr_{policy}"] <= 1
        assert len(record["metrics"][f"regret_{policy}"]["values"]) == SEEDS
    assert metrics["ctr_oracle"] > metrics["ctr_uniform"]
    # greedy never shows a new arm while it has arms above the prior mean
    assert metrics["young_share_greedy"] <= metrics["young_share_uniform"]


def test_run_shapes_and_regret_nonnegative():
    results = jax.jit(callout_regret.run, static_argnums=1)(jax.random.key(5), TINY)
    assert results.oracle_value.shape == (TINY.num_rounds,)
    assert set(results.policies) == set(callout_regret.POLICIES)
    for trace in results.policies.values():
        for leaf in trace:
            assert leaf.shape == (TINY.num_rounds,) and leaf.dtype == jnp.float32
        assert float(jnp.min(trace.regret)) >= -1e-5
        assert float(jnp.max(trace.clicks)) <= TINY.slate_size
    # the same key gives the same results
    again = jax.jit(callout_regret.run, static_argnums=1)(jax.random.key(5), TINY)
    jax.tree.map(np.testing.assert_array_equal, results, again)
