"""Delay distributions: the calibrated mixture hits Chapelle's statistics; CDFs against
closed forms, samples against the CDF (Kolmogorov-Smirnov) and the mean.

Statistical tests use fixed seeds; tolerances are 4 standard errors unless said otherwise,
the two KS tests reject at p < 1e-3 (failure budget about 2e-3 for the whole file).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from prime_science.bandits import delayed
from prime_science.core.errors import InvalidArgumentError


@pytest.mark.slow
def test_calibrated_mixture_hits_chapelle_statistics():
    """Chapelle (2014)'s statistics: F(1 h) = 0.35 and F(24 h) = 0.50 within the 30-day window,
    analytically and empirically (n = 2e5: s.e. about 0.0011, tolerance 0.01)."""
    params = delayed.calibrated_delay_mixture()
    cdf = np.asarray(delayed.delay_cdf(params, jnp.array([1.0, 24.0, 720.0, 1e4])))
    np.testing.assert_allclose(cdf, [0.35, 0.50, 1.0, 1.0], atol=1e-5)
    samples = np.asarray(delayed.sample_delays(jax.random.key(12), params, 200_000))
    assert samples.min() >= 0 and samples.max() <= 720.0
    assert abs(np.mean(samples <= 1.0) - 0.35) < 0.01
    assert abs(np.mean(samples <= 24.0) - 0.50) < 0.01
    ks = st.kstest(samples[:20_000], lambda t: np.asarray(delayed.delay_cdf(params, t)))
    assert ks.pvalue > 1e-3


def test_calibration_is_solved_not_copied():
    for shares, window in [((0.40, 0.60), 240.0), ((0.36, 0.99), 720.0)]:
        params = delayed.calibrated_delay_mixture(*shares, window=window)
        cdf = delayed.delay_cdf(params, jnp.array([1.0, 24.0]))
        np.testing.assert_allclose(cdf, shares, atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="one_hour_share: expected a share above 0.32"):
        delayed.calibrated_delay_mixture(0.30, 0.5)  # the fast part alone gives 0.3237 by 1 h
    with pytest.raises(InvalidArgumentError, match="one_day_share: expected a number in"):
        delayed.calibrated_delay_mixture(0.35, 0.2)


def test_exponential_delays():
    params = delayed.exponential_delays(5.0)
    t = np.array([0.0, 1.0, 5.0, 50.0])
    np.testing.assert_allclose(delayed.delay_cdf(params, t), 1 - np.exp(-t / 5), rtol=1e-6)
    samples = np.asarray(delayed.sample_delays(jax.random.key(1), params, 50_000))
    assert abs(samples.mean() - 5.0) < 4 * 5.0 / np.sqrt(50_000)
    truncated = delayed.exponential_delays(5.0, window=10.0)
    expected = (1 - np.exp(-t / 5)) / (1 - np.exp(-2.0))
    np.testing.assert_allclose(delayed.delay_cdf(truncated, t), np.minimum(expected, 1), rtol=1e-6)
    samples = np.asarray(delayed.sample_delays(jax.random.key(2), truncated, 20_000))
    assert samples.max() <= 10.0
    assert st.kstest(samples, lambda t: np.asarray(delayed.delay_cdf(truncated, t))).pvalue > 1e-3
    with pytest.raises(InvalidArgumentError, match="mean: expected a finite number > 0"):
        delayed.exponential_delays(0.0)
    with pytest.raises(InvalidArgumentError, match="n: expected a positive integer"):
        delayed.sample_delays(jax.random.key(0), params, 0)
