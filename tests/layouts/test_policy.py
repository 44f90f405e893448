"""Layout policies: probit reuse, Thompson draws, search choices, baselines' bookkeeping, errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.core.errors import InvalidArgumentError
from prime_science.layouts import design, policy, search


def test_update_is_probit_adf_on_the_layout_ids():
    space = design.layout_space((2, 3, 4))
    rng = np.random.default_rng(0)
    layouts = np.stack([rng.integers(0, n, 50) for n in space.num_variants], axis=1)
    rewards = rng.integers(0, 2, 50).astype(np.float32)
    mvt = policy.mvt_thompson(space, prior_variance=0.5, noise=2.0)
    got = mvt.update(mvt.init(), layouts, rewards)
    model = probit_adf(space.num_features, prior_variance=0.5, noise=2.0)
    expected = model.update(model.init(), design.feature_ids(space, layouts), rewards)
    np.testing.assert_array_equal(got.mean, expected.mean)
    np.testing.assert_array_equal(got.variance, expected.variance)
    assert not np.allclose(got.mean, 0.0)


def test_posterior_draw_has_the_posterior_moments():
    """``mu + sigma z`` over 4,000 keys: each coordinate's mean within 5 s.e. (Bonferroni-safe
    for 64 coordinates), the pooled standardised draws pass a KS test for N(0, 1) at 1e-3."""
    size, draws = 63, 4000  # odd: the last normal is a cosine without its sine partner
    rng = np.random.default_rng(0)
    mean = rng.normal(size=size).astype(np.float32)
    variance = rng.uniform(0.1, 2.0, size).astype(np.float32)
    keys = jax.random.split(jax.random.key(1), draws)
    samples = np.asarray(
        jax.jit(
            jax.vmap(lambda k: policy.posterior_draw(k, jnp.asarray(mean), jnp.asarray(variance)))
        )(keys),
        np.float64,
    )
    se = np.sqrt(variance / draws)
    assert np.all(np.abs(samples.mean(0) - mean) < 5 * se)
    z = (samples - mean) / np.sqrt(variance)
    np.testing.assert_allclose(z.var(0).mean(), 1.0, atol=0.02)
    assert st.kstest(z.ravel()[::7], "norm").pvalue > 1e-3
    # neighbouring weights (one cosine / sine pair) are uncorrelated
    assert abs(np.corrcoef(z[:, 0], z[:, 1])[0, 1]) < 5 / np.sqrt(draws)


@pytest.mark.slow
@pytest.mark.parametrize("search_method", ["hill_climb", "exhaustive"])
def test_a_confident_posterior_chooses_its_argmax(search_method):
    space = design.layout_space((3, 4, 2, 3))
    weights = jax.random.normal(jax.random.key(0), (space.num_features,))
    state = ProbitState(weights, jnp.full(space.num_features, 1e-10))
    mvt = policy.mvt_thompson(space, search_method=search_method, restarts=8, steps=12)
    chosen = jax.jit(lambda k, s: mvt.choose(k, s, 12))(jax.random.key(1), state)
    best = search.exhaustive_search(space, weights).layout
    assert chosen.shape == (12, space.num_components)
    np.testing.assert_array_equal(chosen, np.tile(best, (12, 1)))
    np.testing.assert_array_equal(mvt.recommend(jax.random.key(2), state), best)


def test_one_draw_per_request_explores():
    space = design.layout_space((4, 4, 4))
    mvt = policy.mvt_thompson(space)
    chosen = np.asarray(mvt.choose(jax.random.key(0), mvt.init(), 64))
    assert len({tuple(row) for row in chosen.tolist()}) > 20
    for c, n in enumerate(space.num_variants):
        assert chosen[:, c].min() >= 0 and chosen[:, c].max() < n


@pytest.mark.slow
def test_context_policy_follows_the_context():
    """MVT2c: with a confident posterior whose context x variant weights favour variant 1
    under context 0 = on and variant 0 otherwise, the choice follows the context."""
    space = design.layout_space((2, 2), num_context=1)
    weights = np.zeros(space.num_features, np.float32)
    ids_on = np.asarray(design.feature_ids(space, np.array([1, 0]), np.array([1])))
    ids_off = np.asarray(design.feature_ids(space, np.array([0, 0]), np.array([0])))
    weights[ids_off[1]] = 1.0  # first component, variant 0: +1
    weights[ids_on[-2]] = 3.0  # context x (first component, variant 1): +3 when on
    state = ProbitState(jnp.asarray(weights), jnp.full(space.num_features, 1e-10))
    mvt = policy.mvt_thompson(space, restarts=4, steps=4)
    contexts = np.array([[0], [1], [0], [1]])
    chosen = np.asarray(mvt.choose(jax.random.key(0), state, 4, contexts))
    np.testing.assert_array_equal(chosen[:, 0], [0, 1, 0, 1])
    updated = mvt.update(state, chosen, np.ones(4, np.float32), contexts)
    assert updated.mean.shape == state.mean.shape


@pytest.mark.slow
def test_layout_mab_counts_on_the_layouts_arm():
    space = design.layout_space((2, 3, 2))
    mab = policy.layout_mab(space)
    layouts = design.all_layouts(space)
    state = mab.update(mab.init(), layouts[[5, 5, 7]], np.array([1.0, 0.0, 1.0]))
    alpha, beta = np.asarray(state.alpha), np.asarray(state.beta)
    assert (alpha[5], beta[5], alpha[7], beta[7]) == (2.0, 2.0, 2.0, 1.0)
    assert alpha.sum() == space.num_layouts + 2 and beta.sum() == space.num_layouts + 1
    np.testing.assert_array_equal(mab.recommend(None, state), layouts[7])
    confident = state._replace(alpha=state.alpha.at[3].set(1e6))
    chosen = mab.choose(jax.random.key(0), confident, 8)
    np.testing.assert_array_equal(chosen, np.tile(layouts[3], (8, 1)))


@pytest.mark.slow
def test_component_mabs_credit_each_component_separately():
    space = design.layout_space((2, 3, 4))
    mabs = policy.component_mabs(space)
    state = mabs.update(mabs.init(), np.array([[1, 2, 3], [1, 0, 3]]), np.array([1.0, 0.0]))
    n_max = space.max_variants
    alpha = np.asarray(state.alpha).reshape(3, n_max)
    beta = np.asarray(state.beta).reshape(3, n_max)
    assert alpha[0, 1] == 2.0 and beta[0, 1] == 2.0
    assert alpha[1, 2] == 2.0 and beta[1, 0] == 2.0 and alpha[2, 3] == 2.0 and beta[2, 3] == 2.0
    np.testing.assert_array_equal(mabs.recommend(None, state), [0, 2, 0])
    chosen = np.asarray(mabs.choose(jax.random.key(0), mabs.init(), 3000))
    for c, n in enumerate(space.num_variants):
        counts = np.bincount(chosen[:, c], minlength=n_max)
        assert np.all(counts[n:] == 0)  # padding slots are never chosen
        assert np.all(np.abs(counts[:n] / 3000 - 1 / n) < 0.05)
    confident = state._replace(alpha=state.alpha.at[2 * n_max + 1].set(1e6))
    assert np.all(np.asarray(mabs.choose(jax.random.key(1), confident, 3000))[:, 2] == 1)


def test_uniform_is_uniform_and_learns_nothing():
    space = design.layout_space((2, 3))
    uniform = policy.uniform_layouts(space)
    chosen = np.asarray(uniform.choose(jax.random.key(0), uniform.init(), 6000))
    arms = chosen[:, 0] * 3 + chosen[:, 1]
    assert st.chisquare(np.bincount(arms, minlength=6)).pvalue > 1e-3
    assert uniform.update((), chosen[:4], np.ones(4)) == ()


@pytest.mark.slow
def test_mvt2_learns_the_best_layout_of_a_small_world():
    """After 40 rounds of 100 requests in a 2 x 3 world with an interaction, MVT2 shows the
    best layout more than half of the time (uniform: 1/6)."""
    space = design.layout_space((2, 3))
    probabilities = jnp.array([0.05, 0.1, 0.3, 0.1, 0.35, 0.05])
    mvt = policy.mvt_thompson(space, restarts=4, steps=4)

    @jax.jit
    def simulate(key):
        def step(state, key):
            key_choose, key_click = jax.random.split(key)
            layouts = mvt.choose(key_choose, state, 100)
            p = probabilities[layouts[:, 0] * 3 + layouts[:, 1]]
            clicks = (jax.random.uniform(key_click, (100,)) < p).astype(jnp.float32)
            return mvt.update(state, layouts, clicks), jnp.mean(
                layouts[:, 0] * 3 + layouts[:, 1] == 4
            )

        return jax.lax.scan(step, mvt.init(), jax.random.split(key, 40))[1]

    share = np.asarray(simulate(jax.random.key(0)))
    assert share[-10:].mean() > 0.5


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (
            lambda: policy.mvt_thompson(design.layout_space((2,)), search_method="greedy"),
            "search_method",
        ),
        (
            lambda: policy.mvt_thompson(design.layout_space((10,) * 4), search_method="exhaustive"),
            "space",
        ),
        (lambda: policy.mvt_thompson(design.layout_space((2, 2)), restarts=0), "restarts"),
        (lambda: policy.mvt_thompson((2, 2)), "space"),
        (lambda: policy.layout_mab(design.layout_space((10,) * 4)), "space"),
    ],
)
def test_bad_factory_arguments(call, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        call()


@pytest.mark.parametrize(
    "factory",
    [policy.mvt_thompson, policy.layout_mab, policy.component_mabs, policy.uniform_layouts],
)
def test_bad_feedback_and_requests(factory):
    space = design.layout_space((2, 3))
    p = factory(space)
    state = p.init()
    with pytest.raises(InvalidArgumentError, match="^layouts: expected"):
        p.update(state, np.array([[0, 3]]), np.array([1.0]))
    with pytest.raises(InvalidArgumentError, match="^rewards: expected"):
        p.update(state, np.array([[0, 2], [1, 1]]), np.array([1.0]))
    with pytest.raises(InvalidArgumentError, match="^num_requests: expected"):
        p.choose(jax.random.key(0), state, 0)


@pytest.mark.parametrize(
    "factory",
    [policy.mvt_thompson, policy.layout_mab, policy.component_mabs, policy.uniform_layouts],
)
def test_conformance_jit_same_key_and_stable_state(factory):
    """jit == no-jit, the same key gives the same layouts, ``update`` keeps the state tree."""
    space = design.layout_space((2, 3, 4))
    p = factory(space)
    state = p.init()
    key = jax.random.key(7)
    eager = p.choose(key, state, 8)
    jitted = jax.jit(lambda k, s: p.choose(k, s, 8))(key, state)
    np.testing.assert_array_equal(eager, jitted)
    np.testing.assert_array_equal(eager, p.choose(key, state, 8))
    rewards = (np.arange(8) % 2).astype(np.float32)
    updated = jax.jit(p.update)(state, eager, rewards)
    chex.assert_trees_all_equal_shapes_and_dtypes(updated, state)
    chex.assert_trees_all_equal(updated, p.update(state, eager, rewards))
