"""The weak-prior probit refit: the MAP against scipy's BFGS, the sampling variances against the
expected Fisher information computed by hand in float64, untouched features, named errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, stats

from prime_science.core.errors import InvalidArgumentError
from prime_science.priors.refit import WeightEstimates, weak_prior_refit


def _design(num_events=400, seed=0):
    """Three one-hot blocks over 6 features (an intercept, 3 levels, 2 levels; every 7th row
    misses its last block: padding), clicks drawn from a known probit truth."""
    rng = np.random.default_rng(seed)
    events = np.stack(
        [np.zeros(num_events, int), rng.integers(1, 4, num_events), rng.integers(4, 6, num_events)],
        axis=1,
    ).astype(np.int32)
    events[::7, 2] = -1
    x = np.zeros((num_events, 6))
    for column in range(3):
        valid = events[:, column] >= 0
        x[np.flatnonzero(valid), events[valid, column]] = 1.0
    truth = np.array([-1.0, 0.3, -0.2, 0.1, 0.5, -0.5])
    clicks = rng.uniform(size=num_events) < stats.norm.cdf(x @ truth)
    return events, x, clicks


@pytest.mark.parametrize("noise", [1.0, 1.5])
def test_map_matches_scipy_and_variances_the_inverse_fisher_diagonal(noise):
    """w^ equals scipy's BFGS minimum of the same objective; s^2 is the inverse diagonal of the
    expected Fisher information at it: sum_e x_ei phi(m)^2 / (beta^2 Phi(m) Phi(-m))."""
    events, x, clicks = _design()
    signs, variance = 2.0 * clicks - 1.0, 10.0

    def loss(w):
        return -stats.norm.logcdf(signs * (x @ w) / noise).sum() + 0.5 * w @ w / variance

    expected = optimize.minimize(loss, np.zeros(6), method="BFGS", tol=1e-10).x
    refit = jax.jit(weak_prior_refit, static_argnames=("num_features", "num_steps"))
    got = refit(
        jnp.asarray(events), jnp.asarray(clicks), num_features=6, prior_variance=variance,
        num_steps=100, noise=noise,
    )  # fmt: skip
    assert isinstance(got, WeightEstimates)
    np.testing.assert_allclose(got.estimates, expected, atol=2e-4)
    margin = x @ expected / noise
    info = stats.norm.pdf(margin) ** 2 / (stats.norm.cdf(margin) * stats.norm.cdf(-margin))
    np.testing.assert_allclose(got.sampling_variances, noise**2 / (x.T @ info), rtol=2e-3)


@pytest.mark.slow
def test_untouched_feature_stays_at_the_prior_with_infinite_variance():
    events, _, clicks = _design(num_events=200, seed=1)
    fit = weak_prior_refit(events, clicks, 8, num_steps=50)  # features 6 and 7: never shown
    np.testing.assert_array_equal(fit.estimates[6:], 0.0)
    assert np.all(np.isinf(fit.sampling_variances[6:]))
    assert np.all(np.isfinite(fit.sampling_variances[:6]))


@pytest.mark.slow
def test_jit_equals_eager():
    events, _, clicks = _design(num_events=100, seed=2)
    eager = weak_prior_refit(events, clicks, 6, num_steps=20)
    jitted = jax.jit(lambda e, c: weak_prior_refit(e, c, 6, num_steps=20))(events, clicks)
    np.testing.assert_allclose(eager.estimates, jitted.estimates, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(eager.sampling_variances, jitted.sampling_variances, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"events": np.array([[0, 6]])}, r"events: expected feature ids in \[0, 6\) or -1"),
        ({"events": np.array([[0.0, 1.0]])}, "events: expected integer feature ids"),
        ({"clicks": np.array([0.5])}, "clicks: expected 0/1 clicks"),
        ({"clicks": np.array([1.0, 0.0])}, r"clicks: expected one click per row of events \(1\)"),
        ({"num_features": 0}, "num_features: expected an integer >= 1"),
        ({"num_steps": 0}, "num_steps: expected an integer >= 1"),
        ({"prior_variance": 0.0}, "prior_variance: expected a finite number"),
        ({"noise": np.nan}, "noise: expected a finite number"),
    ],
)
def test_bad_inputs_raise_named_errors(kwargs, message):
    args = {"events": np.array([[0, 1]]), "clicks": np.array([1.0]), "num_features": 6} | kwargs
    with pytest.raises(InvalidArgumentError, match=message):
        weak_prior_refit(**args)
