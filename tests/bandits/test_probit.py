"""Probit ADF: exact tilted moments, stability, order, predictive, selection rules, errors."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate as integrate
import scipy.stats as st
from jax.scipy.special import log_ndtr

from prime_science.bandits.probit import ProbitState, adf_factor_update, probit_adf
from prime_science.bandits.selection import RULES
from prime_science.core.errors import InvalidArgumentError


def dense(feature_ids, num_features):
    """``x`` as a dense count matrix ``[n, M]`` (a repeated id counts twice, padding 0)."""
    feature_ids = np.asarray(feature_ids)
    x = np.zeros((feature_ids.shape[0], num_features))
    rows = np.repeat(np.arange(feature_ids.shape[0]), feature_ids.shape[1])
    ids = feature_ids.ravel()
    np.add.at(x, (rows[ids >= 0], ids[ids >= 0]), 1.0)
    return x


def tilted_moments(mean, variance, x, y, noise):
    """Exact posterior mean and variance of every weight after one event, by quadrature.

    Prior ``w ~ N(mu, diag(sigma^2))``, likelihood ``Phi(y x^T w / beta)``, ``y = +-1``. The
    likelihood depends on ``w`` only through ``s = x^T w``, so the posterior factorises as
    ``p(w | D) = p(w | s) p(s | D)`` with the Gaussian prior conditional ``p(w | s)``:
    ``s ~ N(m, S)`` with ``m = x^T mu``, ``S = sum_i x_i^2 sigma_i^2``,
    ``Cov(w_i, s) = x_i sigma_i^2``, hence

        E[w_i | s]   = mu_i + (x_i sigma_i^2 / S) (s - m),
        Var[w_i | s] = sigma_i^2 - (x_i sigma_i^2)^2 / S.

    The laws of total expectation and variance over the 1-D tilted density
    ``p(s | D) ∝ N(s; m, S) Phi(y s / beta)`` give

        E[w_i | D]   = mu_i + (x_i sigma_i^2 / S) (E[s | D] - m),
        Var[w_i | D] = sigma_i^2 - (x_i sigma_i^2)^2 / S + (x_i sigma_i^2 / S)^2 Var[s | D].

    ``E[s | D]`` and ``Var[s | D]`` come from adaptive quadrature in ``z = (s - m) / sqrt(S)``
    (scipy ``quad``, relative tolerance 1e-13); the moments of ``z`` are taken about 0, the
    prior mean, so nothing cancels.
    """
    m, total = x @ mean, (x * x) @ variance
    scale = np.sqrt(total)
    density = lambda z: st.norm.pdf(z) * st.norm.cdf(y * (m + scale * z) / noise)
    moment = lambda power: integrate.quad(
        lambda z: z**power * density(z), -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=200
    )[0]
    z0, z1, z2 = moment(0), moment(1), moment(2)
    mean_z, var_z = z1 / z0, z2 / z0 - (z1 / z0) ** 2
    gain = x * variance / scale  # Cov(w_i, s) / sqrt(S)
    return mean + gain * mean_z, variance - gain**2 + gain**2 * var_z


ADF_CASES = [
    # (prior mean, prior variance, active ids, click, noise)
    ([0.3, -1.0, 0.5, 2.0], [1.0, 2.0, 0.5, 0.1], [0, 2, -1], 1, 1.0),
    ([0.3, -1.0, 0.5, 2.0], [1.0, 2.0, 0.5, 0.1], [0, 2, -1], 0, 1.0),
    ([0.1, 0.4, -0.2, 0.7], [0.3, 1.5, 0.8, 2.0], [1, 1, 3], 1, 0.5),  # id 1 counts twice
    ([-3.0, 0.0, 0.0, 0.0], [0.2, 1.0, 1.0, 1.0], [-1, 0, -1], 1, 0.3),  # t about -5
    ([0.5, -0.5, 1.0, -1.0], [0.7, 0.7, 0.2, 3.0], [0, 1, 2, 3], 0, 2.0),
    ([2.0, 3.0, 0.0, 0.0], [0.05, 0.02, 1.0, 1.0], [0, 1, -1, -1], 0, 0.4),  # t about -11
]


@pytest.mark.parametrize("case", ADF_CASES)
def test_single_update_equals_exact_tilted_moments(case):
    mean, variance, ids, click, noise = case
    with jax.enable_x64(True):
        policy = probit_adf(4, prior_mean=mean, prior_variance=variance, noise=noise)
        state = policy.init(jnp.float64)
        new = policy.update(state, jnp.asarray([ids], jnp.int32), jnp.asarray([click]))
        assert new.mean.dtype == jnp.float64 and new.variance.dtype == jnp.float64
        new_mean, new_variance = np.asarray(new.mean), np.asarray(new.variance)
    x = dense([ids], 4)[0]
    exact_mean, exact_variance = tilted_moments(
        np.asarray(mean), np.asarray(variance), x, 2 * click - 1, noise
    )
    np.testing.assert_allclose(new_mean, exact_mean, rtol=1e-6, atol=0)
    np.testing.assert_allclose(new_variance, exact_variance, rtol=1e-6, atol=0)


def reference_adf(mean, variance, x, y, noise):
    """The ADF equations of Graepel et al. (2010) in float64 numpy, ``v`` from scipy's log
    pdf / log cdf."""
    total = noise**2 + (x * x) @ variance
    t = y * (x @ mean) / np.sqrt(total)
    v = np.exp(st.norm.logpdf(t) - st.norm.logcdf(t))
    lam = v * (v + t)
    return (
        mean + y * x * variance / np.sqrt(total) * v,
        variance * (1 - x * x * variance / total * lam),
    )


@pytest.mark.parametrize("click", [1, 0])
def test_float32_update_is_finite_at_t_plus_minus_40(click):
    """``t = +-40`` (the naive ``phi / Phi`` is 0/0 from ``t ~ -13`` in float32)."""
    noise, variance = 1.0, 0.5
    mean = 40.0 * np.sqrt(noise**2 + variance)  # t = +40 for a click, -40 for no click
    policy = probit_adf(2, prior_mean=[mean, 0.0], prior_variance=variance, noise=noise)
    state = policy.init()
    new = policy.update(state, jnp.array([[0, -1]]), jnp.array([click], jnp.float32))
    assert np.all(np.isfinite(new.mean)) and np.all(np.isfinite(new.variance))
    assert np.all(np.asarray(new.variance) > 0)
    x = np.array([1.0, 0.0])
    exact_mean, exact_variance = reference_adf(
        np.array([mean, 0.0]), np.full(2, variance), x, 2 * click - 1, noise
    )
    np.testing.assert_allclose(np.asarray(new.mean), exact_mean, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new.variance), exact_variance, rtol=1e-5)


def test_variance_stays_positive_when_rounding_drives_it_to_zero():
    """``sigma^2 >> beta^2`` and ``t = -1e4``: ``lambda`` and ``sigma^2 / Sigma^2`` round to 1
    in float32, the factor to 0, and the floor keeps the variance ``> 0``."""
    policy = probit_adf(1, prior_mean=1e6, prior_variance=1e4, noise=1e-4)
    new = policy.update(policy.init(), jnp.array([[0]]), jnp.array([0.0]))
    assert np.isfinite(new.mean[0]) and 0 < new.variance[0] < 1e-30


def test_adf_is_order_dependent_and_a_scan_of_single_updates():
    policy = probit_adf(5, prior_variance=[1.0, 0.5, 2.0, 1.0, 0.3])
    state = policy.init()
    a, b = np.array([[0, 1, 2]]), np.array([[1, 2, 4]])
    ab = policy.update(state, jnp.asarray(np.concatenate([a, b])), jnp.array([1.0, 0.0]))
    ba = policy.update(state, jnp.asarray(np.concatenate([b, a])), jnp.array([0.0, 1.0]))
    one_by_one = policy.update(policy.update(state, a, jnp.array([1.0])), b, jnp.array([0.0]))
    for got, want in zip(ab, one_by_one, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6)
    assert np.abs(np.asarray(ab.mean) - np.asarray(ba.mean)).max() > 1e-3
    assert np.abs(np.asarray(ab.variance) - np.asarray(ba.variance)).max() > 1e-3


def test_predict_matches_monte_carlo_over_the_posterior():
    """``Phi(x^T mu / Sigma) = E_w[Phi(x^T w / beta)]``; |error| < 4 s.e. per row (5 rows:
    false-failure budget < 5 x 6.3e-5 under the normal approximation; the keys are fixed)."""
    rng = np.random.default_rng(0)
    num_features, noise = 6, 0.7
    policy = probit_adf(num_features, prior_mean=0.2, prior_variance=0.8, noise=noise)
    events = rng.integers(-1, num_features, (30, 3))
    state = policy.update(policy.init(), jnp.asarray(events), jnp.asarray(rng.integers(0, 2, 30)))
    rows = np.array([[0, 1, -1], [2, 2, 5], [3, -1, -1], [-1, -1, -1], [0, 4, 5]])
    predicted = np.asarray(policy.predict(state, jnp.asarray(rows)), np.float64)
    weights = np.asarray(state.mean, np.float64) + np.sqrt(
        np.asarray(state.variance, np.float64)
    ) * rng.standard_normal((200_000, num_features))
    draws = st.norm.cdf(weights @ dense(rows, num_features).T / noise)
    standard_error = draws.std(axis=0) / np.sqrt(draws.shape[0])
    np.testing.assert_array_less(np.abs(predicted - draws.mean(axis=0)), 4 * standard_error + 1e-7)


def trained(num_features=30, num_events=200, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    policy = probit_adf(num_features, prior_variance=0.5, **kwargs)
    events = jnp.asarray(rng.integers(-1, num_features, (num_events, 4)))
    clicks = jnp.asarray(rng.integers(0, 2, num_events))
    return policy, policy.update(policy.init(), events, clicks), rng


def test_thompson_selection_is_the_top_k_of_the_same_draw():
    """Brute force: ``w~ = mu + sigma * normal(key, (M,), dtype)``, dense ``x @ w~``, argsort."""
    policy, state, rng = trained()
    candidates = rng.integers(-1, 30, (500, 4))
    candidates[0] = [7, 7, -1, -1]  # a repeated id counts twice in the score too
    key = jax.random.key(3)
    selection = policy.sample(key, state, jnp.asarray(candidates), 8)
    draw = np.asarray(state.mean) + np.sqrt(np.asarray(state.variance)) * np.asarray(
        jax.random.normal(key, (30,), state.mean.dtype)
    )
    scores = dense(candidates, 30) @ draw
    np.testing.assert_array_equal(np.asarray(selection.arms), np.argsort(-scores)[:8])
    np.testing.assert_allclose(np.asarray(selection.scores), scores[selection.arms], rtol=1e-5)


def test_thompson_with_zero_variance_equals_greedy():
    policy, state, rng = trained()
    state = state._replace(variance=jnp.zeros_like(state.variance))
    greedy = probit_adf(30, exploration="greedy")
    candidates = jnp.asarray(rng.integers(-1, 30, (400, 4)))
    for seed in range(3):
        a = policy.sample(jax.random.key(seed), state, candidates, 5)
        b = greedy.sample(jax.random.key(seed + 10), state, candidates, 5)
        np.testing.assert_array_equal(np.asarray(a.arms), np.asarray(b.arms))
        np.testing.assert_allclose(np.asarray(a.scores), np.asarray(b.scores), rtol=1e-6)


def test_thompson_scores_follow_the_predictive_of_the_linear_score():
    """One candidate: its sampled score is ``N(x^T mu, sum x_i^2 sigma_i^2)`` (KS, p > 1e-3)."""
    policy, state, _ = trained()
    row = np.array([[2, 5, 5, -1]])
    scores = policy.sample_batch(jax.random.key(0), state, jnp.asarray(row), 1, 3000).scores
    x = dense(row, 30)[0]
    mean = x @ np.asarray(state.mean, np.float64)
    scale = np.sqrt((x * x) @ np.asarray(state.variance, np.float64))
    assert st.kstest(np.asarray(scores[:, 0], np.float64), st.norm(mean, scale).cdf).pvalue > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("exploration", RULES)
def test_sample_batch_shapes_and_requests_equal_single_samples(exploration):
    policy, state, rng = trained(exploration=exploration, epsilon=0.5)
    candidates = jnp.asarray(rng.integers(-1, 30, (300, 4)))
    batch = policy.sample_batch(jax.random.key(1), state, candidates, 4, 6)
    assert batch.arms.shape == (6, 4) and batch.arms.dtype == jnp.int32
    assert batch.scores.shape == (6, 4) and batch.scores.dtype == jnp.float32
    for j, key in enumerate(jax.random.split(jax.random.key(1), 6)):
        one = policy.sample(key, state, candidates, 4)
        np.testing.assert_array_equal(np.asarray(one.arms), np.asarray(batch.arms[j]))
        np.testing.assert_allclose(np.asarray(one.scores), np.asarray(batch.scores[j]), rtol=1e-6)
    assert len(np.unique(np.asarray(batch.arms), axis=0)) > 1 or exploration in ("greedy", "ucb")


def test_ucb_scores_are_mean_plus_scaled_spread():
    policy, state, rng = trained(exploration="ucb", ucb_scale=1.7)
    candidates = rng.integers(-1, 30, (200, 4))
    candidates[0] = [3, 3, 3, -1]
    x = dense(candidates, 30)
    bound = x @ np.asarray(state.mean, np.float64) + 1.7 * np.sqrt(
        (x * x) @ np.asarray(state.variance, np.float64)
    )
    selection = policy.sample(jax.random.key(0), state, jnp.asarray(candidates), 6)
    np.testing.assert_array_equal(np.asarray(selection.arms), np.argsort(-bound)[:6])
    np.testing.assert_allclose(np.asarray(selection.scores), bound[selection.arms], rtol=1e-5)


def test_greedy_breaks_ties_uniformly_at_random():
    """10 tied candidates, k = 1, 2,000 requests: chi-square p > 1e-3 against uniform; the
    best-first order of k = 3 picks among 2 tied leaders and a tied tail is also random."""
    policy = probit_adf(4, exploration="greedy")
    state = policy.init()
    tied = jnp.zeros((10, 2), jnp.int32)
    picks = np.asarray(policy.sample_batch(jax.random.key(0), state, tied, 1, 2000).arms[:, 0])
    assert st.chisquare(np.bincount(picks, minlength=10)).pvalue > 1e-3
    state = state._replace(mean=jnp.array([1.0, 0.5, 0.0, 0.0], state.mean.dtype))
    rows = jnp.array([[2], [0], [1], [1], [0], [1], [3]])  # scores 0, 1, .5, .5, 1, .5, 0
    batch = np.asarray(policy.sample_batch(jax.random.key(1), state, rows, 3, 400).arms)
    assert set(map(tuple, np.sort(batch[:, :2], axis=1))) == {(1, 4)}
    assert {1, 4} == set(batch[:, 0]) and {2, 3, 5} == set(batch[:, 2])


def test_epsilon_greedy_extremes():
    """``epsilon = 0`` is greedy; ``epsilon = 1`` picks uniformly (chi-square p > 1e-3)."""
    policy, state, rng = trained()
    candidates = jnp.asarray(rng.integers(-1, 30, (12, 4)))
    never = probit_adf(30, exploration="epsilon_greedy", epsilon=0.0)
    greedy = probit_adf(30, exploration="greedy")
    a = never.sample_batch(jax.random.key(0), state, candidates, 3, 20)
    b = greedy.sample(jax.random.key(0), state, candidates, 3)
    assert np.all(np.asarray(a.arms) == np.asarray(b.arms))
    always = probit_adf(30, exploration="epsilon_greedy", epsilon=1.0)
    picks = np.asarray(always.sample_batch(jax.random.key(1), state, candidates, 1, 2400).arms)
    assert st.chisquare(np.bincount(picks[:, 0], minlength=12)).pvalue > 1e-3


def test_learns_a_probit_truth():
    """20 features, 2,000 events of 5 distinct active ids: corr(posterior mean, truth) > 0.9."""
    rng = np.random.default_rng(0)
    truth = rng.standard_normal(20)
    events = np.stack([rng.choice(20, 5, replace=False) for _ in range(2000)])
    clicks = rng.random(2000) < st.norm.cdf(dense(events, 20) @ truth)
    policy = probit_adf(20)
    state = policy.update(policy.init(), jnp.asarray(events), jnp.asarray(clicks))
    assert np.corrcoef(np.asarray(state.mean), truth)[0, 1] > 0.9


def test_forgetting_one_returns_exactly_the_prior():
    prior_mean, prior_variance = np.linspace(-1, 1, 8), np.linspace(0.1, 3.0, 8)
    policy = probit_adf(
        8, prior_mean=prior_mean, prior_variance=prior_variance, forgetting=1.0, noise=0.5
    )
    state = policy.init()
    rng = np.random.default_rng(1)
    new = policy.update(state, jnp.asarray(rng.integers(-1, 8, (20, 3))), jnp.ones(20))
    np.testing.assert_array_equal(np.asarray(new.mean), np.asarray(state.mean))
    np.testing.assert_array_equal(np.asarray(new.variance), np.asarray(state.variance))


def test_forgetting_is_a_natural_parameter_blend():
    """``1/sigma^2`` and ``mu/sigma^2`` move a fraction ``eps`` toward the prior's (float64)."""
    with jax.enable_x64(True):
        events, clicks = jnp.array([[0, 1], [1, 2]]), jnp.array([1.0, 0.0])
        plain = probit_adf(4, prior_mean=0.3, prior_variance=2.0)
        forgetful = probit_adf(4, prior_mean=0.3, prior_variance=2.0, forgetting=0.3)
        before = plain.update(plain.init(jnp.float64), events, clicks)
        after = forgetful.update(forgetful.init(jnp.float64), events, clicks)
        precision = 0.7 / np.asarray(before.variance) + 0.3 / 2.0
        shift = 0.7 * np.asarray(before.mean) / np.asarray(before.variance) + 0.3 * 0.3 / 2.0
        np.testing.assert_allclose(np.asarray(after.variance), 1 / precision, rtol=1e-12)
        np.testing.assert_allclose(np.asarray(after.mean), shift / precision, rtol=1e-12)


def test_dtypes_are_preserved():
    policy = probit_adf(6)
    ids = jnp.array([[0, 1], [2, -1]])
    state = policy.init()
    new = policy.update(state, ids, jnp.array([True, False]))
    chex.assert_trees_all_equal_shapes_and_dtypes(new, state)
    assert policy.predict(new, ids).dtype == jnp.float32
    with jax.enable_x64(True):
        state = policy.init(jnp.float64)
        new = policy.update(state, ids, jnp.array([1.0, 0.0], jnp.float32))
        chex.assert_trees_all_equal_shapes_and_dtypes(new, state)
        assert policy.predict(new, ids).dtype == jnp.float64
        assert policy.sample(jax.random.key(0), new, ids, 1).scores.dtype == jnp.float64


GOOD_IDS = np.array([[0, 1], [2, -1], [3, 3]], np.int32)
GOOD_CLICKS = np.array([1.0, 0.0, 1.0])


@pytest.mark.parametrize(
    ("ids", "clicks", "name"),
    [
        (np.array([[0, 1], [2, -2], [3, 3]]), GOOD_CLICKS, "feature_ids"),
        (np.array([[0, 1], [2, 8], [3, 3]]), GOOD_CLICKS, "feature_ids"),
        (GOOD_IDS.astype(np.float32), GOOD_CLICKS, "feature_ids"),
        (GOOD_IDS[0], GOOD_CLICKS[:1], "feature_ids"),  # rank 1
        (GOOD_IDS, np.array([1.0, 2.0, 0.0]), "clicks"),
        (GOOD_IDS, np.array([1.0, np.nan, 0.0]), "clicks"),
        (GOOD_IDS, np.array([1.0, 0.5, 0.0]), "clicks"),
        (GOOD_IDS, GOOD_CLICKS[:2], "clicks"),
        (GOOD_IDS, GOOD_CLICKS[:, None], "clicks"),
    ],
)
def test_bad_update_inputs_raise_named_errors_and_leave_state_unchanged(ids, clicks, name):
    policy, state, _ = trained(num_features=8, num_events=10)
    mean, variance = np.asarray(state.mean).copy(), np.asarray(state.variance).copy()
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        policy.update(state, jnp.asarray(ids), jnp.asarray(clicks))
    np.testing.assert_array_equal(np.asarray(state.mean), mean)
    np.testing.assert_array_equal(np.asarray(state.variance), variance)


def test_bad_sample_predict_and_state_inputs_raise_named_errors():
    policy, state, _ = trained(num_features=8, num_events=10)
    key, ids = jax.random.key(0), jnp.asarray(GOOD_IDS)
    cases = [
        (lambda: policy.sample(key, state, ids, 0), "k"),
        (lambda: policy.sample(key, state, ids, 4), "k"),
        (lambda: policy.sample(key, state, ids, 1.0), "k"),
        (lambda: policy.sample(key, state, ids + 8, 1), "candidate_ids"),
        (lambda: policy.sample_batch(key, state, ids, 1, 0), "num_requests"),
        (lambda: policy.predict(state, ids[:, 0]), "feature_ids"),
        (lambda: policy.predict(state._replace(mean=state.mean[:4]), ids), "state.mean"),
        (lambda: policy.update((state.mean, state.variance), ids, GOOD_CLICKS), "state"),
    ]
    for call, name in cases:
        with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
            call()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_features": 0}, "num_features"),
        ({"prior_variance": 0.0}, "prior_variance"),
        ({"prior_variance": [1.0, -1.0, 1.0]}, "prior_variance"),
        ({"prior_variance": [1.0, 1.0]}, "prior_variance"),
        ({"prior_mean": [0.0, np.nan, 0.0]}, "prior_mean"),
        ({"noise": 0.0}, "noise"),
        ({"forgetting": 1.5}, "forgetting"),
        ({"exploration": "softmax"}, "exploration"),
        ({"epsilon": -0.1}, "epsilon"),
        ({"ucb_scale": np.inf}, "ucb_scale"),
    ],
)
def test_bad_configuration_raises_named_errors(kwargs, name):
    kwargs = {"num_features": 3, **kwargs}
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        probit_adf(**kwargs)


@pytest.mark.slow
@pytest.mark.parametrize("noise", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("click", [0.0, 1.0])
def test_factor_update_with_the_probit_factor_is_the_adf_step(noise, click):
    """adf_factor_update(log Phi(y s / beta)) == the closed-form step (float64): 32 nodes give
    ~1e-16 relative at v / beta^2 ~ 1 and ~2e-6 at v / beta^2 ~ 5 (beta = 0.5 here)."""
    rng = np.random.default_rng(int(10 * noise + click))
    with jax.enable_x64(True):
        policy = probit_adf(
            10,
            prior_mean=0.3 * rng.normal(size=10),
            prior_variance=rng.uniform(0.05, 0.4, 10),
            noise=noise,
        )
        state = policy.init(jnp.float64)
        ids = jnp.array([[0, 3, 5, -1]])
        closed = policy.update(state, ids, jnp.array([click]))
        sign = 2.0 * click - 1.0
        quadrature = adf_factor_update(state, ids[0], lambda s: log_ndtr(sign * s / noise))
        rtol = 1e-5 if noise < 1 else 1e-10
        np.testing.assert_allclose(quadrature.mean, closed.mean, rtol=rtol, atol=1e-12)
        np.testing.assert_allclose(quadrature.variance, closed.variance, rtol=rtol)


def test_factor_update_matches_scipy_quadrature_for_a_bounded_factor():
    """A non-probit factor: the tilted moments against scipy.integrate.quad (float64)."""
    with jax.enable_x64(True):
        state = ProbitState(mean=jnp.array([0.2, -0.5, 0.1]), variance=jnp.array([0.3, 0.2, 0.5]))
        ids = jnp.array([0, 1, 2])

        def log_factor(s):
            return jnp.log(0.2 + 0.8 * jax.scipy.special.ndtr(2.0 * s - 0.3))

        new = adf_factor_update(state, ids, log_factor)
        m, v = -0.2, 1.0

        def density(s):
            return math.exp(float(log_factor(s))) * st.norm.pdf(s, m, math.sqrt(v))

        z = integrate.quad(density, -15, 15)[0]
        e = integrate.quad(lambda s: s * density(s), -15, 15)[0] / z
        var = integrate.quad(lambda s: (s - e) ** 2 * density(s), -15, 15)[0] / z
        mean0, var0 = np.asarray(state.mean), np.asarray(state.variance)
        # the factor's slope (2) against the score's s.d. (1) is like v / beta^2 = 4: ~1e-6
        np.testing.assert_allclose(new.mean, mean0 + var0 * (e - m) / v, rtol=1e-5)
        np.testing.assert_allclose(new.variance, var0 - var0**2 * (v - var) / v**2, rtol=1e-5)


def test_factor_update_ignores_padding_only_events():
    state = probit_adf(4).init()
    same = adf_factor_update(state, jnp.array([-1, -1]), lambda s: -s * s)
    np.testing.assert_array_equal(same.mean, state.mean)
    np.testing.assert_array_equal(same.variance, state.variance)


# --- sharding: run with XLA_FLAGS=--xla_force_host_platform_device_count=8 ----------------


@pytest.mark.sharding
@pytest.mark.skipif(
    jax.device_count() < 2,
    reason="needs several devices: XLA_FLAGS=--xla_force_host_platform_device_count=8",
)
def test_candidate_sharded_thompson_equals_single_device():
    from prime_science.core import mesh as mesh_lib

    mesh = mesh_lib.arm_mesh()
    num_candidates, num_features = 512 * mesh.devices.size, 300
    rng = np.random.default_rng(0)
    ids = jnp.asarray(rng.integers(-1, num_features, (num_candidates, 8)), jnp.int32)
    single = probit_adf(num_features)
    sharded = probit_adf(num_features, mesh=mesh)
    state = single.init()
    state = single.update(state, ids[:200], jnp.asarray(rng.integers(0, 2, 200), jnp.float32))
    placed = jax.device_put(ids, mesh_lib.arm_sharding(mesh))
    for k in (1, 10):
        for seed in range(3):
            one = single.sample(jax.random.key(seed), state, ids, k)
            many = sharded.sample(jax.random.key(seed), state, placed, k)
            np.testing.assert_array_equal(np.asarray(one.arms), np.asarray(many.arms))
            np.testing.assert_allclose(np.asarray(one.scores), np.asarray(many.scores), rtol=1e-6)
    one = single.sample_batch(jax.random.key(5), state, ids, 4, 3)
    many = sharded.sample_batch(jax.random.key(5), state, placed, 4, 3)
    np.testing.assert_array_equal(np.asarray(one.arms), np.asarray(many.arms))
    # an availability mask, sharded with the candidates: the same choices, all available
    available = jnp.asarray(rng.random(num_candidates) < 0.3)
    placed_mask = jax.device_put(available, mesh_lib.arm_sharding(mesh))
    one = single.sample_batch(jax.random.key(6), state, ids, 10, 3, available)
    many = sharded.sample_batch(jax.random.key(6), state, placed, 10, 3, placed_mask)
    np.testing.assert_array_equal(np.asarray(one.arms), np.asarray(many.arms))
    assert np.all(np.asarray(available)[np.asarray(many.arms)])


def test_mesh_needs_thompson_and_divisible_candidates():
    from prime_science.core import mesh as mesh_lib

    mesh = mesh_lib.arm_mesh(jax.devices()[:1])
    with pytest.raises(InvalidArgumentError, match="mesh"):
        probit_adf(4, exploration="greedy", mesh=mesh)
    if jax.device_count() > 1:
        mesh = mesh_lib.arm_mesh()
        policy = probit_adf(4, mesh=mesh)
        odd = jnp.zeros((mesh.devices.size + 1, 2), jnp.int32)
        with pytest.raises(InvalidArgumentError, match="candidate_ids"):
            policy.sample(jax.random.key(0), policy.init(), odd, 1)
