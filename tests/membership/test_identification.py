"""The identification sweep: cell parameters, the panel's engagement correlation and the
spread against numpy, a small cell end to end, named errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import model, simulate
from prime_science.membership.identification import (
    SHIP,
    VIDEO,
    cell_params,
    engagement_correlation,
    identification_cell,
    spread,
)


@pytest.fixture(scope="module")
def params():
    return model.true_params(jnp.float32)


def test_cell_params_sets_correlation_and_switches_content_off(params):
    on = cell_params(params, 0.8, True)
    off = cell_params(params, 0.95, False)
    assert float(on.engagement_correlation) == pytest.approx(0.8)
    assert float(on.content_arrival) == float(params.content_arrival) > 0
    assert float(off.engagement_correlation) == pytest.approx(0.95)
    assert float(off.content_arrival) == 0.0
    assert float(off.theta_video) == float(params.theta_video)
    with pytest.raises(InvalidArgumentError, match="correlation"):
        cell_params(params, 1.2, True)


def test_engagement_correlation_equals_numpy():
    rng = np.random.default_rng(0)
    ship = rng.integers(0, 5, (40, 7)).astype(np.int32)
    video = np.clip(ship + rng.integers(-1, 2, (40, 7)), 0, 4).astype(np.int32)
    zeros = np.zeros_like(ship)
    panel = simulate.Panel(zeros, zeros, ship, video, zeros, zeros, zeros[:, 0], zeros)
    expected = np.corrcoef(ship.ravel(), video.ravel())[0, 1]
    np.testing.assert_allclose(engagement_correlation(panel), expected, rtol=1e-5)


def test_spread_equals_numpy():
    rng = np.random.default_rng(1)
    estimates = rng.normal(size=(6, len(model.STRUCTURAL)))
    result = spread(estimates)
    parts = np.stack(
        [estimates[:, SHIP], estimates[:, VIDEO], estimates[:, SHIP] + estimates[:, VIDEO]], 1
    )
    np.testing.assert_allclose(result.mean, parts.mean(0))
    np.testing.assert_allclose(result.sd, parts.std(0, ddof=1))
    assert result.part_correlation == pytest.approx(
        np.corrcoef(estimates[:, SHIP], estimates[:, VIDEO])[0, 1]
    )
    one = spread(estimates[:1])
    assert np.all(np.isnan(one.sd)) and np.isnan(one.part_correlation)
    with pytest.raises(InvalidArgumentError, match="estimates"):
        spread(estimates[:, :5])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(estimator="maxent"), "estimator"),
        (dict(replicates=0), "replicates"),
        (dict(num_members=0), "num_members"),
        (dict(months=2.5), "months"),
    ],
)
def test_bad_cell_arguments_are_named(params, kwargs, field):
    arguments = dict(num_members=100, months=6) | kwargs
    num_members, months = arguments.pop("num_members"), arguments.pop("months")
    with pytest.raises(InvalidArgumentError, match=field):
        identification_cell(jax.random.key(0), params, 0.5, True, num_members, months, **arguments)


@pytest.mark.slow
def test_cell_fits_are_finite_and_the_common_shock_raises_the_correlation(params):
    """Two cells of three small panels each: CCP converges with finite estimates, and the
    panels' engagement correlation is much higher at rho = 0.95 than at rho = 0."""
    fit = jax.jit(
        jax.vmap(
            lambda rho: identification_cell(
                jax.random.key(3), params, rho, False, 1_000, 12, replicates=3
            )
        )
    )
    fits = jax.device_get(fit(jnp.asarray([0.0, 0.95])))
    assert fits.estimates.shape == (2, 3, len(model.STRUCTURAL))
    assert np.all(np.isfinite(fits.estimates)) and np.all(fits.converged)
    assert np.all(fits.standard_errors > 0)
    assert fits.engagement_correlation[1].min() > fits.engagement_correlation[0].max() + 0.2
