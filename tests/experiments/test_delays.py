"""The delays experiment on a tiny world: the censored ADF step, shapes, sane metrics."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import delays
from prime_science.bandits.delayed import exponential_delays, sample_delays
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.runner import run_experiment

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


def _state(num_features=6):
    key_mean, key_var = jax.random.split(jax.random.key(3))
    return ProbitState(
        mean=0.5 * jax.random.normal(key_mean, (num_features,)),
        variance=jax.random.uniform(key_var, (num_features,), minval=0.2, maxval=1.0),
    )


def _look(state, ids, first, seen_before, seen_now, before, now, censored, log_rate=0.0):
    return delays.look_step(
        state,
        ids,
        jnp.bool_(first),
        jnp.bool_(seen_before),
        jnp.bool_(seen_now),
        jnp.float32(before),
        jnp.float32(now),
        jnp.float32(log_rate),
        jnp.float32(log_rate),
        jnp.bool_(censored),
    )


@pytest.mark.parametrize("click", [False, True])
def test_first_plain_look_is_the_library_adf_update(click):
    state, ids = _state(), jnp.array([0, 2, 5, -1], jnp.int32)
    library = probit_adf(6).update(state, ids[None], jnp.array([float(click)]))
    ours = _look(state, ids, True, False, click, 0.0, 1.0, censored=False)
    np.testing.assert_allclose(ours.mean, library.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.variance, library.variance, rtol=1e-5, atol=1e-6)


def test_later_plain_looks_feed_only_arrivals():
    state, ids = _state(), jnp.array([0, 2, 5, -1], jnp.int32)
    for seen_before, seen_now in ((False, False), (True, True)):
        same = _look(state, ids, False, seen_before, seen_now, 1.0, 6.0, censored=False)
        np.testing.assert_array_equal(same.mean, state.mean)
    positive = probit_adf(6).update(state, ids[None], jnp.array([1.0]))
    arrival = _look(state, ids, False, False, True, 1.0, 6.0, censored=False)
    np.testing.assert_allclose(arrival.mean, positive.mean, rtol=1e-5, atol=1e-6)


def test_censored_look_limits():
    state, ids = _state(), jnp.array([1, 3, 4, -1], jnp.int32)
    # nothing watched yet: the likelihood is 1, the posterior unchanged
    same = _look(state, ids, True, False, False, 0.0, 0.0, censored=True)
    np.testing.assert_allclose(same.mean, state.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(same.variance, state.variance, rtol=1e-5, atol=1e-6)
    # watched for ever: a plain negative
    negative = probit_adf(6).update(state, ids[None], jnp.array([0.0]))
    final = _look(state, ids, True, False, False, 0.0, 1e4, censored=True)
    np.testing.assert_allclose(final.mean, negative.mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.variance, negative.variance, rtol=1e-4, atol=1e-5)
    # in between: a weaker pull than a negative
    partial = _look(state, ids, True, False, False, 0.0, 1.0, censored=True)
    moved, full = partial.mean - state.mean, negative.mean - state.mean
    assert np.all(np.abs(moved) <= np.abs(full) + 1e-6)
    assert np.any(np.abs(moved) > 1e-3)
    # a click already seen is never counted again
    seen = _look(state, ids, False, True, True, 1.0, 6.0, censored=True)
    np.testing.assert_array_equal(seen.mean, state.mean)


def test_censored_looks_learn_the_click_rate_of_one_feature():
    """Many impressions of one feature, looked at 1, 6, 24 and 168 h old (mean delay 6 h):
    the censored model's predicted rate ends near the empirical click rate."""
    rng = np.random.default_rng(0)
    n, p, d = 300, 0.1, 6.0
    clicked = rng.uniform(size=n) < p
    delay = rng.exponential(d, size=n)
    state = ProbitState(mean=jnp.zeros(1), variance=jnp.ones(1))
    ids = jnp.array([0], jnp.int32)
    step = jax.jit(delays.look_step)
    for i in range(n):
        before = 0.0
        for j, now in enumerate((1.0, 6.0, 24.0, 168.0)):
            args = (j == 0, clicked[i] and delay[i] <= before, clicked[i] and delay[i] <= now)
            log_rate = jnp.float32(-math.log(d))
            state = step(
                state, ids, *map(jnp.bool_, args), jnp.float32(before), jnp.float32(now),
                log_rate, log_rate, jnp.bool_(True),
            )  # fmt: skip
            before = now
    predicted = float(jax.scipy.special.ndtr(state.mean[0] / jnp.sqrt(1.0 + state.variance[0])))
    assert abs(predicted - clicked.mean()) < 0.01


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
