"""Membership estimators: NFXP, CCP / NPL, PQR from a panel, static logit, against oracles
(numpy counts and likelihoods, scipy's optimiser, the simulator's truth)."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from prime_science.bench.membership import small_engagement_params
from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import estimate, model, simulate

MEMBERS, MONTHS = 5_000, 24


@pytest.fixture(scope="module")
def panel():
    """One 5,000 x 24 panel from the truth, simulated in float32 (int32 codes; the estimators
    below run in float64)."""
    truth = model.true_params(jnp.float32)
    panel, _ = simulate.simulate_panel(jax.random.key(0), truth, MEMBERS, MONTHS)
    return jax.tree.map(np.asarray, panel)


@pytest.fixture(scope="module")
def params():
    with jax.enable_x64(True):
        yield model.true_params(jnp.float64)


@pytest.fixture(scope="module")
def fits(panel, params):
    """Static logit, two-step CCP and NPL (3 fits) from frequency CCPs, and two-step CCP from
    the sieve logit (the default first stage), on the panel, float64."""
    with jax.enable_x64(True):
        return {
            "static": estimate.static_logit(params, panel),
            "ccp": estimate.ccp(params, panel, first_stage="frequency"),
            "npl": estimate.ccp(params, panel, npl_iterations=3, first_stage="frequency"),
            "ccp_sieve": estimate.ccp(params, panel),
        }


def tiny_panel():
    """Two members, three months: member 0 buys annual then sits locked; member 1 joins
    monthly and leaves."""
    codes = dict(
        plan=[[0, 2, 3], [0, 1, 1]],
        tenure=[[0, 1, 1], [0, 1, 2]],
        ship=[[1, 2, 2], [0, 0, 1]],
        video=[[0, 1, 1], [4, 3, 3]],
        content=[[0, 0, 1], [1, 0, 0]],
        regime=[[1, 0, 0], [0, 2, 2]],
        choice=[[2, 2, 2], [1, 1, 0]],
    )
    fields = {k: np.asarray(v, np.int32) for k, v in codes.items()}
    return simulate.Panel(segment=np.asarray([1, 0], np.int32), **fields)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p._replace(tenure=p.tenure[:, :2]), "panel.tenure: expected shape"),
        (lambda p: p._replace(choice=p.choice.at[0, 0].set(3)), "panel.choice: expected codes"),
        (lambda p: p._replace(choice=p.choice.at[0, 1].set(1)), "annual .2. in a locked"),
        (lambda p: p._replace(ship=p.ship.at[1, 2].set(5)), "panel.ship: expected codes"),
        (lambda p: p._replace(plan=p.plan.at[1, 0].set(13)), "panel.plan: expected codes"),
        (lambda p: p._replace(segment=p.segment[:1]), "panel.segment: expected shape"),
        (lambda p: p._replace(segment=p.segment.at[0].set(2)), "panel.segment: expected 0 or 1"),
        (lambda p: p._replace(regime=p.regime.astype(jnp.float32)), "panel.regime: expected int"),
    ],
)
def test_bad_panels_are_named(change, message):
    bad = change(jax.tree.map(jnp.asarray, tiny_panel()))
    with pytest.raises(InvalidArgumentError, match=message):
        estimate.check_panel(bad)
    with pytest.raises(InvalidArgumentError, match=message):
        estimate.choice_counts(bad)


def test_not_a_panel():
    with pytest.raises(InvalidArgumentError, match="panel: expected a simulate.Panel"):
        estimate.check_panel(tuple(tiny_panel()))


def brute_force_counts(panel, shape):
    """``N(s, a)`` by a loop over the free rows."""
    expected = np.zeros(shape)
    for i, t in zip(*np.nonzero(np.asarray(panel.plan) < 2), strict=True):
        cell = tuple(
            int(x)
            for x in (
                panel.segment[i],
                panel.plan[i, t],
                panel.tenure[i, t],
                panel.ship[i, t] * 5 + panel.video[i, t],
                panel.content[i, t],
                panel.regime[i, t],
                panel.choice[i, t],
            )
        )
        expected[cell] += 1
    return expected


def test_choice_counts_tiny_panel():
    counts = np.asarray(estimate.choice_counts(tiny_panel()))
    np.testing.assert_array_equal(counts, brute_force_counts(tiny_panel(), counts.shape))
    assert counts.sum() == 4  # member 0's first month, member 1's three
    assert counts[1, 0, 0, 5, 0, 1, 2] == 1  # segment 1, none, ship 1 video 0, promo: annual


@pytest.mark.slow
def test_choice_counts_brute_force(panel):
    """Slow: simulating the module's panel."""
    counts = np.asarray(estimate.choice_counts(panel))
    np.testing.assert_array_equal(counts, brute_force_counts(panel, counts.shape))
    assert counts.sum() == np.sum(panel.plan < 2) < panel.plan.size


@pytest.mark.slow
def test_panel_log_likelihood_row_by_row(panel, params):
    """Every row's ``log pi(choice | state)`` from the solved tables, locked rows included
    (they add exactly 0)."""
    with jax.enable_x64(True):
        ours = float(estimate.panel_log_likelihood(params, panel))
        log_policy = np.stack([np.asarray(model.solve(params, s).log_policy) for s in (0, 1)])
    rows = log_policy[
        panel.segment[:, None],
        panel.plan,
        panel.tenure,
        panel.ship * 5 + panel.video,
        panel.content,
        panel.regime,
        panel.choice,
    ]
    assert np.all(rows[panel.plan >= 2] == 0.0)
    np.testing.assert_allclose(ours, rows.sum(), rtol=1e-12)


@pytest.mark.slow
def test_static_logit_matches_scipy_and_is_biased(fits, panel, params):
    """The static logit's maximum against scipy's BFGS on a numpy likelihood; then its bias:
    it misses the truth by more than 10 standard errors in every coordinate it gets wrong."""
    fit = fits["static"]
    assert bool(fit.converged)
    with jax.enable_x64(True):
        counts = np.asarray(estimate.choice_counts(panel, dtype=jnp.float64))
        features = np.asarray(model.utility_features(params)[:2])

    def negative_log_likelihood(theta):
        utility = features @ theta
        top = utility.max(-1, keepdims=True)
        log_p = utility - top - np.log(np.exp(utility - top).sum(-1, keepdims=True))
        return -np.sum(counts * log_p)

    reference = optimize.minimize(
        negative_log_likelihood, np.asarray(fit.estimates) * 0.9, method="BFGS", tol=1e-10
    )
    np.testing.assert_allclose(-reference.fun, fit.log_likelihood, rtol=1e-9)
    np.testing.assert_allclose(reference.x, fit.estimates, rtol=1e-4, atol=1e-5)
    truth = np.asarray(estimate.structural_vector(params))
    error = np.abs(np.asarray(fit.estimates) - truth) / np.asarray(fit.standard_errors)
    assert error.max() > 10
    assert float(fit.estimates[4]) < 0.5 * truth[4]  # price sensitivity: annual looks dear


@pytest.mark.slow
def test_nfxp_recovers_truth(panel, params, fits):
    """NFXP from the two-step CCP estimate (from its default start, the static logit, the fit
    takes 13 BHHH steps and about a minute on 2 busy cores): within 3 standard errors of the
    truth, a log-likelihood gradient of ~0 at the estimate, a likelihood above the truth's,
    close to NPL and closer to it than two-step CCP."""
    with jax.enable_x64(True):
        start = time.perf_counter()
        fit = jax.block_until_ready(estimate.nfxp(params, panel, initial=fits["ccp"].estimates))
        seconds = time.perf_counter() - start
        truth = estimate.structural_vector(params)
        assert bool(fit.converged), seconds
        se = np.asarray(fit.standard_errors)
        assert np.all(np.abs(np.asarray(fit.estimates - truth)) < 3 * se)
        log_likelihood = lambda theta: estimate.panel_log_likelihood(  # noqa: E731
            estimate.with_structural(params, theta), panel
        )
        gradient = np.asarray(jax.jacfwd(log_likelihood)(fit.estimates))
        # a step of one standard error along any axis changes L by at most 1e-3 to first order
        assert np.max(np.abs(gradient) * se) < 1e-3
        np.testing.assert_allclose(log_likelihood(fit.estimates), fit.log_likelihood, rtol=1e-12)
        assert float(fit.log_likelihood) > float(log_likelihood(truth))
        gap = np.abs(np.asarray(fit.estimates - fits["npl"].estimates)) / se
        assert gap.max() < 0.25
        # NPL approaches NFXP; the two-step CCP it starts from is further away
        ccp_gap = np.abs(np.asarray(fit.estimates - fits["ccp"].estimates)) / se
        assert ccp_gap.max() > gap.max()
        for other in fits.values():
            assert bool(other.converged) and np.all(np.asarray(other.standard_errors) > 0)


def test_nfxp_refuses_bad_starts(params):
    panel = tiny_panel()
    with jax.enable_x64(True):
        with pytest.raises(InvalidArgumentError, match="initial: expected finite"):
            estimate.nfxp(params, panel, initial=jnp.full(6, jnp.nan))
        with pytest.raises(InvalidArgumentError, match="initial: expected shape"):
            estimate.nfxp(params, panel, initial=jnp.zeros(5))
        with pytest.raises(InvalidArgumentError, match="npl_iterations"):
            estimate.ccp(params, panel, npl_iterations=0)
        with pytest.raises(InvalidArgumentError, match="pseudo_count"):
            estimate.pqr_estimate(params, panel, pseudo_count=0.0)


@pytest.mark.slow
def test_pqr_from_panel_reports_its_projection(panel, params):
    with jax.enable_x64(True):
        fit = estimate.pqr_estimate(params, panel)
        assert fit.reward.shape == (2, 2, 6, 25, 2, 3, 3)
        assert np.all(np.isfinite(np.asarray(fit.projection.theta)))
        assert 0.0 < float(fit.projection.r_squared) <= 1.0
        assert float(fit.projection.rmse) > 0.0
        assert np.all(np.asarray(fit.estimate.standard_errors) > 0.0)
        # the anchor's reward is the normalisation: 0 up to rounding at every free state
        assert float(jnp.max(jnp.abs(fit.reward[..., model.NONE]))) < 1e-9
        assert float(fit.projection.theta[4]) > 0.0  # dearer plans are chosen less


def test_interval_coverage():
    fit = estimate.Estimate(
        jnp.asarray([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        jnp.asarray([1.0, 1.0, 1.0, 1.0, 1.0, 0.1]),
        jnp.asarray(0.0),
        jnp.asarray(1),
        jnp.asarray(True),
    )
    truth = jnp.asarray([1.0, 0.0, 4.9, 2.1, 5.0, 6.3])
    expected = [True, False, True, True, True, False]
    np.testing.assert_array_equal(estimate.interval_coverage(fit, truth), expected)


def test_recovery_refuses_unknown_estimators(params):
    with pytest.raises(InvalidArgumentError, match="estimators: expected"):
        estimate.recovery(jax.random.key(0), params, 10, 2, estimators=("mle",))
    with pytest.raises(InvalidArgumentError, match="estimators: expected"):
        estimate.recovery(jax.random.key(0), params, 10, 2, estimators=())


@pytest.mark.slow
def test_recovery_runs_estimators_under_x64(params):
    """A small float64 recovery (simulation included): one record per estimator, in order
    (NFXP, a minute here, is checked by test_nfxp_recovers_truth and the experiment's quick
    run)."""
    with jax.enable_x64(True):
        names = ("static", "ccp", "npl", "pqr")
        results = estimate.recovery(jax.random.key(1), params, 400, 6, estimators=names)
        assert tuple(results) == names
        for fit in results.values():
            assert fit.estimates.shape == (6,) and fit.estimates.dtype == jnp.float64
            assert np.all(np.isfinite(np.asarray(fit.estimates)))
            assert np.all(np.asarray(fit.standard_errors) > 0.0)


def sieve_counts(rows_per_state, seed=0):
    """``(counts, coefficients)``: choices drawn at every free state from a policy inside the
    sieve's span, ``pi = softmax(0, x . b_monthly, x . b_annual)`` with random ``b``
    (``rows_per_state`` rows a state, numpy's multinomial)."""
    rng = np.random.default_rng(seed)
    design = estimate.sieve_features()
    coefficients = rng.normal(0.0, 0.3, (design.shape[-1], 2))
    utilities = np.concatenate([np.zeros((*design.shape[:-1], 1)), design @ coefficients], -1)
    policy = np.exp(utilities - utilities.max(-1, keepdims=True))
    policy /= policy.sum(-1, keepdims=True)
    flat = policy.reshape(-1, 3)
    counts = np.stack([rng.multinomial(rows_per_state, row) for row in flat])
    return counts.reshape(policy.shape).astype(np.float64), coefficients


def test_sieve_design_is_a_second_order_expansion():
    design = estimate.sieve_features()
    sizes = (2, 2, 6, 5, 5, 2, 3)
    main = sum(n - 1 for n in sizes)
    pairs = sum((a - 1) * (b - 1) for i, a in enumerate(sizes) for b in sizes[i + 1 :])
    assert design.shape == (2, 2, 6, 25, 2, 3, 1 + main + pairs)
    flat = design.reshape(-1, design.shape[-1])
    assert np.linalg.matrix_rank(flat) == flat.shape[1]  # no redundant column
    np.testing.assert_array_equal(flat[:, 0], 1.0)


def test_sieve_logit_gradient_vanishes_at_its_fit():
    """The penalised log-likelihood's gradient (numpy, from the fitted policy) is ~0 at the fit
    on a sparse sample (3 rows a state: many cells and choices unseen)."""
    counts, _ = sieve_counts(3)
    ridge = 0.5
    with jax.enable_x64(True):
        fit = estimate.sieve_logit(jnp.asarray(counts), ridge=ridge)
    assert bool(fit.converged)
    design = estimate.sieve_features().reshape(-1, 149)
    policy = np.exp(np.asarray(fit.log_policy)).reshape(-1, 3)
    flat = counts.reshape(-1, 3)
    b = np.asarray(fit.coefficients)
    penalty = np.ones(149)
    penalty[0] = 0.0
    gradient = design.T @ (flat[:, 1:] - flat.sum(1, keepdims=True) * policy[:, 1:])
    gradient -= ridge * penalty[:, None] * b
    assert np.max(np.abs(gradient)) < 1e-6
    np.testing.assert_allclose(np.asarray(fit.gradient), gradient, atol=1e-6)
    # the objective is the oracle's penalised log-likelihood
    log_likelihood = np.sum(flat * np.log(policy)) - 0.5 * ridge * np.sum(penalty[:, None] * b**2)
    np.testing.assert_allclose(float(fit.objective), log_likelihood, rtol=1e-10)


@pytest.mark.slow
def test_sieve_logit_approaches_a_policy_in_its_span():
    """From a policy the sieve represents, the fitted probabilities approach the truth as the
    rows per state grow (error ~ 1 / sqrt(n)): 40 -> 4,000 rows a state cuts it ~10x."""
    errors_by_size = []
    with jax.enable_x64(True):
        for rows in (40, 4_000):
            counts, coefficients = sieve_counts(rows, seed=1)
            fit = estimate.sieve_logit(jnp.asarray(counts), ridge=1e-3)
            design = estimate.sieve_features()
            utilities = np.concatenate(
                [np.zeros((*design.shape[:-1], 1)), design @ coefficients], -1
            )
            truth = utilities - np.log(np.exp(utilities).sum(-1, keepdims=True))
            errors_by_size.append(np.max(np.abs(np.exp(fit.log_policy) - np.exp(truth))))
            if rows == 4_000:
                np.testing.assert_allclose(np.asarray(fit.coefficients), coefficients, atol=0.05)
    assert errors_by_size[1] < 0.01
    assert errors_by_size[1] < errors_by_size[0] / 5


def test_sieve_log_policy_matches_frequency_conventions():
    """Same shape and normalisation as the frequency first stage; unvisited states get a
    finite policy."""
    counts, _ = sieve_counts(2)
    counts[0, 1] = 0.0  # a whole block of states unvisited
    log_policy = estimate.sieve_log_policy(jnp.asarray(counts, jnp.float32))
    assert log_policy.shape == estimate.frequency_log_policy(jnp.asarray(counts)).shape
    assert log_policy.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(log_policy)))
    np.testing.assert_allclose(np.exp(np.asarray(log_policy)).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize("ridge", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_ridge_is_named(params, ridge):
    counts, _ = sieve_counts(1)
    with pytest.raises(InvalidArgumentError, match="ridge"):
        estimate.sieve_logit(jnp.asarray(counts), ridge=ridge)
    with jax.enable_x64(True):
        with pytest.raises(InvalidArgumentError, match="ridge"):
            estimate.ccp(params, tiny_panel(), ridge=ridge)
        with pytest.raises(InvalidArgumentError, match="ridge"):
            estimate.pqr_estimate(params, tiny_panel(), ridge=ridge)


def test_bad_first_stage_and_counts_are_named(params):
    with jax.enable_x64(True):
        with pytest.raises(InvalidArgumentError, match="first_stage: expected one of"):
            estimate.ccp(params, tiny_panel(), first_stage="kernel")
        with pytest.raises(InvalidArgumentError, match="first_stage: expected one of"):
            estimate.pqr_estimate(params, tiny_panel(), first_stage="kernel")
    with pytest.raises(InvalidArgumentError, match="counts: expected shape"):
        estimate.sieve_logit(jnp.ones((2, 2, 6, 25, 2, 3)))


@pytest.mark.slow
def test_sieve_ccp_recovers_truth_where_frequency_ccp_does_not(fits, params):
    """On the 5,000 x 24 panel two-step CCP from frequency CCPs is many standard errors off;
    from the sieve logit every parameter is within 3."""
    truth = np.asarray(estimate.structural_vector(params))

    def max_z(fit):
        return np.max(np.abs(np.asarray(fit.estimates) - truth) / np.asarray(fit.standard_errors))

    assert bool(fits["ccp_sieve"].converged)
    assert max_z(fits["ccp_sieve"]) < 3.0
    assert max_z(fits["ccp"]) > 2 * max_z(fits["ccp_sieve"])


def test_sieve_covariance_is_the_sandwich():
    """The sieve coefficients' covariance equals ``A^{-1} I A^{-1}`` built in numpy from the
    fitted policy (``I`` the Fisher information, ``A = I + ridge I'``)."""
    counts, _ = sieve_counts(3)
    ridge = 0.5
    with jax.enable_x64(True):
        fit = estimate.sieve_logit(jnp.asarray(counts), ridge=ridge)
    design = estimate.sieve_features().reshape(-1, 149)
    policy = np.exp(np.asarray(fit.log_policy)).reshape(-1, 3)[:, 1:]
    visits = counts.reshape(-1, 3).sum(1)
    weights = visits[:, None, None] * (
        np.eye(2) * policy[:, :, None] - policy[:, :, None] * policy[:, None, :]
    )
    information = np.einsum("sk,sac,sl->kalc", design, weights, design).reshape(298, 298)
    penalty = np.ones(149)
    penalty[0] = 0.0
    inverse = np.linalg.inv(information + ridge * np.diag(np.repeat(penalty, 2)))
    oracle = inverse @ information @ inverse
    np.testing.assert_allclose(np.asarray(fit.covariance), oracle, rtol=1e-6, atol=1e-12)


@pytest.mark.slow
def test_pqr_standard_errors_match_resampling():
    """PQR's delta-method standard errors (sieve first stage) against the spread of the
    estimates over 100 multinomial resamples of the choices at fixed visits (300 rows at every
    free state of the 3-level model, choices from the true policy): within 15 % for every
    parameter (the spread's own sampling error is 7 %)."""
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        params = small_engagement_params(3, jnp.float64)
        log_policy, _ = estimate._free_log_policy(params, 3, 11)
        policy = np.exp(np.asarray(log_policy)).reshape(-1, 3)
        shape = log_policy.shape

        def draw(replicates):
            rows = [rng.multinomial(300, p / p.sum(), size=replicates) for p in policy]
            return np.stack(rows, axis=1).reshape(replicates, *shape).astype(np.float64)

        fit = estimate.pqr_from_counts(params, jnp.asarray(draw(1)[0]))
        # lax.map, not vmap: a vmap of this fit over 100 replicates never returned on XLA:CPU
        # (jaxlib 0.10.2; every pool thread idle), see pqr_from_counts
        thetas = jax.jit(
            lambda c: jax.lax.map(lambda x: estimate.pqr_from_counts(params, x).estimate, c)
        )(jnp.asarray(draw(100))).estimates
    spread = np.asarray(thetas).std(axis=0, ddof=1)
    se = np.asarray(fit.estimate.standard_errors)
    np.testing.assert_allclose(se, spread, rtol=0.15)
