"""Laplace logistic: MAP vs scipy, precision closed form, Thompson covariance, selection, errors."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as opt
from scipy.special import expit

from prime_science.bandits.logistic import COVARIANCES, LogisticState, logistic_laplace
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


def precision_matrix(state):
    precision = np.asarray(state.precision)
    return precision if precision.ndim == 2 else np.diag(precision)


def scipy_map(mean, precision, x, clicks, weights):
    """The Laplace objective minimised by scipy BFGS (float64, analytic gradient)."""
    signs = 2.0 * clicks - 1.0

    def objective(w):
        offset = w - mean
        fit = weights @ np.logaddexp(0.0, -signs * (x @ w))
        grad = precision @ offset - x.T @ (weights * signs * expit(-signs * (x @ w)))
        return 0.5 * offset @ precision @ offset + fit, grad

    result = opt.minimize(objective, mean, jac=True, method="BFGS", options={"gtol": 1e-12})
    return result.x


def events(rng, num_features, num_events, width=3):
    ids = rng.integers(-1, num_features, (num_events, width)).astype(np.int32)
    return ids, (rng.random(num_events) < 0.4).astype(np.float64)


@functools.cache
def make_policy(covariance="diagonal", exploration="thompson", num_features=6, **kwargs):
    """One policy per configuration, shared by the tests so that its compilations are too."""
    return logistic_laplace(num_features, covariance=covariance, exploration=exploration, **kwargs)


def random_state(covariance="diagonal", num_features=6, seed=0, dtype=jnp.float32):
    """A non-trivial posterior: random means and (correlated, for "full") precisions."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=num_features) * 0.3
    precision = rng.uniform(0.5, 2.0, num_features)
    if covariance == "full":
        factor = rng.normal(size=(num_features, num_features)) * 0.4
        precision = np.diag(precision) + factor @ factor.T
    return LogisticState(jnp.asarray(mean, dtype), jnp.asarray(precision, dtype)), rng


@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize(("seed", "far"), [(0, False), (1, False), (2, True)])
def test_map_and_precision_equal_scipy_and_closed_form(covariance, seed, far):
    with jax.enable_x64(True):
        policy = make_policy(covariance, num_features=8)
        state, rng = random_state(covariance, 8, seed, jnp.float64)
        if far:  # a weak prior centred far from the data: Newton from a distant start
            state = LogisticState(state.mean + 3.0, 0.05 * state.precision)
        ids, clicks = events(rng, 8, 40)
        ids[0] = [2, 2, -1]  # a repeated id counts twice
        ids[ids == 7] = -1  # feature 7 is absent from the batch
        weights = rng.uniform(0.0, 3.0, 40)
        new = policy.update(state, jnp.asarray(ids), jnp.asarray(clicks), jnp.asarray(weights))
        assert new.mean.dtype == jnp.float64 and new.precision.dtype == jnp.float64
    mean, precision = np.asarray(state.mean), precision_matrix(state)
    x = dense(ids, 8)
    expected = scipy_map(mean, precision, x, clicks, weights)
    np.testing.assert_allclose(np.asarray(new.mean), expected, rtol=0, atol=1e-6)
    if covariance == "diagonal":  # under "full" it moves with its correlated neighbours
        assert np.asarray(new.mean)[7] == mean[7]
    p = expit(x @ np.asarray(new.mean))  # the update's own MAP: the closed form is exact
    hessian_data = (x.T * (weights * p * (1 - p))) @ x
    expected_precision = np.asarray(state.precision) + (
        hessian_data if covariance == "full" else np.diag(hessian_data)
    )
    np.testing.assert_allclose(np.asarray(new.precision), expected_precision, rtol=1e-9, atol=1e-9)


def test_integer_weight_equals_repeated_event():
    policy, (state, _) = make_policy(), random_state()
    ids = jnp.asarray([[0, 1, -1], [2, 3, 4], [1, 4, -1]], jnp.int32)
    clicks = jnp.asarray([1.0, 0.0, 1.0])
    weighted = policy.update(state, ids, clicks, jnp.asarray([2.0, 1.0, 0.0]))
    repeated = policy.update(state, ids[jnp.asarray([0, 0, 1])], clicks[jnp.asarray([0, 0, 1])])
    for a, b in zip(weighted, repeated, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def one_hot_draws(policy, state, num_features, num_draws, key):
    """Each request's Thompson draw ``w~``, read back from one-hot candidates ``[[i]]``."""
    candidates = jnp.arange(num_features, dtype=jnp.int32)[:, None]
    picked = policy.sample_batch(key, state, candidates, num_features, num_draws)
    draws = np.zeros((num_draws, num_features))
    np.put_along_axis(draws, np.asarray(picked.arms), np.asarray(picked.scores), axis=1)
    return draws


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_thompson_draws_have_the_laplace_covariance(covariance):
    """Mean and covariance of 4,000 draws vs ``N(m, alpha^2 Q^-1)``. Entry-wise tolerance: 5
    standard errors (mean: ``sqrt(S_ii / n)``; covariance: ``sqrt((S_ij^2 + S_ii S_jj) / n)``),
    so under the model the whole check fails with probability < 1e-5 (fixed key)."""
    num_draws, alpha = 4000, 0.5
    with jax.enable_x64(True):
        policy = make_policy(covariance, num_features=4, exploration_scale=alpha)
        state, _ = random_state(covariance, 4, 1, jnp.float64)
        draws = one_hot_draws(policy, state, 4, num_draws, jax.random.key(3))
        ids = jnp.asarray([[0, 1, 2]], jnp.int32)
        assert policy.sample(jax.random.key(0), state, ids, 1).scores.dtype == jnp.float64
        assert policy.predict(state, ids).dtype == jnp.float64
    covariance_true = alpha**2 * np.linalg.inv(precision_matrix(state))
    if covariance == "full":
        assert np.abs(covariance_true - np.diag(np.diag(covariance_true))).max() > 0.01
    spread = np.sqrt(np.diag(covariance_true))
    mean_error = np.abs(draws.mean(axis=0) - np.asarray(state.mean))
    assert (mean_error < 5 * spread / np.sqrt(num_draws)).all()
    standard_error = np.sqrt((covariance_true**2 + np.outer(spread**2, spread**2)) / num_draws)
    assert (np.abs(np.cov(draws.T) - covariance_true) < 5 * standard_error).all()


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_thompson_selection_is_a_brute_force_ranking_of_the_same_draw(covariance):
    policy, (state, rng) = make_policy(covariance, num_features=10), random_state(covariance, 10)
    one_hot = np.arange(10, dtype=np.int32)[:, None].repeat(3, axis=1)
    one_hot[:, 1:] = -1
    candidates = jnp.asarray(np.concatenate([one_hot, rng.integers(-1, 10, (40, 3))]), jnp.int32)
    key = jax.random.key(5)
    everything = policy.sample(key, state, candidates, 50)
    weights = np.zeros(10)
    order = np.asarray(everything.arms)
    weights[order[order < 10]] = np.asarray(everything.scores)[order < 10]
    scores = dense(candidates, 10) @ weights
    assert sorted(order) == list(range(50))
    # The ranking is the brute-force one up to float32 rounding of the sums (rows holding the
    # same ids in another order may swap), and the reported scores are the ranked ones.
    np.testing.assert_allclose(scores[order], np.sort(scores)[::-1], rtol=0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(everything.scores), scores[order], rtol=0, atol=1e-5)
    top = policy.sample(key, state, candidates, 3)
    np.testing.assert_array_equal(np.asarray(top.arms), order[:3])


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_ucb_greedy_and_predict_match_closed_forms(covariance):
    policy = make_policy(covariance, "ucb", ucb_scale=1.5)
    state, rng = random_state(covariance)
    candidates = rng.integers(-1, 6, (20, 3)).astype(np.int32)
    x = dense(candidates, 6)
    covariance_matrix = np.linalg.inv(precision_matrix(state).astype(np.float64))
    mean_score = x @ np.asarray(state.mean, np.float64)
    spread = np.einsum("ni,ij,nj->n", x, covariance_matrix, x)
    chosen = policy.sample(jax.random.key(0), state, jnp.asarray(candidates), 5)
    upper = mean_score + 1.5 * np.sqrt(spread)
    np.testing.assert_allclose(np.asarray(chosen.scores), np.sort(upper)[::-1][:5], rtol=1e-5)
    predicted = policy.predict(state, jnp.asarray(candidates))
    expected = expit(mean_score / np.sqrt(1 + np.pi * spread / 8))
    np.testing.assert_allclose(np.asarray(predicted), expected, rtol=1e-5)
    greedy = make_policy(covariance, "greedy")
    top = greedy.sample(jax.random.key(0), state, jnp.asarray(candidates), 5)
    np.testing.assert_allclose(np.asarray(top.scores), np.sort(mean_score)[::-1][:5], rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("exploration", RULES)
def test_sample_batch_requests_equal_single_samples(exploration):
    policy, (state, rng) = make_policy("full", exploration, epsilon=0.5), random_state("full")
    candidates = jnp.asarray(rng.integers(-1, 6, (20, 3)), jnp.int32)
    key = jax.random.key(4)
    batch = policy.sample_batch(key, state, candidates, 2, 3)
    assert batch.arms.shape == (3, 2) and batch.arms.dtype == jnp.int32
    for j, request_key in enumerate(jax.random.split(key, 3)):
        one = policy.sample(request_key, state, candidates, 2)
        np.testing.assert_array_equal(np.asarray(one.arms), np.asarray(batch.arms[j]))


@pytest.mark.parametrize("covariance", COVARIANCES)
def test_learns_a_logistic_truth(covariance):
    rng = np.random.default_rng(11)
    truth = rng.normal(size=20)
    policy = make_policy(covariance, num_features=20)
    state = policy.init()
    for _ in range(10):
        ids = np.stack([rng.choice(20, 3, replace=False) for _ in range(200)]).astype(np.int32)
        clicks = rng.random(200) < expit(dense(ids, 20) @ truth)
        state = policy.update(state, jnp.asarray(ids), jnp.asarray(clicks))
    assert np.corrcoef(np.asarray(state.mean), truth)[0, 1] > 0.9


def test_float32_tree_and_dtypes_are_preserved():
    for covariance in COVARIANCES:
        policy = make_policy(covariance)
        ids = jnp.asarray([[0, 1, 2], [2, -1, 5], [3, 3, 4], [0, 0, 0], [1, -1, -1]], jnp.int32)
        clicks = jnp.asarray([True, False, False, True, False])
        state = policy.init()
        chex.assert_trees_all_equal_shapes_and_dtypes(policy.update(state, ids, clicks), state)
        assert policy.predict(state, ids).dtype == jnp.float32
        empty = policy.update(state, jnp.zeros((0, 3), jnp.int32), jnp.zeros((0,)))
        chex.assert_trees_all_equal(empty, state)


GOOD_IDS = np.array([[0, 1], [2, -1], [3, 3]], np.int32)
GOOD_CLICKS = np.array([1.0, 0.0, 1.0])


@pytest.mark.parametrize("covariance", COVARIANCES)
@pytest.mark.parametrize(
    ("ids", "clicks", "weights", "name"),
    [
        (np.array([[0, 1], [2, -2], [3, 3]]), GOOD_CLICKS, None, "feature_ids"),
        (np.array([[0, 1], [2, 8], [3, 3]]), GOOD_CLICKS, None, "feature_ids"),
        (GOOD_IDS.astype(np.float32), GOOD_CLICKS, None, "feature_ids"),
        (GOOD_IDS[0], GOOD_CLICKS[:1], None, "feature_ids"),  # rank 1
        (GOOD_IDS, np.array([1.0, 2.0, 0.0]), None, "clicks"),
        (GOOD_IDS, np.array([1.0, np.nan, 0.0]), None, "clicks"),
        (GOOD_IDS, GOOD_CLICKS[:2], None, "clicks"),
        (GOOD_IDS, GOOD_CLICKS[:, None], None, "clicks"),
        (GOOD_IDS, GOOD_CLICKS, np.array([1.0, -1.0, 1.0]), "weights"),
        (GOOD_IDS, GOOD_CLICKS, np.array([1.0, np.inf, 1.0]), "weights"),
        (GOOD_IDS, GOOD_CLICKS, np.ones(2), "weights"),
    ],
)
def test_bad_update_inputs_raise_named_errors_and_leave_state_unchanged(
    covariance, ids, clicks, weights, name
):
    policy, (state, _) = make_policy(covariance, num_features=8), random_state(covariance, 8)
    mean, precision = np.asarray(state.mean).copy(), np.asarray(state.precision).copy()
    weights = None if weights is None else jnp.asarray(weights)
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        policy.update(state, jnp.asarray(ids), jnp.asarray(clicks), weights)
    np.testing.assert_array_equal(np.asarray(state.mean), mean)
    np.testing.assert_array_equal(np.asarray(state.precision), precision)


def test_bad_sample_predict_and_state_inputs_raise_named_errors():
    policy, (state, _) = make_policy("full", num_features=8), random_state("full", 8)
    key, ids = jax.random.key(0), jnp.asarray(GOOD_IDS)
    diagonal_state = LogisticState(state.mean, jnp.diag(state.precision))
    cases = [
        (lambda: policy.sample(key, state, ids, 0), "k"),
        (lambda: policy.sample(key, state, ids, 4), "k"),
        (lambda: policy.sample(key, state, ids, 1.0), "k"),
        (lambda: policy.sample(key, state, ids + 8, 1), "candidate_ids"),
        (lambda: policy.sample_batch(key, state, ids, 1, 0), "num_requests"),
        (lambda: policy.predict(state, ids[:, 0]), "feature_ids"),
        (lambda: policy.predict(state._replace(mean=state.mean[:4]), ids), "state.mean"),
        (lambda: policy.predict(diagonal_state, ids), "state.precision"),
        (lambda: policy.update((state.mean, state.precision), ids, GOOD_CLICKS), "state"),
    ]
    for call, name in cases:
        with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
            call()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_features": 0}, "num_features"),
        ({"num_features": 2.0}, "num_features"),
        ({"prior_variance": 0.0}, "prior_variance"),
        ({"prior_variance": [1.0, 1.0]}, "prior_variance"),
        ({"prior_mean": [0.0, np.nan, 0.0]}, "prior_mean"),
        ({"covariance": "banded"}, "covariance"),
        ({"exploration": "softmax"}, "exploration"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"ucb_scale": -1.0}, "ucb_scale"),
        ({"exploration_scale": np.nan}, "exploration_scale"),
        ({"newton_steps": 0}, "newton_steps"),
        ({"tol": -1e-6}, "tol"),
    ],
)
def test_bad_configuration_raises_named_errors(kwargs, name):
    kwargs = {"num_features": 3, **kwargs}
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        logistic_laplace(**kwargs)


@pytest.mark.sharding
@pytest.mark.skipif(
    jax.device_count() < 2,
    reason="needs several devices: XLA_FLAGS=--xla_force_host_platform_device_count=8",
)
def test_candidate_sharded_thompson_equals_single_device():
    from prime_science.core import mesh as mesh_lib

    mesh = mesh_lib.arm_mesh()
    num_candidates, num_features = 256 * mesh.devices.size, 200
    rng = np.random.default_rng(1)
    ids = jnp.asarray(rng.integers(-1, num_features, (num_candidates, 6)), jnp.int32)
    single = logistic_laplace(num_features)
    sharded = logistic_laplace(num_features, mesh=mesh)
    state = single.update(
        single.init(), ids[:100], jnp.asarray(rng.integers(0, 2, 100), jnp.float32)
    )
    placed = jax.device_put(ids, mesh_lib.arm_sharding(mesh))
    for seed in range(3):
        one = single.sample(jax.random.key(seed), state, ids, 5)
        many = sharded.sample(jax.random.key(seed), state, placed, 5)
        np.testing.assert_array_equal(np.asarray(one.arms), np.asarray(many.arms))
