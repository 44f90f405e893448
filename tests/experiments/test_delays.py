"""The delays experiment on a tiny world: shapes, sane metrics, the naive share p F(e)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import delays
from prime_science.bandits.delayed import exponential_delays, sample_delays
from prime_science.runner import run_experiment

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

TINY = delays.Config(
    num_initial_items=100,
    new_items_per_day=5,
    num_days=2,
    hours_per_day=12,
    impressions_per_hour=10,
    mean_delays=(1.0, 24.0, 72.0),  # the targets name d = 24 h and 72 h
    bias_ages=(1, 3),
)
SEEDS = 2


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("results")
    record = run_experiment(delays, seeds=SEEDS, config=TINY, out_dir=out_dir, progress=False)
    return record, out_dir / delays.NAME


def test_runs_end_to_end_with_keys_plots_and_nonnegative_regret(outcome):
    record, folder = outcome
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    metrics = record["metrics"]
    for d in ("d1", "d24", "d72"):
        for name in delays.STRATEGIES:
            assert metrics[f"regret_{name}_{d}"]["mean"] >= 0.0
            assert math.isfinite(metrics[f"calibration_{name}_{d}"]["mean"])
        for e in TINY.bias_ages:
            assert 0.0 <= metrics[f"naive_ratio_{d}_e{e}"]["mean"]
    assert {t["metric"] for t in record["targets"]} <= set(metrics)
    assert all((folder / p).is_file() for p in record["plots"])


def test_result_shapes():
    results = jax.jit(lambda k: delays.run(k, TINY))(jax.random.key(1))
    hours, d, s = TINY.num_hours, len(TINY.mean_delays), len(delays.STRATEGIES)
    assert results.oracle_value.shape == (hours,)
    for trace in (results.regret, results.predicted, results.value):
        assert trace.shape == (d, s, hours)
    assert results.observed.shape == results.truth.shape == (d, len(TINY.bias_ages))
    assert results.fitted_mean_delay.shape == (d, TINY.num_days)
    assert results.final_predicted.shape == (d, s)
    assert np.all(np.asarray(results.regret) >= -1e-4)
    np.testing.assert_allclose(results.fitted_mean_delay[:, 0], TINY.initial_mean_delay)
    ages = delays.look_ages(TINY)
    assert ages.shape == (d, 3, len(TINY.checkpoints))
    np.testing.assert_array_equal(ages[:, 0], [TINY.checkpoints] * d)
    np.testing.assert_array_equal(ages[:, 1, 0], [2, 24, 24])  # min(ceil(2 d), horizon)
    assert np.all(ages[:, 1, 1:] == 0)


def test_naive_observed_share_is_p_times_f():
    """Synthetic: clicks ``u < p`` observed iff ``D <= e`` have share ``p F(e)``."""
    p, d, n = 0.3, 24.0, 400_000
    key_u, key_d = jax.random.split(jax.random.key(7))
    clicks = jax.random.uniform(key_u, (n,)) < p
    delay = sample_delays(key_d, exponential_delays(d), n)
    for e in (1.0, 6.0, 24.0):
        expected = p * -math.expm1(-e / d)
        share = float(jnp.mean(clicks & (delay <= e)))
        assert abs(share - expected) < 4 * math.sqrt(expected * (1 - expected) / n)


def test_naive_ratio_in_a_run_tracks_f():
    config = TINY._replace(mean_delays=(4.0,), impressions_per_hour=40)
    results = jax.jit(lambda k: delays.run(k, config))(jax.random.key(0))
    for k, e in enumerate(config.bias_ages):
        observed, truth = float(results.observed[0, k]), float(results.truth[0, k])
        expected = -math.expm1(-e / 4.0) * truth
        assert abs(observed - expected) < 4 * math.sqrt(expected) + 1
