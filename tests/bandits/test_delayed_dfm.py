"""The delayed feedback model: its likelihood against the direct formula and a float64 oracle,
the E-step, the joint fit, the per-look probit ratios, and look_step against the probit ADF
update and a quadrature oracle.

Statistical tests use fixed seeds; tolerances are 4 standard errors unless said otherwise
(failure budget about 6e-5 per compared quantity, under 1e-3 for the whole file).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import ndtr

from prime_science.bandits import delayed
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.core.errors import InvalidArgumentError

F32 = np.float32


def _direct_log_likelihood(z, r, y, t):
    p, lam = 1 / (1 + np.exp(-z)), np.exp(r)
    return np.where(
        y == 1, np.log(p * lam * np.exp(-lam * t)), np.log(1 - p + p * np.exp(-lam * t))
    )


def _dfm_inputs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-4, 4, n),
        rng.uniform(-3, 1, n),
        (rng.random(n) < 0.4).astype(float),
        rng.uniform(0, 40, n),
    )


def test_dfm_log_likelihood_equals_direct_formula_where_safe():
    z, r, y, t = _dfm_inputs()
    with jax.enable_x64(True):
        ours = delayed.dfm_log_likelihood(z, r, y, t)
        assert ours.dtype == jnp.float64
        np.testing.assert_allclose(ours, _direct_log_likelihood(z, r, y, t), rtol=1e-12, atol=1e-14)
    ours32 = delayed.dfm_log_likelihood(*(x.astype(F32) for x in (z, r, y, t)))
    np.testing.assert_allclose(ours32, _direct_log_likelihood(z, r, y, t), rtol=2e-5, atol=1e-6)


def test_dfm_log_likelihood_gradient_matches_central_differences():
    z, r, y, t = _dfm_inputs(seed=1)
    with jax.enable_x64(True):
        total = lambda z, r: jnp.sum(delayed.dfm_log_likelihood(z, r, y, t))
        grad_z, grad_r = jax.grad(total, argnums=(0, 1))(z, r)
        h = 1e-6
        ll = lambda z, r: np.asarray(delayed.dfm_log_likelihood(z, r, y, t))
        fd_z = (ll(z + h, r) - ll(z - h, r)) / (2 * h)
        fd_r = (ll(z, r + h) - ll(z, r - h)) / (2 * h)
    np.testing.assert_allclose(grad_z, fd_z, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_r, fd_r, rtol=1e-6, atol=1e-8)


def test_dfm_log_likelihood_is_accurate_and_finite_at_extremes():
    """float32 against a float64 oracle where the naive float32 formula loses everything."""
    z = np.array([-30.0, 30.0, 30.0, -30.0, 0.0, 20.0, 0.3, 0.3])
    r = np.array([0.0, 0.0, 5.0, -20.0, -18.0, 3.0, 0.0, 0.0])
    t = np.array([1.0, 1e-7, 100.0, 1.0, 1.0, 500.0, 0.999, 1.001])  # last two: branch edge
    y = np.zeros_like(z)
    p = 1 / (1 + np.exp(-z))
    oracle = np.log1p(-p * -np.expm1(-np.exp(r) * t))
    big = p * -np.expm1(-np.exp(r) * t) >= 0.5
    oracle[big] = np.logaddexp(-np.logaddexp(0, z), -np.logaddexp(0, -z) - np.exp(r) * t)[big]
    args = [x.astype(F32) for x in (z, r, y, t)]
    ours = delayed.dfm_log_likelihood(*args)
    np.testing.assert_allclose(ours, oracle, rtol=1e-5, atol=1e-30)
    grads = jax.grad(lambda z, r: delayed.dfm_log_likelihood(z, r, args[2], args[3]).sum(), (0, 1))
    assert all(np.isfinite(np.asarray(g)).all() for g in grads(args[0], args[1]))
    converted = delayed.dfm_log_likelihood(args[0], args[1], np.ones(8, F32), args[3])
    assert np.isfinite(np.asarray(converted)).all()


def test_dfm_conversion_probability_is_bayes_rule():
    z, r, y, t = _dfm_inputs(seed=2)
    p, survive = 1 / (1 + np.exp(-z)), np.exp(-np.exp(r) * t)
    expected = np.where(y == 1, 1.0, p * survive / (1 - p + p * survive))
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            delayed.dfm_conversion_probability(z, r, y, t), expected, rtol=1e-10, atol=1e-300
        )


def _simulate_dfm(rng, p, rates, n_per_group, horizon=48.0):
    """Impressions of item g shown uniformly in the last ``horizon`` hours, converting with
    p[g] after Exponential(rates[g]) delays; arrived labels go through the ledger and come
    back as :func:`censored` rows."""
    items = np.repeat(np.arange(len(p)), n_per_group)
    n, now = items.size, F32(1000.0)
    shown = (now - rng.uniform(0, horizon, n)).astype(F32)
    label_at = (shown + rng.exponential(1 / np.asarray(rates)[items])).astype(F32)
    arrived = (rng.random(n) < np.asarray(p)[items]) & (label_at <= now)
    ledger = delayed.ledger_init(n)
    ledger = delayed.record_impressions(ledger, np.arange(n), items, np.zeros(n, int), shown)
    ledger = delayed.record_labels(ledger, np.flatnonzero(arrived), label_at[arrived])
    rows = delayed.censored(ledger, now)
    assert np.all(np.asarray(rows.weight) == 1)
    return np.asarray(rows.label), np.asarray(rows.time), np.asarray(rows.item)


def _standard_errors(labels, times, groups, theta, num_groups, shared_rate):
    """sqrt(diag(H^-1)) of the total negative log-likelihood, float64 observed Fisher."""
    with jax.enable_x64(True):
        labels, times = np.float64(labels), np.float64(times)

        def nll(theta):
            rate = theta[num_groups] if shared_rate else theta[num_groups:][groups]
            return -jnp.sum(delayed.dfm_log_likelihood(theta[groups], rate, labels, times))

        return np.sqrt(np.diag(np.linalg.inv(np.asarray(jax.hessian(nll)(theta)))))


@pytest.mark.slow
@pytest.mark.parametrize("shared_rate", [True, False])
def test_fit_dfm_recovers_conversion_rates_and_delay_rates(shared_rate):
    """Every fitted parameter within 4 observed-Fisher standard errors of the truth (the
    l2 = 1e-4 prior moves estimates by far less than one s.e. at this n)."""
    rng = np.random.default_rng(7)
    p = np.array([0.05, 0.2, 0.5])
    rates = np.array([0.2, 0.2, 0.2]) if shared_rate else np.array([0.1, 0.25, 0.5])
    labels, times, groups = _simulate_dfm(rng, p, rates, 8000)
    fit, info = delayed.fit_dfm(labels, times, groups, 3, shared_rate=shared_rate)
    assert bool(info.converged) and int(info.num_iters) < 200
    truth_rate = np.log(rates[:1] if shared_rate else rates)
    estimate = np.concatenate([fit.logit_p, fit.log_rate[:1] if shared_rate else fit.log_rate])
    truth = np.concatenate([np.log(p / (1 - p)), truth_rate])
    se = _standard_errors(labels, times, groups, estimate, 3, shared_rate)
    assert np.all(np.abs(estimate - truth) < 4 * se), (estimate, truth, se)
    # censoring biases the naive rate to p (1 - (1 - e^{-lambda H}) / (lambda H)), H = 48 h
    horizon = 48.0
    seen = 1 - (1 - np.exp(-rates * horizon)) / (rates * horizon)
    for g in range(3):
        naive_p = labels[groups == g].mean()
        naive_se = np.sqrt(p[g] * seen[g] * (1 - p[g] * seen[g]) / (groups == g).sum())
        assert abs(naive_p - p[g] * seen[g]) < 4 * naive_se


def test_fit_dfm_rejects_bad_inputs():
    labels, times, groups = np.array([1.0, 0.0]), np.array([1.0, 2.0]), np.array([0, 1])
    with pytest.raises(InvalidArgumentError, match=r"groups: expected group ids in \[0, 1\)"):
        delayed.fit_dfm(labels, times, groups, 1)
    with pytest.raises(InvalidArgumentError, match="labels: expected 0/1 labels"):
        delayed.fit_dfm(np.array([0.5, 0.0]), times, groups, 2)
    with pytest.raises(InvalidArgumentError, match="times: expected finite delays"):
        delayed.fit_dfm(labels, np.array([-1.0, 2.0]), groups, 2)
    with pytest.raises(InvalidArgumentError, match="groups: expected the same length"):
        delayed.fit_dfm(labels, times, np.array([0]), 2)
    with pytest.raises(InvalidArgumentError, match="weights: expected finite values"):
        delayed.fit_dfm(labels, times, groups, 2, weights=np.array([1.0, -1.0]))


@pytest.mark.slow
def test_fit_dfm_log_rate_prior_is_a_map_that_data_override():
    """A tight prior holds the rate at its centre; a loose one leaves the MLE; the MAP lies
    between the MLE and the centre."""
    rng = np.random.default_rng(11)
    labels, times, groups = _simulate_dfm(rng, np.array([0.2]), np.array([0.2]), 4000)
    mle, _ = delayed.fit_dfm(labels, times, groups, 1)
    centre = math.log(0.05)
    tight, _ = delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 1e-3))
    loose, _ = delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 1e3))
    medium, _ = delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 0.05))
    assert abs(float(tight.log_rate[0]) - centre) < 0.01
    assert abs(float(loose.log_rate[0]) - float(mle.log_rate[0])) < 1e-3
    assert centre < float(medium.log_rate[0]) < float(mle.log_rate[0])
    with pytest.raises(InvalidArgumentError, match="log_rate_prior: expected"):
        delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 0.0))


# --------------------------------------------------------- per-look ratios, look_step


def test_dfm_probit_log_ratio_telescopes_to_the_dfm_likelihood():
    """Summed over looks at ages 0 < 1 < 6 < 24 h (rate changing between looks, passed as
    previous_log_rate), the ratios equal the DFM log-likelihood at the last look."""
    u = jnp.linspace(-3.0, 2.0, 7)
    rates = [-math.log(12.0), -math.log(5.0), -math.log(30.0)]
    ages = [1.0, 6.0, 24.0]
    p = jax.scipy.special.ndtr(u)
    for arrival_look in (None, 0, 1, 2):
        total, before, previous = jnp.zeros_like(u), 0.0, rates[0]
        for j, (now, rate) in enumerate(zip(ages, rates, strict=True)):
            if arrival_look is not None and j > arrival_look:
                break  # the click was seen: nothing more is fed
            arrived = arrival_look == j
            total += delayed.dfm_probit_log_ratio(u, rate, before, now, arrived, previous)
            before, previous = now, rate
        if arrival_look is None:
            expected = jnp.log1p(-p * -jnp.expm1(-math.exp(rates[-1]) * ages[-1]))
        else:
            expected = jnp.log(p)
        np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-6)


def test_dfm_probit_log_ratio_is_zero_before_anything_is_watched():
    u = jnp.array([-40.0, 0.0, 40.0])
    np.testing.assert_array_equal(delayed.dfm_probit_log_ratio(u, 0.0, 0.0, 0.0, False), 0.0)
    assert np.all(np.isfinite(delayed.dfm_probit_log_ratio(u, 0.0, 0.0, 1e6, False)))


def test_dfm_probit_log_ratio_rejects_negative_or_decreasing_ages():
    with pytest.raises(InvalidArgumentError, match="now: expected ages with 0 <= before <= now"):
        delayed.dfm_probit_log_ratio(0.0, 0.0, -1.0, 2.0, False)
    with pytest.raises(InvalidArgumentError, match="now: expected ages"):
        delayed.dfm_probit_log_ratio(0.0, 0.0, 3.0, 2.0, False)


def _state(num_features=6):
    key_mean, key_var = jax.random.split(jax.random.key(3))
    return ProbitState(
        mean=0.5 * jax.random.normal(key_mean, (num_features,)),
        variance=jax.random.uniform(key_var, (num_features,), minval=0.2, maxval=1.0),
    )


def _look(state, ids, first, seen_before, seen_now, before, now, censored, log_rate=0.0, **kw):
    previous_log_rate = kw.pop("previous_log_rate", log_rate)
    return delayed.look_step(
        state,
        ids,
        jnp.bool_(first),
        jnp.bool_(seen_before),
        jnp.bool_(seen_now),
        jnp.float32(before),
        jnp.float32(now),
        jnp.float32(log_rate),
        jnp.float32(previous_log_rate),
        jnp.bool_(censored),
        **kw,
    )


@pytest.mark.slow
@pytest.mark.parametrize("click", [False, True])
def test_first_plain_look_is_the_library_adf_update(click):
    state, ids = _state(), jnp.array([0, 2, 5, -1], jnp.int32)
    library = probit_adf(6).update(state, ids[None], jnp.array([float(click)]))
    ours = _look(state, ids, True, False, click, 0.0, 1.0, censored=False)
    np.testing.assert_allclose(ours.mean, library.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.variance, library.variance, rtol=1e-5, atol=1e-6)


def test_later_plain_looks_feed_only_arrivals():
    state, ids = _state(), jnp.array([0, 2, 5, -1], jnp.int32)
    for seen_before, seen_now in ((False, False), (True, True)):
        same = _look(state, ids, False, seen_before, seen_now, 1.0, 6.0, censored=False)
        np.testing.assert_array_equal(same.mean, state.mean)
    positive = probit_adf(6).update(state, ids[None], jnp.array([1.0]))
    arrival = _look(state, ids, False, False, True, 1.0, 6.0, censored=False)
    np.testing.assert_allclose(arrival.mean, positive.mean, rtol=1e-5, atol=1e-6)


def test_censored_look_limits():
    state, ids = _state(), jnp.array([1, 3, 4, -1], jnp.int32)
    # nothing watched yet: the likelihood is 1, the posterior unchanged
    same = _look(state, ids, True, False, False, 0.0, 0.0, censored=True)
    np.testing.assert_allclose(same.mean, state.mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(same.variance, state.variance, rtol=1e-5, atol=1e-6)
    # watched for ever: a plain negative
    negative = probit_adf(6).update(state, ids[None], jnp.array([0.0]))
    final = _look(state, ids, True, False, False, 0.0, 1e4, censored=True)
    np.testing.assert_allclose(final.mean, negative.mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.variance, negative.variance, rtol=1e-4, atol=1e-5)
    # in between: a weaker pull than a negative
    partial = _look(state, ids, True, False, False, 0.0, 1.0, censored=True)
    moved, full = partial.mean - state.mean, negative.mean - state.mean
    assert np.all(np.abs(moved) <= np.abs(full) + 1e-6)
    assert np.any(np.abs(moved) > 1e-3)
    # a click already seen is never counted again
    seen = _look(state, ids, False, True, True, 1.0, 6.0, censored=True)
    np.testing.assert_array_equal(seen.mean, state.mean)


@pytest.mark.parametrize("arrived", [False, True])
def test_censored_later_look_matches_a_quadrature_oracle(arrived):
    """A later censored look (ages 6 h -> 24 h, the rate re-estimated in between, beta = 1.5)
    against the ADF projection of the tilted law computed by dense quadrature in float64:
    ``g(s) = (1 - p F(24)) / (1 - p F'(6))`` (nothing seen) or ``p / (1 - p F'(6))`` (the click
    arrived), ``p = Phi(s / beta)``, ``F`` with the new rate, ``F'`` with the previous one."""
    state, ids, beta = _state(), jnp.array([1, 3, 4, -1], jnp.int32), 1.5
    log_rate, previous_log_rate, before, now = -math.log(30.0), -math.log(5.0), 6.0, 24.0
    ours = _look(
        state, ids, False, False, arrived, before, now, censored=True, log_rate=log_rate,
        previous_log_rate=previous_log_rate, beta=beta,
    )  # fmt: skip
    active = np.array([1, 3, 4])
    mean, variance = np.float64(state.mean), np.float64(state.variance)
    m, v = mean[active].sum(), variance[active].sum()
    s = np.linspace(m - 12 * np.sqrt(v), m + 12 * np.sqrt(v), 40_001)
    p = ndtr(s / beta)
    denominator = 1 - p * -np.expm1(-np.exp(previous_log_rate) * before)
    numerator = p if arrived else 1 - p * -np.expm1(-np.exp(log_rate) * now)
    weight = numerator / denominator * np.exp(-0.5 * (s - m) ** 2 / v)
    tilted_mean = np.trapezoid(weight * s, s) / np.trapezoid(weight, s)
    tilted_variance = np.trapezoid(weight * (s - tilted_mean) ** 2, s) / np.trapezoid(weight, s)
    expected_mean, expected_variance = mean.copy(), variance.copy()
    expected_mean[active] += variance[active] * (tilted_mean - m) / v
    expected_variance[active] -= variance[active] ** 2 * (v - tilted_variance) / v**2
    np.testing.assert_allclose(ours.mean, expected_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.variance, expected_variance, rtol=1e-4, atol=1e-5)


def test_censored_looks_learn_the_click_rate_of_one_feature():
    """Many impressions of one feature, looked at 1, 6, 24 and 168 h old (mean delay 6 h):
    the censored model's predicted rate ends near the empirical click rate."""
    rng = np.random.default_rng(0)
    n, p, d = 300, 0.1, 6.0
    clicked = rng.uniform(size=n) < p
    delay = rng.exponential(d, size=n)
    state = ProbitState(mean=jnp.zeros(1), variance=jnp.ones(1))
    ids = jnp.array([0], jnp.int32)
    step = jax.jit(delayed.look_step)
    for i in range(n):
        before = 0.0
        for j, now in enumerate((1.0, 6.0, 24.0, 168.0)):
            args = (j == 0, clicked[i] and delay[i] <= before, clicked[i] and delay[i] <= now)
            log_rate = jnp.float32(-math.log(d))
            state = step(
                state, ids, *map(jnp.bool_, args), jnp.float32(before), jnp.float32(now),
                log_rate, log_rate, jnp.bool_(True),
            )  # fmt: skip
            before = now
    predicted = float(jax.scipy.special.ndtr(state.mean[0] / jnp.sqrt(1.0 + state.variance[0])))
    assert abs(predicted - clicked.mean()) < 0.01
