"""Beta–Bernoulli Thompson sampling: closed-form posterior, lifecycle, errors, sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st
from scipy.integrate import quad

from prime_science.bandits.beta_bernoulli import BetaBernoulliState, beta_bernoulli
from prime_science.core import mesh as mesh_lib
from prime_science.core.errors import InvalidArgumentError


def numpy_posterior(alpha0, beta0, num_arms, arms, rewards, weights=None):
    """Oracle: the conjugate update written with np.add.at in float64."""
    weights = np.ones(len(arms)) if weights is None else np.asarray(weights, np.float64)
    rewards = np.asarray(rewards, np.float64)
    alpha = np.broadcast_to(np.asarray(alpha0, np.float64), (num_arms,)).copy()
    beta = np.broadcast_to(np.asarray(beta0, np.float64), (num_arms,)).copy()
    np.add.at(alpha, arms, weights * rewards)
    np.add.at(beta, arms, weights * (1 - rewards))
    return alpha, beta


def test_posterior_with_duplicates_weights_and_fractional_rewards():
    rng = np.random.default_rng(0)
    num_arms = 50
    prior_alpha = rng.uniform(0.5, 3.0, num_arms)
    policy = beta_bernoulli(prior_alpha, 2.0)
    state = policy.init(num_arms)
    arms = rng.integers(0, 10, 400)  # many duplicates on purpose
    rewards = rng.choice([0.0, 1.0, 0.25, 0.5, 0.875], 400)
    weights = rng.choice([0.5, 1.0, 2.0, 3.0], 400)
    state = policy.update(state, jnp.asarray(arms), jnp.asarray(rewards), jnp.asarray(weights))
    alpha, beta = numpy_posterior(prior_alpha, 2.0, num_arms, arms, rewards, weights)
    np.testing.assert_allclose(np.asarray(state.alpha), alpha, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(state.beta), beta, rtol=1e-6)


def test_update_returns_same_tree_shapes_dtypes():
    policy = beta_bernoulli()
    state = policy.init(8)
    new = policy.update(state, jnp.array([1, 2]), jnp.array([True, False]))
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(state), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype


@pytest.mark.slow
def test_thompson_concentrates_on_the_best_arm():
    """With a sharp posterior the best arm wins almost always (P(loss) from the posterior)."""
    policy = beta_bernoulli()
    state = policy.init(3)
    arms = jnp.repeat(jnp.arange(3), 2000)
    rewards = jnp.concatenate(
        [
            jnp.zeros(2000).at[:100].set(1),
            jnp.zeros(2000).at[:300].set(1),
            jnp.zeros(2000).at[:120].set(1),
        ]
    )
    state = policy.update(state, arms, rewards)
    picks = policy.sample_batch(jax.random.key(0), state, 1, 500).arms[:, 0]
    assert np.mean(np.asarray(picks) == 1) > 0.99


def test_sampled_scores_follow_the_posterior():
    """Scores of a one-arm policy are draws from Beta(alpha, beta) (KS, p > 1e-3)."""
    policy = beta_bernoulli(2.0, 5.0)
    state = policy.init(1)
    state = policy.update(state, jnp.array([0, 0, 0]), jnp.array([1.0, 0.0, 1.0]))
    scores = policy.sample_batch(jax.random.key(3), state, 1, 5000).scores[:, 0]
    assert st.kstest(np.asarray(scores, np.float64), st.beta(4.0, 6.0).cdf).pvalue > 1e-3


def test_batched_requests_are_independent_draws_with_the_exact_win_probabilities():
    """Three arms, Beta(3, 5), Beta(4, 4), Beta(2, 2): over 20,000 requests of one batch the
    winners' frequencies match ``P(i best) = int f_i(x) prod_{j != i} F_j(x) dx`` (quadrature),
    and the winners of consecutive requests are independent (chi-square on the 3 x 3 table of
    pairs). Fixed key; each test fails with probability ~1e-3 under the null."""
    policy = beta_bernoulli(1.0, 1.0)
    state = policy.update(
        policy.init(3),
        jnp.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2]),
        jnp.array([1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
    )
    laws = [st.beta(3, 5), st.beta(4, 4), st.beta(2, 2)]
    exact = [
        quad(
            lambda x, i=i: laws[i].pdf(x) * np.prod([laws[j].cdf(x) for j in range(3) if j != i]),
            0,
            1,
        )[0]
        for i in range(3)
    ]
    num_requests = 20_000
    winners = np.asarray(policy.sample_batch(jax.random.key(11), state, 1, num_requests).arms[:, 0])
    observed = np.bincount(winners, minlength=3)
    assert st.chisquare(observed, np.asarray(exact) * num_requests).pvalue > 1e-3
    pairs = np.zeros((3, 3))
    np.add.at(pairs, (winners[0::2], winners[1::2]), 1)
    assert st.chi2_contingency(pairs).pvalue > 1e-3


@pytest.mark.slow
def test_add_and_retire_arms():
    policy = beta_bernoulli(1.0, 9.0)
    state = policy.init(10, num_active=4)
    assert np.asarray(state.active).tolist() == [True] * 4 + [False] * 6
    state = policy.update(state, jnp.array([0, 1]), jnp.array([1.0, 0.0]))
    state = policy.retire_arms(state, jnp.array([0, 1, 2]))
    picks = policy.sample_batch(jax.random.key(0), state, 1, 300).arms
    assert set(np.unique(np.asarray(picks))) == {3}  # the only active arm
    state = policy.add_arms(state, jnp.array([0, 7]))  # slot 0 is reused: back to the prior
    assert float(state.alpha[0]) == 1.0 and float(state.beta[0]) == 9.0
    picks = policy.sample_batch(jax.random.key(1), state, 3, 300).arms
    assert set(np.unique(np.asarray(picks))) == {0, 3, 7}


def test_fewer_active_arms_than_k_leaves_empty_slots():
    policy = beta_bernoulli()
    state = policy.init(6, num_active=2)
    selection = policy.sample(jax.random.key(0), state, 4)
    assert sorted(np.asarray(selection.arms)[:2].tolist()) == [0, 1]
    assert np.asarray(selection.arms)[2:].tolist() == [-1, -1]
    assert np.all(np.isneginf(np.asarray(selection.scores)[2:]))


@pytest.mark.slow
def test_cold_start_arm_gets_explored():
    """A new arm at the prior Beta(1, 1) beats well-known 3% arms in a visible share of draws."""
    policy = beta_bernoulli()
    state = policy.init(101, num_active=100)
    arms = jnp.repeat(jnp.arange(100), 1000)
    rewards = (jnp.arange(100_000) % 1000 < 30).astype(jnp.float32)
    state = policy.update(state, arms, rewards)
    state = policy.add_arms(state, jnp.array([100]))
    picks = np.asarray(policy.sample_batch(jax.random.key(0), state, 1, 2000).arms[:, 0])
    assert 0.8 < np.mean(picks == 100) < 1.0  # P(Beta(1,1) > ~0.045) ~ 0.95


def test_per_arm_prior_length_must_match():
    policy = beta_bernoulli(np.ones(5), 1.0)
    with pytest.raises(InvalidArgumentError, match="prior_alpha: expected one value per arm"):
        policy.init(6)


# --- bad input: a named error and the state left as it was --------------------------------


@pytest.fixture
def trained():
    policy = beta_bernoulli()
    state = policy.init(10, num_active=8)
    state = policy.update(state, jnp.array([1, 2, 3]), jnp.array([1.0, 0.0, 0.5]))
    return policy, state


BAD_UPDATES = [
    (
        {"arms": jnp.array([10]), "rewards": jnp.array([1.0])},
        "arms: expected arm ids in \\[0, 10\\)",
    ),
    ({"arms": jnp.array([-1]), "rewards": jnp.array([1.0])}, "arms: expected arm ids"),
    ({"arms": jnp.array([9]), "rewards": jnp.array([1.0])}, "arms: expected active arms"),
    (
        {"arms": jnp.array([1]), "rewards": jnp.array([jnp.nan])},
        "rewards: expected values in \\[0, 1\\]",
    ),
    (
        {"arms": jnp.array([1]), "rewards": jnp.array([-0.1])},
        "rewards: expected values in \\[0, 1\\]",
    ),
    (
        {"arms": jnp.array([1]), "rewards": jnp.array([1.5])},
        "rewards: expected values in \\[0, 1\\]",
    ),
    ({"arms": jnp.array([1, 2]), "rewards": jnp.array([1.0])}, "rewards: expected the same length"),
    ({"arms": jnp.array([1.0]), "rewards": jnp.array([1.0])}, "arms: expected integer arm ids"),
    ({"arms": np.array([1]), "rewards": np.array(["1"])}, "rewards: expected real-valued"),
    ({"arms": jnp.array([[1]]), "rewards": jnp.array([1.0])}, "arms: expected an array of rank 1"),
    (
        {"arms": jnp.array([1]), "rewards": jnp.array([1.0]), "weights": jnp.array([-2.0])},
        "weights: expected finite values >= 0",
    ),
    (
        {"arms": jnp.array([1]), "rewards": jnp.array([1.0]), "weights": jnp.array([1.0, 1.0])},
        "weights: expected the same length",
    ),
]


@pytest.mark.parametrize("kwargs,message", BAD_UPDATES)
def test_bad_update_raises_and_leaves_state_unchanged(trained, kwargs, message):
    policy, state = trained
    before = jax.tree_util.tree_map(np.array, state)
    with pytest.raises(InvalidArgumentError, match=message):
        policy.update(state, **kwargs)
    for a, b in zip(
        jax.tree_util.tree_leaves(before), jax.tree_util.tree_leaves(state), strict=True
    ):
        np.testing.assert_array_equal(a, np.asarray(b))


@pytest.mark.parametrize(
    "prior_alpha,prior_beta,message",
    [
        (0.0, 1.0, "prior_alpha: expected finite values > 0"),
        (1.0, -2.0, "prior_beta: expected finite values > 0"),
        (np.array([1.0, np.nan]), 1.0, "prior_alpha: expected finite values > 0"),
        (np.ones((2, 2)), 1.0, "prior_alpha: expected a scalar or a 1-D"),
        ("one", 1.0, "prior_alpha: expected a real number"),
    ],
)
def test_bad_prior(prior_alpha, prior_beta, message):
    with pytest.raises(InvalidArgumentError, match=message):
        beta_bernoulli(prior_alpha, prior_beta)


def test_bad_lifecycle_and_sample_arguments(trained):
    policy, state = trained
    with pytest.raises(InvalidArgumentError, match="arm_ids: expected free"):
        policy.add_arms(state, jnp.array([0]))
    with pytest.raises(InvalidArgumentError, match="arm_ids: expected active arms"):
        policy.retire_arms(state, jnp.array([9]))
    with pytest.raises(InvalidArgumentError, match="arm_ids: expected arm ids in"):
        policy.retire_arms(state, jnp.array([12]))
    with pytest.raises(InvalidArgumentError, match="k: expected an integer in \\[1, 10\\]"):
        policy.sample(jax.random.key(0), state, 11)
    with pytest.raises(InvalidArgumentError, match="num_arms: expected a positive integer"):
        policy.init(0)
    with pytest.raises(InvalidArgumentError, match="num_active: expected an integer in"):
        policy.init(5, num_active=6)


def test_traced_update_skips_value_checks_but_keeps_static_ones(trained):
    """Inside jit nothing is re-checked by value; shape and dtype are still checked."""
    policy, state = trained
    update = jax.jit(policy.update)
    out = update(state, jnp.array([4]), jnp.array([1.0]))
    assert float(out.alpha[4]) == 2.0
    with pytest.raises(InvalidArgumentError, match="arms: expected integer arm ids"):
        update(state, jnp.array([1.0]), jnp.array([1.0]))


# --- sharding: run with XLA_FLAGS=--xla_force_host_platform_device_count=8 ----------------

needs_devices = pytest.mark.skipif(
    jax.device_count() < 2,
    reason="needs several devices: XLA_FLAGS=--xla_force_host_platform_device_count=8",
)


@pytest.mark.sharding
@needs_devices
@pytest.mark.parametrize("approximate", [False, True])
def test_sharded_sample_and_update_equal_single_device(approximate):
    mesh = mesh_lib.arm_mesh()
    num_arms = 1024 * mesh.devices.size
    rng = np.random.default_rng(0)
    arms = jnp.asarray(rng.integers(0, num_arms - 100, 5000))
    rewards = jnp.asarray(rng.choice([0.0, 0.25, 1.0], 5000))
    single = beta_bernoulli(approximate=approximate)
    sharded = beta_bernoulli(approximate=approximate, mesh=mesh)
    state_single = single.init(num_arms, num_active=num_arms - 100)
    state_sharded = sharded.init(num_arms, num_active=num_arms - 100)
    assert len(state_sharded.alpha.sharding.device_set) == mesh.devices.size
    state_single = single.update(state_single, arms, rewards)
    state_sharded = sharded.update(state_sharded, arms, rewards)
    for a, b in zip(state_single, state_sharded, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert len(state_sharded.alpha.sharding.device_set) == mesh.devices.size
    for k in (1, 5):
        for seed in range(3):
            key = jax.random.key(seed)
            one = jax.jit(single.sample, static_argnums=2)(key, state_single, k)
            many = jax.jit(sharded.sample, static_argnums=2)(key, state_sharded, k)
            np.testing.assert_array_equal(np.asarray(one.arms), np.asarray(many.arms))
            np.testing.assert_allclose(np.asarray(one.scores), np.asarray(many.scores), rtol=1e-6)
    batch_one = single.sample_batch(jax.random.key(7), state_single, 2, 4)
    batch_many = sharded.sample_batch(jax.random.key(7), state_sharded, 2, 4)
    np.testing.assert_array_equal(np.asarray(batch_one.arms), np.asarray(batch_many.arms))


@pytest.mark.sharding
@needs_devices
def test_shard_arms_rejects_indivisible_capacity():
    mesh = mesh_lib.arm_mesh()
    with pytest.raises(InvalidArgumentError, match="divisible by the"):
        beta_bernoulli(mesh=mesh).init(mesh.devices.size * 10 + 1)


def test_state_is_a_namedtuple_of_arrays():
    state = beta_bernoulli().init(4)
    assert isinstance(state, BetaBernoulliState)
    assert state.alpha.dtype == jnp.float32 and state.active.dtype == jnp.bool_
