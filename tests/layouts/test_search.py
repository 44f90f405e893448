"""Layout search: enumeration vs brute force, hill climbing vs enumeration, monotone climbs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.layouts import design, search

TINY = [
    design.layout_space((2, 3, 4)),
    design.layout_space((3, 2, 2, 3), num_context=2),
    design.layout_space((4, 4, 4), model="mvt1"),
]


def context_for(space, seed):
    if not space.num_context:
        return None
    return np.random.default_rng(seed).integers(0, 2, space.num_context)


@pytest.mark.slow
@pytest.mark.parametrize("space", TINY, ids=str)
def test_exhaustive_search_is_the_brute_force_argmax(space):
    for seed in range(3):
        weights = jax.random.normal(jax.random.key(seed), (space.num_features,))
        context = context_for(space, seed)
        layouts = design.all_layouts(space)
        scores = np.asarray(design.score(space, weights, layouts, context), np.float64)
        result = search.exhaustive_search(space, weights, context)
        np.testing.assert_array_equal(result.layout, layouts[np.argmax(scores)])
        np.testing.assert_allclose(result.score, scores.max(), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("space", TINY, ids=str)
def test_hill_climb_finds_the_exact_maximum_with_many_restarts_and_steps(space):
    climb = jax.jit(
        lambda key, w, x: search.hill_climb(key, space, w, x, restarts=32, steps=24),
    )
    for seed in range(8):
        weights = jax.random.normal(jax.random.key(seed), (space.num_features,))
        context = context_for(space, seed)
        exact = search.exhaustive_search(space, weights, context)
        found = climb(jax.random.key(100 + seed), weights, context)
        np.testing.assert_allclose(found.score, exact.score, rtol=1e-5)
        np.testing.assert_allclose(
            design.score(space, weights, found.layout, context), found.score, rtol=1e-5
        )


def test_hill_climb_with_one_step_can_miss_the_maximum():
    """The oracle comparison above can fail: S = K = 1 misses on most draws."""
    space = design.layout_space((8, 8, 8))
    weights = jax.random.normal(jax.random.key(0), (10, space.num_features))
    keys = jax.random.split(jax.random.key(1), 10)
    found = jax.jit(
        jax.vmap(lambda k, w: search.hill_climb(k, space, w, restarts=1, steps=1).score)
    )(keys, weights)
    exact = jax.jit(jax.vmap(lambda w: search.exhaustive_search(space, w).score))(weights)
    assert int(jnp.sum(found < exact - 1e-5)) >= 5


@pytest.mark.slow
def test_every_step_never_lowers_the_score_and_converged_climbs_are_local_optima():
    space = design.layout_space((5, 3, 4, 6))
    weights = jax.random.normal(jax.random.key(0), (space.num_features,))
    tables = design.score_tables(space, weights)
    key_start, key_order = jax.random.split(jax.random.key(1))
    starts = search.random_layouts(key_start, space, (64,))
    components = search.step_components(key_order, space.num_components, (64, 12))

    @jax.jit
    def trajectory(tables, starts, components):
        """Scores ``[K + 1, restarts]`` after every step."""

        def step(layouts, columns):
            layouts = jax.vmap(search.climb, in_axes=(None, 0, 0))(
                tables, layouts, columns[:, None]
            )
            return layouts, jax.vmap(design.table_score, in_axes=(None, 0))(tables, layouts)

        first = jax.vmap(design.table_score, in_axes=(None, 0))(tables, starts)
        _, scores = jax.lax.scan(step, starts, components.T)
        return jnp.concatenate([first[None], scores])

    scores = np.asarray(trajectory(tables, starts, components))
    assert np.all(np.diff(scores, axis=0) >= -1e-6)
    assert np.any(np.diff(scores, axis=0) > 1e-3)
    # many round-robin passes: no single-component change improves (a coordinate-wise optimum)
    round_robin = search.step_components(None, space.num_components, (64, 40), "round_robin")
    final = jax.jit(jax.vmap(search.climb, in_axes=(None, 0, 0)))(tables, starts, round_robin)
    layouts = np.asarray(final)[:8]
    neighbours, bases = [], []
    for layout in layouts:
        for c, n in enumerate(space.num_variants):
            changed = np.repeat(layout[None], n, axis=0)
            changed[:, c] = np.arange(n)
            neighbours.append(changed)
            bases.append(np.repeat(layout[None], n, axis=0))
    neighbour_scores = design.score(space, weights, np.concatenate(neighbours))
    base_scores = design.score(space, weights, np.concatenate(bases))
    assert bool(jnp.all(neighbour_scores <= base_scores + 1e-5))


@pytest.mark.slow
def test_batched_over_requests_equals_one_at_a_time():
    space = design.layout_space((4, 5, 3))
    keys = jax.random.split(jax.random.key(0), 6)
    weights = jax.random.normal(jax.random.key(1), (6, space.num_features))
    fn = jax.jit(lambda k, w: search.hill_climb(k, space, w, restarts=3, steps=4))
    batched = jax.jit(jax.vmap(fn))(keys, weights)
    for r in range(6):
        one = fn(keys[r], weights[r])
        np.testing.assert_array_equal(batched.layout[r], one.layout)
        np.testing.assert_allclose(batched.score[r], one.score, rtol=1e-6)


def test_huge_space_is_searched_without_enumeration():
    """1e10 layouts: hill climbing runs on O(D^2 N^2) tables; its score is the layout's, and
    it beats the best of 256 random layouts."""
    space = design.layout_space((10,) * 10)
    assert space.num_layouts == 10**10
    weights = jax.random.normal(jax.random.key(0), (space.num_features,))

    @jax.jit
    def check(key, weights):
        key_climb, key_random = jax.random.split(key)
        found = search.hill_climb(key_climb, space, weights, restarts=2, steps=20)
        rescored = design.score(space, weights, found.layout)
        randoms = design.score(space, weights, search.random_layouts(key_random, space, (256,)))
        return found.score, rescored, jnp.max(randoms)

    climbed, rescored, best_random = check(jax.random.key(1), weights)
    np.testing.assert_allclose(rescored, climbed, rtol=1e-5)
    assert float(climbed) > float(best_random)


def test_round_robin_cycles_components():
    steps = np.asarray(search.step_components(None, 3, (2, 7), "round_robin"))
    np.testing.assert_array_equal(steps, np.tile([0, 1, 2, 0, 1, 2, 0], (2, 1)))
    draws = np.asarray(search.step_components(jax.random.key(0), 3, (4000,)))
    assert set(np.unique(draws)) == {0, 1, 2}


def test_random_layouts_are_in_range_and_cover_every_variant():
    space = design.layout_space((2, 5, 3))
    layouts = np.asarray(search.random_layouts(jax.random.key(0), space, (3000,)))
    for c, n in enumerate(space.num_variants):
        assert set(np.unique(layouts[:, c])) == set(range(n))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"restarts": 0}, "restarts"), ({"steps": 1.5}, "steps"), ({"order": "cyclic"}, "order")],
)
def test_bad_search_arguments(kwargs, name):
    space = TINY[0]
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        search.hill_climb(jax.random.key(0), space, jnp.zeros(space.num_features), **kwargs)


def test_nan_weight_is_refused_by_name_and_never_gives_an_out_of_range_layout():
    """The reproducer: (3, 4, 2) with one NaN weight returned [3 3 0] (component 0 has 3
    variants). Eagerly it is refused; under jit (no value checks) every NaN / inf pattern gives
    a layout with 0 <= A_i < N_i."""
    space = design.layout_space((3, 4, 2))
    weights = np.asarray(jax.random.normal(jax.random.key(0), (space.num_features,)))
    poisoned = weights.copy()
    poisoned[1] = np.nan
    with pytest.raises(InvalidArgumentError, match="^weights: expected finite values"):
        search.hill_climb(jax.random.key(1), space, poisoned)
    climb = jax.jit(lambda key, w: search.hill_climb(key, space, w, restarts=4, steps=6).layout)
    rng = np.random.default_rng(0)
    sizes = np.asarray(space.num_variants)
    for trial in range(40):
        bad = weights.copy()
        where = rng.choice(space.num_features, rng.integers(1, space.num_features + 1), False)
        bad[where] = rng.choice([np.nan, np.inf, -np.inf], where.size)
        layout = np.asarray(climb(jax.random.key(trial), bad))
        assert np.all((layout >= 0) & (layout < sizes)), (trial, layout)
    every_nan = np.full(space.num_features, np.nan, np.float32)
    np.testing.assert_array_equal(climb(jax.random.key(0), every_nan), [0, 0, 0])


def test_argmax_first_counts_nan_as_minus_infinity():
    values = jnp.array([[np.nan, 1.0, 3.0, 3.0], [np.nan] * 4, [-np.inf, np.nan, -np.inf, 2.0]])
    np.testing.assert_array_equal(search.argmax_first(values), [2, 0, 3])


def test_results_equal_those_recorded_before_the_vectorised_tables():
    """Layouts and scores recorded with the per-pair loop version (commit before 9a0ce97) for
    the same keys and weights: the vectorised tables and the jitted hill_climb change nothing
    (417 such values, tables and feature ids included, were compared when it changed)."""
    cases = [
        ((3, 5, 2, 7, 4, 2, 3), 0, 0, "random", 10, 5, [0, 4, 1, 6, 1, 1, 1], 17.178192138671875),
        (
            (3, 5, 2, 7, 4, 2, 3),
            0,
            1,
            "round_robin",
            8,
            30,
            [1, 4, 0, 1, 2, 1, 2],
            18.77245330810547,
        ),
    ]
    for sizes, context, seed, order, restarts, steps, layout, score in cases:
        space = design.layout_space(sizes, context)
        weights = jax.random.normal(jax.random.key(seed), (space.num_features,))
        found = search.hill_climb(
            jax.random.key(seed + 100), space, weights, restarts=restarts, steps=steps, order=order
        )
        np.testing.assert_array_equal(found.layout, layout)
        assert float(found.score) == score


def test_traced_graph_does_not_grow_with_the_number_of_components():
    """The cause of minutes-long calls at D = 300: one traced slice per component pair. The
    jaxpr of hill_climb (tables + search) now has the same number of equations for every D."""

    def equations(d):
        space = design.layout_space((2,) * d)
        weights = jnp.zeros(space.num_features)
        jaxpr = jax.make_jaxpr(
            lambda key, w: search.hill_climb_tables(key, space, design.score_tables(space, w), 3, 4)
        )(jax.random.key(0), weights)
        ids = jax.make_jaxpr(lambda a: design.feature_ids(space, a))(jnp.zeros((5, d), jnp.int32))
        return len(jaxpr.jaxpr.eqns), len(ids.jaxpr.eqns)

    assert equations(5) == equations(60)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_thousand_binary_components_take_seconds():
    """D = 1000 components of 2 variants (M = 2,000,001 weights): about 0.5 s for the first call
    (compile included) and 0.05 s for the next on the 2-core CPU; 413 s and 514 s before."""
    space = design.layout_space((2,) * 1000)
    weights = jax.random.normal(jax.random.key(0), (space.num_features,))
    found = search.hill_climb(jax.random.key(1), space, weights, restarts=2, steps=50)
    assert found.layout.shape == (1000,) and np.isfinite(float(found.score))
    # the tables' score of the layout and the feature map's (K = 500,501 ids) are the same number
    rescored = design.table_score(design.score_tables(space, weights), found.layout)
    np.testing.assert_allclose(rescored, found.score, rtol=1e-5)
    np.testing.assert_allclose(design.score(space, weights, found.layout), found.score, rtol=1e-4)
    assert np.all(np.asarray(found.layout) < 2)
