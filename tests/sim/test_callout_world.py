"""The simulated callout world: calibration, arrivals, and the probit truth."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtr

from prime_science.bandits import features as ft
from prime_science.sim import callout_world as cw

CONFIG = cw.CalloutWorldConfig(
    num_initial_items=500, new_items_per_day=10, num_days=4, vocabulary_size=1_000
)


@pytest.fixture(scope="module")
def world():
    return jax.jit(cw.make_callout_world, static_argnums=1)(jax.random.key(0), CONFIG)


@pytest.fixture(scope="module")
def spec():
    return cw.callout_feature_spec(CONFIG)


@pytest.mark.slow
def test_mean_click_rate_is_calibrated(world, spec):
    initial = np.asarray(world.arrival_day == 0)
    rates = [np.asarray(cw.click_probabilities(world, spec, s))[initial].mean() for s in (0, 1)]
    mean = (1 - CONFIG.prime_share) * rates[0] + CONFIG.prime_share * rates[1]
    assert abs(mean - CONFIG.mean_ctr) < 1e-5


def test_arrivals_follow_the_schedule(world):
    counts = np.bincount(np.asarray(world.arrival_day))
    assert counts[0] == CONFIG.num_initial_items
    assert np.all(counts[1:] == CONFIG.new_items_per_day)
    assert len(counts) == CONFIG.num_days + 1
    assert int(jnp.sum(cw.available(world, 2))) == CONFIG.num_initial_items + 2 * 10


def test_truth_is_a_probit_of_the_shared_features(world, spec):
    """P(click) = Phi(x^T w) with x built by features.encode (dense oracle)."""
    ids = ft.encode(spec, cw.item_columns(world), context={"segment": 1})
    dense = np.asarray(ft.dense_features(spec, ids), np.float64)
    expected = ndtr(dense @ np.asarray(world.true_weights, np.float64))
    np.testing.assert_allclose(
        np.asarray(cw.click_probabilities(world, spec, 1)), expected, rtol=1e-5, atol=1e-7
    )


def test_unseen_ids_carry_no_true_weight_and_blocks_have_their_scale(world, spec):
    weights = np.asarray(world.true_weights)
    for block in spec.blocks:
        if block.has_unseen:
            assert weights[spec.unseen_id(block.name)] == 0.0
    brand = spec.block_slices["brand"]
    assert 0.2 < weights[brand.start : brand.stop - 1].std() < 0.4  # s_brand = 0.3, 200 draws


def test_segment_matters_through_the_cross(world, spec):
    p0 = np.asarray(cw.click_probabilities(world, spec, 0))
    p1 = np.asarray(cw.click_probabilities(world, spec, 1))
    assert not np.allclose(p0, p1)
    assert np.all((p0 > 0) & (p0 < 1))


def test_same_key_same_world():
    make = jax.jit(cw.make_callout_world, static_argnums=1)
    a = make(jax.random.key(3), CONFIG)
    b = make(jax.random.key(3), CONFIG)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
