"""NumPyro meta-prior fits recover known hyper-parameters and agree with the closed forms.

Tolerances: with ``n`` weights per group and common noise ``s^2`` the hyper-parameter
estimates have s.d. ``sd(mu^) = sqrt((tau^2 + s^2) / n)`` and ``sd(tau^2^) ~ sqrt(2 / n) (tau^2 +
s^2)``, i.e. ``sd(tau^) ~ sd(tau^2^) / (2 tau)``; every check allows 4 s.d. (per-check failure
probability ~6e-5 under normality, fixed keys).
"""

import jax
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.priors import hierarchical as hi
from prime_science.priors import moments as mm

MU = np.array([0.5, -1.0, 0.0, 2.0])
TAU = np.array([0.1, 0.3, 0.5, 1.0])
PER_GROUP = 400


def _simulate(seed, heteroscedastic=True):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(MU.size), PER_GROUP).astype(np.int32)
    noise = rng.uniform(0.01, 0.05, groups.size) if heteroscedastic else np.full(groups.size, 0.03)
    estimates = MU[groups] + rng.normal(size=groups.size) * np.sqrt(TAU[groups] ** 2 + noise)
    return estimates.astype(np.float32), noise.astype(np.float32), groups


def _tolerances(noise=0.03):
    total = TAU**2 + noise
    sd_mean = np.sqrt(total / PER_GROUP)
    sd_scale = np.sqrt(2 / PER_GROUP) * total / (2 * TAU)
    return 4 * sd_mean, 4 * sd_scale


@pytest.fixture(scope="module")
def data():
    return _simulate(0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fit", [hi.fit_gaussian_type2, hi.fit_gaussian_autonormal, hi.fit_gaussian_nuts]
)
def test_gaussian_fits_recover_hyperparameters_and_agree_with_moments(data, fit):
    record, info = fit(jax.random.key(1), *data, MU.size)
    mean_tol, scale_tol = _tolerances()
    np.testing.assert_array_less(np.abs(record.mean - MU), mean_tol)
    np.testing.assert_array_less(np.abs(np.sqrt(record.variance) - TAU), scale_tol)
    np.testing.assert_array_equal(record.group_of_feature, data[2])
    moments = mm.method_of_moments(*data, MU.size)
    # the two estimators see the same data: their gap is well inside the sampling error
    np.testing.assert_array_less(np.abs(record.mean - moments.mean), mean_tol / 2)
    np.testing.assert_array_less(
        np.abs(np.sqrt(record.variance) - np.sqrt(moments.variance)), scale_tol / 2
    )
    if isinstance(info, hi.SviInfo):
        losses = np.asarray(info.losses)
        assert losses[-1] < losses[0]
        assert np.all(np.isfinite(losses))
    else:
        assert np.all(np.asarray(info.r_hat_mean) < 1.05)
        assert np.all(np.asarray(info.r_hat_scale) < 1.05)
        assert np.all(np.asarray(info.ess_scale) > 50)
        assert int(info.num_divergences) == 0


def test_type2_equals_the_closed_form_maximum_likelihood():
    """Equal s^2: the marginal-likelihood maximiser is mu = mean, tau^2 = (n-1)/n S^2 - s^2."""
    estimates, noise, groups = _simulate(2, heteroscedastic=False)
    record, info = hi.fit_gaussian_type2(
        jax.random.key(0), estimates, noise, groups, MU.size, num_steps=1500
    )
    moments = mm.method_of_moments(estimates, noise, groups, MU.size)
    n = PER_GROUP
    closed_form = (n - 1) / n * moments.sample_variance - moments.mean_sampling_variance
    np.testing.assert_allclose(record.mean, moments.mean, atol=2e-3)
    np.testing.assert_allclose(record.variance, closed_form, rtol=2e-2, atol=1e-4)


@pytest.mark.slow
def test_beta_binomial_recovers_item_ctr_priors():
    """Prior mean a/(a+b) within 4 s.d. of its sampling error and a+b within 40%."""
    rng = np.random.default_rng(3)
    alpha, beta = np.array([1.0, 3.0]), np.array([30.0, 20.0])
    groups = np.repeat(np.arange(2), 500).astype(np.int32)
    rates = rng.beta(alpha[groups], beta[groups])
    impressions = rng.integers(50, 500, groups.size)
    clicks = rng.binomial(impressions, rates)
    record, info = hi.fit_beta_binomial_type2(
        jax.random.key(0), clicks, impressions, groups, 2, num_steps=500
    )
    mean = alpha / (alpha + beta)
    sd = np.sqrt(mean * (1 - mean) / (alpha + beta + 1) / 500)  # of the average rate
    fitted = np.asarray(record.alpha / (record.alpha + record.beta))
    np.testing.assert_array_less(np.abs(fitted - mean), 4 * sd)
    np.testing.assert_allclose(record.alpha + record.beta, alpha + beta, rtol=0.4)
    assert info.losses[-1] < info.losses[0]


def test_bad_input_names_the_argument(data):
    estimates, noise, groups = data
    with pytest.raises(InvalidArgumentError, match="^group_of_feature:"):
        hi.fit_gaussian_type2(jax.random.key(0), estimates, noise, groups, MU.size + 1)
    with pytest.raises(InvalidArgumentError, match="^sampling_variances:"):
        hi.fit_gaussian_type2(jax.random.key(0), estimates, -noise, groups, MU.size)
    with pytest.raises(InvalidArgumentError, match="^clicks:"):
        hi.fit_beta_binomial_type2(jax.random.key(0), [3, 5], [4, 4], [0, 0], 1)
    with pytest.raises(InvalidArgumentError, match="^group_of_item:"):
        hi.fit_beta_binomial_type2(jax.random.key(0), [3, 1], [4, 4], [0, 2], 2)
