"""sBG and BdW retention models against scipy, simulation and the published fits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, optimize, stats
from scipy.special import betaln

from prime_science.core.errors import InvalidArgumentError
from prime_science.datasets.retention import load_retention
from prime_science.membership import retention

COHORTS = load_retention().survivors
PUBLISHED_SBG = {"regular": (0.704, 1.182), "high_end": (0.668, 3.806)}
"""Fader and Hardie (2007), sBG fits of years 1-7: (alpha, beta) per cohort."""


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def scipy_survival(alpha, beta, c, years):
    """``S(t) = B(alpha, beta + t^c) / B(alpha, beta)`` with scipy."""
    years = np.asarray(years, np.float64)
    return np.exp(betaln(alpha, beta + years**c) - betaln(alpha, beta))


def scipy_log_likelihood(alpha, beta, c, survivors, calibration_years):
    """The cohort log-likelihood written directly: the churn probabilities as differences of
    scipy survival values, plus the right-censored survivors."""
    survival = scipy_survival(alpha, beta, c, np.arange(calibration_years + 1))
    lost = -np.diff(survivors[: calibration_years + 1]).astype(np.float64)
    churn = survival[:-1] - survival[1:]
    return np.sum(lost * np.log(churn)) + survivors[calibration_years] * np.log(
        survival[calibration_years]
    )


def test_sbg_probs_follow_the_published_recursion_and_scipy():
    alpha, beta = 0.7, 1.2
    recursion = [alpha / (alpha + beta)]
    for t in range(2, 13):
        recursion.append(recursion[-1] * (beta + t - 2) / (alpha + beta + t - 1))
    log_probs = np.asarray(retention.sbg_log_probs(alpha, beta, 12))
    np.testing.assert_allclose(np.exp(log_probs), recursion, rtol=1e-12)
    years = np.arange(1, 13)
    closed_form = betaln(alpha + 1, beta + years - 1) - betaln(alpha, beta)
    np.testing.assert_allclose(log_probs, closed_form, rtol=1e-12)
    survival = np.asarray(retention.sbg_survival(alpha, beta, 12))
    np.testing.assert_allclose(survival, 1 - np.concatenate([[0], np.cumsum(recursion)]), 1e-12)


@pytest.mark.parametrize("c", [0.6, 1.0, 1.7])
def test_bdw_survival_matches_scipy_and_the_mixture_integral(c):
    alpha, beta = 0.5, 2.5
    years = np.arange(13)
    survival = np.asarray(retention.bdw_survival(alpha, beta, c, years))
    np.testing.assert_allclose(survival, scipy_survival(alpha, beta, c, years), rtol=1e-10)
    for t in (1, 4, 9):
        mixture, _ = integrate.quad(
            lambda theta, t=t: stats.beta.pdf(theta, alpha, beta) * (1 - theta) ** (t**c), 0, 1
        )
        assert survival[t] == pytest.approx(mixture, rel=1e-6)


def test_sbg_is_bdw_at_c_one():
    alpha, beta = 0.668, 3.806
    sbg = retention.log_survival("sbg", jnp.array([alpha, beta]), 12)
    bdw = retention.log_survival("bdw", jnp.array([alpha, beta, 1.0]), 12)
    np.testing.assert_allclose(sbg, bdw, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        retention.churn_log_probs("sbg", jnp.array([alpha, beta]), 12),
        retention.churn_log_probs("bdw", jnp.array([alpha, beta, 1.0]), 12),
        rtol=1e-10,
    )
    survivors = COHORTS["high_end"]
    assert float(
        retention.cohort_log_likelihood("sbg", jnp.array([alpha, beta]), survivors, 7)
    ) == pytest.approx(
        float(retention.cohort_log_likelihood("bdw", jnp.array([alpha, beta, 1.0]), survivors, 7)),
        rel=1e-12,
    )


@pytest.mark.parametrize(
    ("model", "params"),
    [("sbg", (0.3, 0.5)), ("sbg", (5.0, 40.0)), ("bdw", (0.4, 1.0, 0.5)), ("bdw", (2.0, 3.0, 2.5))],
)
def test_survival_falls_and_sbg_retention_rises(model, params):
    log_s = np.asarray(retention.log_survival(model, jnp.array(params), 30))
    assert log_s[0] == 0.0 and np.all(np.diff(log_s) < 0)
    rates = np.asarray(retention.retention_rates(model, jnp.array(params), 30))
    assert np.all((rates > 0) & (rates < 1))
    if model == "sbg":
        alpha, beta = params
        years = np.arange(1, 31)
        np.testing.assert_allclose(rates, (beta + years - 1) / (alpha + beta + years - 1), 1e-12)
        assert np.all(np.diff(rates) > 0)
    # the churn probabilities and the survivors at t_max exhaust the cohort
    log_probs = np.asarray(retention.churn_log_probs(model, jnp.array(params), 30))
    assert np.exp(log_probs).sum() + np.exp(log_s[-1]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("cohort", sorted(COHORTS))
@pytest.mark.parametrize(("model", "params"), [("sbg", (0.7, 1.2)), ("bdw", (0.5, 0.8, 1.3))])
def test_log_likelihood_matches_scipy_with_the_censoring_term(cohort, model, params):
    survivors = COHORTS[cohort]
    c = params[2] if model == "bdw" else 1.0
    for calibration_years in (1, 7, 12):
        ours = float(
            retention.cohort_log_likelihood(model, jnp.array(params), survivors, calibration_years)
        )
        reference = scipy_log_likelihood(params[0], params[1], c, survivors, calibration_years)
        assert ours == pytest.approx(reference, rel=1e-12)
        # the censored survivors are hundreds of customers: leaving them out moves the value a lot
        survival = scipy_survival(params[0], params[1], c, calibration_years)
        censored = survivors[calibration_years] * np.log(survival)
        assert abs(censored) > 50 and abs(ours - (reference - censored)) > 50


def test_fit_reproduces_the_published_sbg_estimates():
    for cohort, (alpha, beta) in PUBLISHED_SBG.items():
        fit = retention.fit_retention("sbg", COHORTS[cohort], 7)
        np.testing.assert_allclose(fit.params, [alpha, beta], atol=1e-2)


@pytest.mark.slow  # compiles the 3-parameter BdW fit (~5 s on 2 cores)
@pytest.mark.parametrize("model", retention.MODELS)
@pytest.mark.parametrize("cohort", sorted(COHORTS))
def test_fit_is_a_maximum_of_the_scipy_likelihood(model, cohort):
    survivors = COHORTS[cohort]
    fit = retention.fit_retention(model, survivors, 7)
    assert float(fit.gradient_norm) < 1e-6

    def negative(log_params):
        params = np.exp(log_params)
        c = params[2] if model == "bdw" else 1.0
        return -scipy_log_likelihood(params[0], params[1], c, survivors, 7)

    start = np.zeros(len(retention.PARAMETER_NAMES[model]))
    reference = optimize.minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-9})
    np.testing.assert_allclose(fit.log_params, reference.x, atol=1e-4)
    assert float(fit.log_likelihood) == pytest.approx(-reference.fun, rel=1e-10)
    # the standard errors come from the Hessian: compare with central differences of scipy's value
    step = 1e-4
    size = start.size
    hessian = np.zeros((size, size))
    x = np.asarray(fit.log_params)
    for i in range(size):
        for j in range(size):
            e_i, e_j = np.eye(size)[i] * step, np.eye(size)[j] * step
            hessian[i, j] = (
                negative(x + e_i + e_j)
                - negative(x + e_i - e_j)
                - negative(x - e_i + e_j)
                + negative(x - e_i - e_j)
            ) / (4 * step**2)
    reference_se = np.exp(x) * np.sqrt(np.diag(np.linalg.inv(hessian)))
    np.testing.assert_allclose(fit.standard_errors, reference_se, rtol=1e-3)


def simulate_cohort(seed, num_customers, alpha, beta, c, last_year):
    """Survivors at the end of years ``0 .. last_year`` of customers with ``theta ~ Beta`` and
    ``P(T <= t | theta) = 1 - (1 - theta)^(t^c)`` (numpy: ``T = ceil((log V / log(1 -
    theta))^(1 / c))`` with ``V`` uniform)."""
    rng = np.random.default_rng(seed)
    theta = rng.beta(alpha, beta, num_customers)
    churn_year = np.ceil((np.log(rng.uniform(size=num_customers)) / np.log1p(-theta)) ** (1 / c))
    return np.array([(churn_year > t).sum() for t in range(last_year + 1)])


@pytest.mark.slow  # compiles the 3-parameter BdW fit (~5 s on 2 cores)
@pytest.mark.parametrize(
    ("model", "truth"), [("sbg", (0.8, 2.5)), ("bdw", (0.6, 1.5, 1.4)), ("bdw", (1.5, 4.0, 0.7))]
)
def test_fit_recovers_the_parameters_of_a_large_simulated_cohort(model, truth):
    c = truth[2] if model == "bdw" else 1.0
    survivors = simulate_cohort(7, 400_000, truth[0], truth[1], c, 12)
    fit = retention.fit_retention(model, survivors, 7)
    # 4 standard errors per parameter: a chance failure rate below 1e-4 per parameter
    z = (np.asarray(fit.params) - np.asarray(truth)) / np.asarray(fit.standard_errors)
    assert np.all(np.abs(z) < 4), (np.asarray(fit.params), z)


def test_projection_is_the_cohort_times_survival():
    params = jnp.array([0.7, 1.2])
    projected = np.asarray(retention.project("sbg", params, 1000, 12))
    np.testing.assert_allclose(projected, 1000 * scipy_survival(0.7, 1.2, 1.0, np.arange(13)))


@pytest.mark.slow
def test_fit_under_jit_equals_the_eager_fit():
    jitted = jax.jit(lambda s: retention.fit_retention("bdw", s, 7))(
        jnp.asarray(COHORTS["regular"])
    )
    eager = retention.fit_retention("bdw", COHORTS["regular"], 7)
    np.testing.assert_allclose(jitted.params, eager.params, rtol=1e-10)


@pytest.mark.slow  # compiles jax.random.binomial (~3-8 s on 2 cores)
def test_predictive_paths_are_a_binomial_chain():
    rates = jnp.array([0.9, 0.8, 0.95])
    keys = jax.random.split(jax.random.key(3), 20_000)
    paths = np.asarray(
        jax.vmap(retention.predictive_survivors, (0, None, None))(keys, rates, 200.0)
    )
    assert np.all(paths == np.round(paths)) and np.all(np.diff(paths, axis=1) <= 0)
    # E[n_h] = n_0 prod r; Var[n_1] = n_0 r (1 - r); 20,000 paths: s.e. of the means ~0.03
    np.testing.assert_allclose(paths.mean(0), 200 * np.cumprod([0.9, 0.8, 0.95]), atol=0.15)
    assert paths[:, 0].var() == pytest.approx(200 * 0.9 * 0.1, rel=0.05)
    # the law of the year-2 count given year 1 is Binomial(n_1, r_2): check one slice
    given = paths[paths[:, 0] == 180, 1]
    assert given.mean() == pytest.approx(180 * 0.8, abs=4 * np.sqrt(180 * 0.16 / given.size))


@pytest.mark.slow
def test_posterior_projection_runs_under_jit_and_vmap():
    survivors = COHORTS["regular"]
    run = jax.jit(
        jax.vmap(
            lambda key: retention.posterior_projection(
                key, "sbg", survivors, 7, 12, num_warmup=200, num_samples=300
            )
        )
    )
    posterior = run(jax.random.split(jax.random.key(0), 2))
    predicted = np.asarray(posterior.predicted_survivors)
    assert predicted.shape == (2, 300, 13)
    np.testing.assert_array_equal(predicted[:, :, :8], np.broadcast_to(survivors[:8], (2, 300, 8)))
    assert np.all(np.diff(predicted, axis=-1) <= 0)
    assert not np.array_equal(predicted[0], predicted[1])
    # weak priors and 1,000 customers: the posterior mean sits near the MLE (within one s.e.)
    fit = retention.fit_retention("sbg", survivors, 7)
    draws = np.exp(np.asarray(posterior.log_params))
    assert np.all(np.abs(draws.mean(1) - np.asarray(fit.params)) < np.asarray(fit.standard_errors))
    assert np.all(np.asarray(posterior.accept_prob) > 0.6)
    # expected survivors follow the draws; predictive paths scatter around them
    expected = np.asarray(posterior.expected_survivors)
    np.testing.assert_allclose(expected[:, :, 0], 1000.0)
    conditional = survivors[7] * expected[..., 12] / expected[..., 7]
    gap = predicted[..., 12].mean() - conditional.mean()
    assert abs(gap) < 4 * predicted[..., 12].std() / np.sqrt(600)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: retention.log_survival("weibull", jnp.ones(2), 5), "model"),
        (lambda: retention.log_survival("sbg", jnp.array([0.0, 1.0]), 5), "params"),
        (lambda: retention.log_survival("sbg", jnp.array([1.0, np.nan]), 5), "params"),
        (lambda: retention.log_survival("bdw", jnp.ones(2), 5), "params"),
        (lambda: retention.log_survival("sbg", jnp.ones(2), 0), "t_max"),
        (lambda: retention.sbg_log_probs(-1.0, 1.0, 5), "alpha"),
        (lambda: retention.bdw_survival(1.0, 1.0, 0.0, 3), "c"),
        (lambda: retention.bdw_survival(1.0, 1.0, 1.0, -1), "t"),
        (lambda: retention.fit_retention("sbg", [100, 90, 95], 2), "survivors"),
        (lambda: retention.fit_retention("sbg", [100, 90.5, 80], 2), "survivors"),
        (lambda: retention.fit_retention("sbg", [0, 0, 0], 2), "survivors"),
        (lambda: retention.fit_retention("sbg", [[100, 90]], 1), "survivors"),
        (lambda: retention.fit_retention("sbg", [100, 90, 80], 3), "calibration_years"),
        (lambda: retention.fit_retention("sbg", [100, 90, 80], 0), "calibration_years"),
        (
            lambda: retention.fit_retention("sbg", [100, 90, 80], 2, num_newton_steps=0),
            "num_newton",
        ),
        (lambda: retention.project("sbg", jnp.ones(2), -5, 3), "cohort_size"),
        (
            lambda: retention.posterior_projection(jax.random.key(0), "sbg", [100, 90, 80], 2, 1),
            "t_max",
        ),
        (
            lambda: retention.posterior_projection(
                jax.random.key(0), "sbg", [100, 90, 80], 2, 4, num_samples=0
            ),
            "num_samples",
        ),
        (lambda: retention.posterior_projection(3, "sbg", [100, 90, 80], 2, 4), "key"),
        (
            lambda: retention.predictive_survivors(jax.random.key(0), jnp.array([1.2]), 5.0),
            "rates",
        ),
        (
            lambda: retention.predictive_survivors(jax.random.key(0), jnp.array([0.5]), 2.5),
            "alive",
        ),
        (
            lambda: retention.posterior_samples(
                jax.random.key(0), "bdw", [100, 90, 80], 2, initial_log_params=jnp.zeros(2)
            ),
            "initial_log_params",
        ),
    ],
)
def test_bad_input_raises_a_named_error(call, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}"):
        call()


@pytest.mark.parametrize(
    ("model", "truth"), [("sbg", (0.8, 2.5)), ("bdw", (0.6, 1.5, 1.4)), ("bdw", (1.5, 4.0, 0.7))]
)
def test_survival_curve_fit_recovers_an_exact_curve(model, truth):
    c = truth[2] if model == "bdw" else 1.0
    curve = scipy_survival(truth[0], truth[1], c, np.arange(13))
    fit = retention.fit_survival_curve(curve, model=model)
    np.testing.assert_allclose(fit.params, truth, rtol=1e-6)
    assert np.all(np.isnan(np.asarray(fit.standard_errors)))
    # counts of the same proportions give the same estimates
    scaled = retention.fit_survival_curve(5_000 * curve, model=model, cohort_size=5_000)
    np.testing.assert_allclose(scaled.params, fit.params, rtol=1e-8)
    assert np.all(np.asarray(scaled.standard_errors) > 0)


def test_survival_curve_fit_of_a_cohort_equals_the_cohort_fit():
    survivors = COHORTS["regular"]
    cohort = retention.fit_retention("sbg", survivors, 7)
    curve = retention.fit_survival_curve(
        survivors / survivors[0], cohort_size=survivors[0], calibration_years=7
    )
    np.testing.assert_allclose(curve.params, cohort.params, rtol=1e-8)
    np.testing.assert_allclose(curve.standard_errors, cohort.standard_errors, rtol=1e-6)
    assert float(curve.log_likelihood) == pytest.approx(float(cohort.log_likelihood), rel=1e-10)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"survival": [1.0, 0.8, 0.9]}, "survival"),
        ({"survival": [0.0, 0.0, 0.0]}, "survival"),
        ({"survival": [1.0, np.nan, 0.5]}, "survival"),
        ({"survival": [[1.0, 0.5]]}, "survival"),
        ({"survival": [1.0, 0.8, 0.5], "calibration_years": 3}, "calibration_years"),
        ({"survival": [1.0, 0.8, 0.5], "cohort_size": 0.0}, "cohort_size"),
        ({"survival": [1.0, 0.8, 0.5], "model": "exponential"}, "model"),
    ],
)
def test_survival_curve_fit_names_bad_input(kwargs, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}"):
        retention.fit_survival_curve(**kwargs)


def test_survival_curve_fit_vmaps_over_curves():
    truths = np.array([[0.5, 1.0], [0.8, 2.5], [2.0, 6.0]])
    curves = np.stack([scipy_survival(a, b, 1.0, np.arange(13)) for a, b in truths])
    fits = jax.jit(jax.vmap(retention.fit_survival_curve))(jnp.asarray(curves))
    np.testing.assert_allclose(fits.params, truths, rtol=1e-6)
