"""Method-of-moments meta-prior: equals a direct numpy computation; unbiased before truncation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.priors import moments as mm


def _numpy_moments(estimates, noise, groups, num_groups):
    """The formulas of :mod:`prime_science.priors.moments`, group by group, in float64."""
    rows = []
    for k in range(num_groups):
        x, s2 = estimates[groups == k], noise[groups == k]
        tau2 = x.var(ddof=1) - s2.mean()
        rows.append((x.mean(), max(tau2, 0.0), tau2, x.size))
    return np.array(rows).T


def test_equals_numpy_on_1e6_weights_in_100_groups():
    rng = np.random.default_rng(0)
    num, groups_n = 1_000_000, 100
    groups = rng.integers(0, groups_n, num).astype(np.int32)
    mu, tau = rng.normal(0, 1, groups_n), rng.uniform(0.0, 0.5, groups_n)
    noise = rng.uniform(0.01, 0.2, num)
    estimates = mu[groups] + rng.normal(size=num) * np.sqrt(tau[groups] ** 2 + noise)
    expected = _numpy_moments(estimates, noise, groups, groups_n)
    got = mm.method_of_moments(
        estimates.astype(np.float32), noise.astype(np.float32), groups, groups_n
    )
    np.testing.assert_allclose(got.mean, expected[0], atol=2e-5)
    np.testing.assert_allclose(got.variance, expected[1], atol=5e-5)
    np.testing.assert_allclose(got.untruncated_variance, expected[2], atol=5e-5)
    np.testing.assert_array_equal(got.count, expected[3])
    assert np.all(got.variance >= 0)
    assert np.all(got.variance == np.maximum(got.untruncated_variance, 0))


def test_float64_exact_left_out_features_and_jit():
    rng = np.random.default_rng(1)
    groups = rng.integers(-1, 3, 200).astype(np.int32)
    estimates, noise = rng.normal(size=200), rng.uniform(0, 1, 200)
    noise[groups < 0] = np.inf  # left-out rows may carry anything
    expected = _numpy_moments(estimates, noise, groups, 3)
    with jax.enable_x64(True):
        got = mm.method_of_moments(estimates, noise, groups, 3)
        np.testing.assert_allclose(got.untruncated_variance, expected[2], rtol=1e-12)
        np.testing.assert_allclose(got.mean, expected[0], rtol=1e-12)
    jitted = jax.jit(mm.method_of_moments, static_argnums=3)(
        jnp.asarray(estimates, jnp.float32), jnp.asarray(noise, jnp.float32), groups, 3
    )
    np.testing.assert_allclose(jitted.mean, expected[0], rtol=1e-5)


def test_untruncated_variance_is_unbiased_and_truncation_biases_up():
    """1,000 replicates of 1,000 weights with tau^2 = 0.01, s^2 ~ U(0.02, 0.06): the mean of
    tau~^2 is within 3 s.e. of tau^2 (failure budget 0.3% under normality); the truncated
    mean is larger."""
    tau2, reps, n = 0.01, 1000, 1000
    key_noise, key_w = jax.random.split(jax.random.key(0))
    noise = jax.random.uniform(key_noise, (n,), minval=0.02, maxval=0.06)
    draws = jax.random.normal(key_w, (reps, n)) * jnp.sqrt(tau2 + noise)
    fit = jax.vmap(lambda x: mm._moments(x, noise, jnp.zeros(n, jnp.int32), num_groups=1))(draws)
    untruncated = np.asarray(fit.untruncated_variance[:, 0], np.float64)
    se = untruncated.std(ddof=1) / np.sqrt(reps)
    assert abs(untruncated.mean() - tau2) < 3 * se
    # with 50 weights per group tau~^2 is often negative: truncation then biases upward
    small = jax.vmap(lambda x: mm._moments(x, noise[:50], jnp.zeros(50, jnp.int32), num_groups=1))(
        draws[:, :50]
    )
    assert (small.untruncated_variance < 0).mean() > 0.1
    assert small.variance.mean() > small.untruncated_variance.mean() + se


def test_meta_prior_fallbacks_and_floor():
    moments = mm.GroupMoments(
        mean=jnp.array([0.5, 2.0, jnp.nan]),
        variance=jnp.array([0.0, jnp.nan, jnp.nan]),
        untruncated_variance=jnp.array([-0.1, jnp.nan, jnp.nan]),
        sample_variance=jnp.array([0.1, jnp.nan, jnp.nan]),
        mean_sampling_variance=jnp.array([0.2, 0.1, jnp.nan]),
        count=jnp.array([10.0, 1.0, 0.0]),
    )
    record = mm.meta_prior(moments, jnp.array([0, 1, 2]), fallback_variance=3.0, min_variance=1e-3)
    np.testing.assert_allclose(record.mean, [0.5, 2.0, 0.0])
    np.testing.assert_allclose(record.variance, [1e-3, 3.0, 3.0])


def test_divide_out_prior_inverts_a_gaussian_update():
    """Prior N(m0, v0) times a Gaussian likelihood N(w^; w, s^2) gives a posterior; dividing
    the prior out returns (w^, s^2) exactly; untouched features get s^2 = inf."""
    m0, v0 = jnp.array([0.0, 0.3, 0.0]), jnp.array([1.0, 2.0, 1.0])
    w_hat, s2 = jnp.array([0.7, -0.2, 0.0]), jnp.array([0.5, 0.1, jnp.inf])
    precision = 1 / v0 + 1 / s2
    mean = (m0 / v0 + jnp.where(jnp.isinf(s2), 0, w_hat / s2)) / precision
    estimate, noise = mm.divide_out_prior(mean, 1 / precision, m0, v0)
    np.testing.assert_allclose(estimate[:2], w_hat[:2], rtol=1e-5)
    np.testing.assert_allclose(noise[:2], s2[:2], rtol=1e-5)
    assert estimate[2] == 0 and np.isinf(noise[2])


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((np.zeros(3), np.zeros(2), np.zeros(3, int), 2), "sampling_variances"),
        ((np.zeros(3), np.zeros(3), np.zeros(2, int), 2), "group_of_feature"),
        ((np.zeros(3), -np.ones(3), np.zeros(3, int), 2), "sampling_variances"),
        ((np.array([0, np.nan, 0]), np.ones(3), np.zeros(3, int), 2), "estimates"),
        ((np.zeros(3), np.ones(3), np.array([0, 1, 2]), 2), "group_of_feature"),
        ((np.zeros(3), np.ones(3), np.zeros(3), 2), "group_of_feature"),
        ((np.zeros(3), np.ones(3), np.zeros(3, int), 0), "num_groups"),
    ],
)
def test_bad_input_names_the_argument(args, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}:"):
        mm.method_of_moments(*args)
