"""The cold-start experiment on a tiny world: registration, one trace, shapes, sane metrics."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import EXPERIMENTS, cold_start
from prime_science.bandits import features as ft
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.core.experiment import check_experiment
from prime_science.sim import callout_world

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

TINY = cold_start.Config(
    num_initial_items=200,
    new_items_per_day=5,
    num_days=3,
    hours_per_day=6,
    impressions_per_hour=10,
)
SEEDS = 3


@pytest.fixture(scope="module")
def outcome(instrumented_run):
    return instrumented_run(cold_start, TINY, SEEDS)


def test_listed_and_keeps_the_contract():
    assert cold_start in EXPERIMENTS
    assert check_experiment(cold_start) is cold_start
    for config in (cold_start.Config.quick(), cold_start.Config.full()):
        assert isinstance(config, cold_start.Config)
        hash(config)


def test_compiles_once_for_all_seeds(outcome):
    _, traces, _, _ = outcome
    assert len(traces) == 1


def test_results_shapes_and_regret_nonnegative(outcome):
    _, _, results, _ = outcome
    hours, items = TINY.num_hours, TINY.world.num_items
    assert results.oracle_value.shape == (SEEDS, hours)
    assert set(results.policies) == set(cold_start.POLICIES)
    for trace in results.policies.values():
        for name in ("regret", "value", "young_value", "young_impressions"):
            assert getattr(trace, name).shape == (SEEDS, hours)
        assert trace.item_impressions.shape == (SEEDS, items)
        np.testing.assert_array_equal(
            trace.item_impressions.sum(-1), hours * TINY.impressions_per_hour
        )
        assert trace.regret.min() >= -1e-5
        assert np.all(trace.young_impressions <= TINY.impressions_per_hour)
        # the oracle's value is what the policy got plus its regret
        np.testing.assert_allclose(trace.value + trace.regret, results.oracle_value, rtol=1e-4)


def test_results_file_metrics_and_plots(outcome):
    record, _, _, folder = outcome
    saved = json.loads((folder / "results.json").read_text())
    assert saved["metrics"].keys() == record["metrics"].keys()
    assert sorted(record["plots"]) == [
        "cumulative_regret.png",
        "long_tail_share.png",
        "young_ctr.png",
    ]
    for plot in record["plots"]:
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {t["metric"] for t in record["targets"]} <= set(record["metrics"])
    metrics = {name: m["mean"] for name, m in record["metrics"].items()}
    for policy in cold_start.POLICIES:
        assert metrics[f"regret_{policy}"] >= 0
        assert 0 <= metrics[f"ctr_{policy}"] <= metrics["ctr_oracle"] + 1e-6
        assert 0 <= metrics[f"young_share_{policy}"] <= 1
        assert 0 <= metrics[f"long_tail_share_{policy}"] <= 1
        young_ctr = metrics[f"young_ctr_{policy}"]
        assert math.isnan(young_ctr) or 0 <= young_ctr <= 1
        assert len(record["metrics"][f"regret_{policy}"]["values"]) == SEEDS


def test_thompson_matches_the_probit_sampler_when_everything_is_available():
    """With every item available, the experiment's masked Thompson choice is exactly
    ``probit_adf(...).sample_batch`` (same per-request keys, same draw, same scorer)."""
    spec = callout_world.callout_feature_spec(TINY.world)
    world = callout_world.make_callout_world(jax.random.key(1), TINY.world)
    columns = callout_world.item_columns(world)
    ids = jnp.stack([ft.encode(spec, columns, context={"segment": s}) for s in (0, 1)])
    key_mean, key_variance, key_sample = jax.random.split(jax.random.key(2), 3)
    state = ProbitState(
        mean=0.3 * jax.random.normal(key_mean, (spec.num_features,)),
        variance=jax.random.uniform(key_variance, (spec.num_features,), minval=0.01, maxval=0.2),
    )
    chooser = cold_start._probit_choosers(ids, spec.num_features, TINY)["thompson"]
    requests, items = 16, ids.shape[1]
    for segment in (0, 1):
        segments = jnp.full(requests, segment, jnp.int32)
        chosen = chooser.choose(key_sample, state, segments, jnp.ones(items, bool))
        expected = probit_adf(spec.num_features).sample_batch(
            key_sample, state, ids[segment], 1, requests
        )
        np.testing.assert_array_equal(chosen, expected.arms[:, 0])
    # an unavailable item is never chosen
    available = jnp.arange(items) % 2 == 0
    chosen = chooser.choose(key_sample, state, jnp.zeros(requests, jnp.int32), available)
    assert bool(jnp.all(available[chosen]))
