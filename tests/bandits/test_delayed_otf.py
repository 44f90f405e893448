"""OTF (Vernade et al. 2020): the windowed estimator on ledger rows targets tau_m theta."""

import numpy as np
import pytest

from prime_science.bandits import delayed
from prime_science.core.errors import InvalidArgumentError

F32 = np.float32


def test_otf_windowed_estimator_targets_tau_m_theta():
    """The OTF estimator targets tau_m theta (Vernade et al. 2020); at T = 2e4:
    |theta_hat - tau_m theta| / |tau_m theta| < 5%.

    One-hot-heavy actions make each coordinate a mean of about T/3 Bernoulli rewards:
    expected relative error about 1.3%, so 5% is about 3.8 s.e. of a chi_3 (budget ~1e-3),
    plus a window bias below m / T = 0.5%.
    """
    rng = np.random.default_rng(8)
    T, m, mean_delay = 20_000, 100, 50
    theta = np.array([0.3, 0.5, 0.7])
    items = rng.integers(0, 3, T)
    features = 0.7 * np.eye(3)[items] + 0.3 * rng.dirichlet(np.ones(3), T)
    rewards = rng.random(T) < features @ theta
    delays = rng.geometric(1 / mean_delay, T)
    ledger = delayed.ledger_init(T)
    shown = np.arange(T, dtype=F32)
    ledger = delayed.record_impressions(ledger, np.arange(T), np.arange(T), np.zeros(T, int), shown)
    arrived = rewards & (shown + delays <= T)
    ledger = delayed.record_labels(ledger, np.flatnonzero(arrived), (shown + delays)[arrived])
    rows = delayed.naive(ledger, F32(T), F32(m))
    gram, moment = delayed.otf_statistics(features[np.asarray(rows.item)], rows.label, rows.weight)
    estimate = np.asarray(delayed.otf_estimate(gram, moment))
    tau_m = 1 - (1 - 1 / mean_delay) ** m
    target = tau_m * theta
    assert np.linalg.norm(estimate - target) / np.linalg.norm(target) < 0.05
    assert np.linalg.norm(estimate - theta) / np.linalg.norm(theta) > 0.08  # scaled by tau_m
    np.testing.assert_allclose(gram, np.eye(3) + features.T @ features, rtol=1e-4)


def test_otf_statistics_rejects_bad_inputs():
    with pytest.raises(InvalidArgumentError, match="labels: expected the same length"):
        delayed.otf_statistics(np.ones((3, 2)), np.ones(2), np.ones(3))
    with pytest.raises(InvalidArgumentError, match="regularization: expected lambda >= 0"):
        delayed.otf_statistics(np.ones((3, 2)), np.ones(3), np.ones(3), -1.0)
