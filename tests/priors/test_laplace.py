"""Type-II ML meta-priors from probit events (prime_science.priors.laplace)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtr

from prime_science.core.errors import InvalidArgumentError
from prime_science.priors.laplace import probit_type2

SIZES = (40, 200, 600)  # features per block (groups 1..3); group 0 is the intercept
SCALES = (0.5, 0.3, 0.1)


def _simulate(key, num_events=30_000, scales=SCALES):
    """Every event activates the intercept and one feature of each block (one-hot blocks)."""
    keys = jax.random.split(key, 3)
    offsets = np.cumsum((1,) + SIZES)
    groups = np.concatenate([[0]] + [np.full(n, k + 1) for k, n in enumerate(SIZES)])
    weights = np.concatenate(
        [[-1.6]]
        + [
            s * np.asarray(jax.random.normal(k, (n,)))
            for k, n, s in zip(jax.random.split(keys[0], 3), SIZES, scales, strict=True)
        ]
    )
    picks = [
        offsets[k] + jax.random.randint(key_k, (num_events,), 0, n)
        for k, (key_k, n) in enumerate(zip(jax.random.split(keys[1], 3), SIZES, strict=True))
    ]
    events = np.stack([np.zeros(num_events, np.int32)] + [np.asarray(p) for p in picks], axis=1)
    probs = ndtr(jnp.sum(jnp.asarray(weights, jnp.float32)[events], axis=1))
    clicks = np.asarray(jax.random.uniform(keys[2], (num_events,)) < probs, np.float32)
    return events, clicks, groups, weights


@pytest.mark.slow
def test_recovers_group_scales_of_confounded_one_hot_blocks():
    events, clicks, groups, weights = _simulate(jax.random.key(0))
    fit = probit_type2(
        events, clicks, groups, 4, max_features=1024, fixed_groups=(0,), num_iters=25
    )
    assert int(fit.num_dropped) == 0 and int(fit.num_touched) == 1 + sum(SIZES)
    sd = np.sqrt(np.asarray(fit.variance[1:]))
    realised = np.array([weights[groups == k].std() for k in (1, 2, 3)])
    # the realised spread of each block's weights within 25% (the data pin 40 / 200 / 600
    # weights with about 1,300 clicks: the 600-weight block is the hardest)
    np.testing.assert_allclose(sd, realised, rtol=0.25)
    assert sd[0] > sd[1] > sd[2]
    # the intercept keeps its prior variance and reports its MAP mean
    assert float(fit.variance[0]) == 1.0
    assert abs(float(fit.mean[0]) + 1.6) < 0.3
    # the evidence iteration has settled
    trace = np.sqrt(np.asarray(fit.variance_trace[:, 1:]))
    np.testing.assert_allclose(trace[-1], trace[-2], rtol=0.01)


@pytest.mark.slow
def test_a_block_without_spread_shrinks_towards_zero():
    events, clicks, groups, _ = _simulate(jax.random.key(1), scales=(0.5, 0.3, 0.0))
    fit = probit_type2(
        events, clicks, groups, 4, max_features=1024, fixed_groups=(0,), num_iters=40
    )
    trace = np.sqrt(np.asarray(fit.variance_trace[:, 3]))
    assert trace[-1] < 0.05 and np.all(np.diff(trace[5:]) <= 1e-6)  # falls steadily (slow at 0)
    assert np.sqrt(float(fit.variance[1])) > 0.3


@pytest.mark.slow
def test_untouched_features_do_not_move_the_fit():
    events, clicks, groups, _ = _simulate(jax.random.key(2), num_events=5_000)
    padded_groups = np.concatenate([groups, np.full(500, 3)])  # 500 never-seen block-3 ids
    a = probit_type2(events, clicks, groups, 4, max_features=1024, fixed_groups=(0,))
    b = probit_type2(events, clicks, padded_groups, 4, max_features=1024, fixed_groups=(0,))
    np.testing.assert_allclose(a.variance, b.variance, rtol=1e-4)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_reports_dropped_features_when_max_features_is_too_small():
    events, clicks, groups, _ = _simulate(jax.random.key(3), num_events=2_000)
    fit = probit_type2(events, clicks, groups, 4, max_features=256, num_iters=1, warm_steps=1)
    assert int(fit.num_dropped) == int(fit.num_touched) - 256 > 0


@pytest.mark.parametrize(
    "change, name",
    [
        (lambda e, c, g: (e[:, :, None], c, g), "events"),
        (lambda e, c, g: (e, c[:-1], g), "clicks"),
        (lambda e, c, g: (e, c * 2, g), "clicks"),
        (lambda e, c, g: (e, -c, g), "clicks"),
        (lambda e, c, g: (e.at[0, 1].set(10_000) if hasattr(e, "at") else _set(e), c, g), "events"),
        (lambda e, c, g: (e, c, g + 5), "group_of_feature"),
    ],
)
def test_bad_input_is_named(change, name):
    events, clicks, groups, _ = _simulate(jax.random.key(4), num_events=100)
    with pytest.raises(InvalidArgumentError, match=name):
        probit_type2(*change(events, clicks, groups), 4, max_features=64)


def _set(events):
    events = events.copy()
    events[0, 1] = 10_000
    return events


def test_bad_options_are_named():
    events, clicks, groups, _ = _simulate(jax.random.key(5), num_events=100)
    with pytest.raises(InvalidArgumentError, match="fixed_groups"):
        probit_type2(events, clicks, groups, 4, max_features=64, fixed_groups=(4,))
    with pytest.raises(InvalidArgumentError, match="noise"):
        probit_type2(events, clicks, groups, 4, max_features=64, noise=0.0)


@pytest.mark.slow
def test_aggregated_rows_equal_single_events():
    """Rows shown n times with k clicks give the fit of the n single events they stand for."""
    events, clicks, groups, _ = _simulate(jax.random.key(6), num_events=3_000)
    unique, inverse = np.unique(events, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    impressions = np.bincount(inverse, minlength=len(unique)).astype(np.float32)
    row_clicks = np.bincount(inverse, weights=clicks, minlength=len(unique)).astype(np.float32)
    assert len(unique) < len(events)
    options = dict(max_features=512, fixed_groups=(0,), num_iters=4)
    single = probit_type2(events, clicks, groups, 4, **options)
    rows = probit_type2(unique, row_clicks, groups, 4, impressions=impressions, **options)
    np.testing.assert_allclose(rows.variance, single.variance, rtol=2e-3)
    np.testing.assert_allclose(rows.mean, single.mean, rtol=2e-3, atol=1e-4)
    # a row never shown touches nothing
    unseen = np.concatenate([unique, np.full((1, unique.shape[1]), 1)])
    padded = probit_type2(
        unseen,
        np.append(row_clicks, 0.0),
        groups,
        4,
        impressions=np.append(impressions, 0.0),
        **options,
    )
    np.testing.assert_allclose(padded.variance, rows.variance, rtol=1e-5)
