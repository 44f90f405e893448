"""Layout worlds: the truth is the MVT2 score, and the 512-layout calibration (Hill et al. 2017)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from prime_science.core.errors import InvalidArgumentError
from prime_science.layouts import design
from prime_science.sim.layout_world import (
    LayoutWorldConfig,
    make_layout_world,
    success_probabilities,
)


def test_truth_is_the_probit_of_the_scaled_draw():
    """Rebuild ``p`` from the raw normals in float64: ``Phi((W0 + a1 sum W1 + a2 sum W2) / beta)``
    with ``W0`` centring the layouts' mean probit at ``c``."""
    config = LayoutWorldConfig(num_variants=(2, 3, 4), alpha1=0.5, alpha2=3.0)
    key = jax.random.key(0)
    world = make_layout_world(key, config)
    space = config.space
    normals = np.asarray(jax.random.normal(key, (space.num_features,)), np.float64)
    layouts = design.all_layouts(space)
    ids = np.asarray(design.feature_ids(space, layouts))
    # ids: intercept, 3 first-order, 3 pairwise
    raw = config.alpha1 * normals[ids[:, 1:4]].sum(1) + config.alpha2 * normals[ids[:, 4:]].sum(1)
    beta = np.sqrt(0.5**2 * 3 + 3.0**2 * 3) / config.probit_spread
    expected = norm.cdf(config.probit_centre + (raw - raw.mean()) / beta)
    np.testing.assert_allclose(world.probabilities, expected, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(config.noise, beta)
    np.testing.assert_allclose(
        success_probabilities(world, config, layouts), world.probabilities, rtol=1e-6
    )
    # the layouts' mean probit is exactly the centre
    np.testing.assert_allclose(
        norm.ppf(np.asarray(world.probabilities, np.float64)).mean(),
        config.probit_centre,
        atol=1e-4,
    )


def test_calibration_matches_the_papers_histogram_over_random_worlds():
    """The calibration over 8 worlds of 512 layouts. Paper (histogram): range 0.045-0.24, mode
    0.11-0.12. Tolerances (about 3 s.e. of the across-world spread measured at calibration,
    sd 0.007 for min, 0.025 for max, 0.009 for the mode): mean min in [0.035, 0.06], mean max
    in [0.21, 0.29], mean mode (0.01-wide bins) in [0.10, 0.13]; every world right-skewed."""
    config = LayoutWorldConfig()
    keys = jax.random.split(jax.random.key(2026), 8)
    probabilities = np.asarray(
        jax.jit(jax.vmap(lambda k: make_layout_world(k, config).probabilities))(keys)
    )
    assert probabilities.shape == (8, 512)
    mins, maxs = probabilities.min(1), probabilities.max(1)
    bins = np.arange(0.0, 0.41, 0.01)
    modes = [bins[np.argmax(np.histogram(p, bins)[0])] + 0.005 for p in probabilities]
    assert 0.035 <= mins.mean() <= 0.06, mins
    assert 0.21 <= maxs.mean() <= 0.29, maxs
    assert 0.10 <= np.mean(modes) <= 0.13, modes
    means, medians = probabilities.mean(1), np.median(probabilities, 1)
    assert np.all(means > medians)  # right skew
    assert np.all((probabilities.std(1) > 0.025) & (probabilities.std(1) < 0.045))


@pytest.mark.slow
def test_live_world_has_48_layouts():
    config = LayoutWorldConfig.live()
    world = make_layout_world(jax.random.key(0), config)
    assert config.space.num_layouts == 48 and world.probabilities.shape == (48,)
    assert bool(jnp.all((world.probabilities > 0) & (world.probabilities < 1)))


@pytest.mark.parametrize(
    ("config", "name"),
    [
        (LayoutWorldConfig(num_variants=(3, 0)), "num_variants"),
        (LayoutWorldConfig(probit_spread=0.0), "config.probit_spread"),
        (LayoutWorldConfig(alpha2=float("nan")), "config.alpha2"),
        ((8, 8, 8), "config"),
    ],
)
def test_bad_configs(config, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        make_layout_world(jax.random.key(0), config)
