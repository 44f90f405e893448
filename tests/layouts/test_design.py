"""Layout design: feature ids against a brute-force dense oracle, incremental scores, errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.layouts import design

SPACES = [
    design.layout_space((2, 3, 4)),
    design.layout_space((2, 3, 4), model="mvt1"),
    design.layout_space((3, 2, 2, 3), num_context=2),
    design.layout_space((4,)),
]


def oracle_score(space, weights, layout, context):
    """``s(A, x)`` term by term from the formula (float64), with its own indexing."""
    w = np.asarray(weights, np.float64)
    sizes = space.num_variants
    position = 1
    first_start = []
    for n in sizes:
        first_start.append(position)
        position += n
    total = w[0] + sum(w[first_start[i] + a] for i, a in enumerate(layout))
    if space.model == "mvt2":
        for j, k in itertools.combinations(range(len(sizes)), 2):
            total += w[position + layout[j] * sizes[k] + layout[k]]
            position += sizes[j] * sizes[k]
    for bit in range(space.num_context):
        if context[bit]:
            total += w[position + bit]
    position += space.num_context
    for bit in range(space.num_context):
        if context[bit]:
            for m, a in enumerate(layout):
                total += w[position + bit * sum(sizes) + first_start[m] - 1 + a]
    return total


def random_weights(space, seed):
    return jax.random.normal(jax.random.key(seed), (space.num_features,))


@pytest.mark.slow
@pytest.mark.parametrize("space", SPACES, ids=str)
def test_dimensions_and_active_counts(space):
    d, c, sizes = space.num_components, space.num_context, space.num_variants
    pairs = sum(a * b for a, b in itertools.combinations(sizes, 2))
    expected = 1 + sum(sizes) + (pairs if space.model == "mvt2" else 0) + c + c * sum(sizes)
    assert space.num_features == expected
    layouts = design.all_layouts(space)
    assert layouts.shape == (np.prod(sizes), d)
    context = np.ones(c, np.int32) if c else None
    ids = np.asarray(design.feature_ids(space, layouts, context))
    assert ids.shape == (layouts.shape[0], space.num_active)
    k = 1 + d + (d * (d - 1) // 2 if space.model == "mvt2" else 0) + c + c * d
    assert space.num_active == k
    # every layout activates distinct ids, all in range; distinct layouts differ
    assert ids.min() >= 0 and ids.max() < space.num_features
    assert all(len(set(row)) == k for row in ids.tolist())
    assert len({tuple(row) for row in ids.tolist()}) == layouts.shape[0]
    # every weight is used by some layout (with all context indicators on)
    assert set(ids.ravel().tolist()) == set(range(space.num_features))


@pytest.mark.slow
@pytest.mark.parametrize("space", SPACES, ids=str)
def test_score_matches_the_formula(space):
    weights = random_weights(space, 0)
    rng = np.random.default_rng(1)
    layouts = design.all_layouts(space)
    contexts = rng.integers(0, 2, (layouts.shape[0], space.num_context))
    contexts_arg = contexts if space.num_context else None
    scores = np.asarray(design.score(space, weights, layouts, contexts_arg))
    expected = [oracle_score(space, weights, a, x) for a, x in zip(layouts, contexts, strict=True)]
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("space", SPACES, ids=str)
def test_tables_and_incremental_scores_equal_full_rescoring(space):
    weights = random_weights(space, 2)
    rng = np.random.default_rng(3)
    context = rng.integers(0, 2, space.num_context) if space.num_context else None
    tables = design.score_tables(space, weights, context)
    layouts = design.all_layouts(space)
    full = np.asarray(design.score(space, weights, layouts, context))
    table = np.asarray(
        jax.vmap(design.table_score, in_axes=(None, 0))(tables, jnp.asarray(layouts))
    )
    np.testing.assert_allclose(table, full, rtol=1e-5, atol=1e-5)
    for layout in layouts[rng.choice(layouts.shape[0], 3)]:
        base = float(design.score(space, weights, layout, context))
        for c, n in enumerate(space.num_variants):
            deltas = np.asarray(design.component_deltas(tables, jnp.asarray(layout), c))
            sums = np.asarray(design.interaction_sums(tables, jnp.asarray(layout)))
            np.testing.assert_allclose(deltas, np.asarray(tables.first)[c] + sums[c], rtol=1e-6)
            assert np.all(np.isneginf(deltas[n:]))
            changed = np.repeat(layout[None], n, axis=0)
            changed[:, c] = np.arange(n)
            rescored = np.asarray(design.score(space, weights, changed, context))
            np.testing.assert_allclose(
                rescored - base, deltas[:n] - deltas[layout[c]], rtol=1e-5, atol=1e-5
            )


def test_mvt1_tables_have_no_pair_terms():
    space = design.layout_space((3, 3), model="mvt1")
    tables = design.score_tables(space, random_weights(space, 0))
    assert not np.any(np.asarray(tables.pair))


def test_context_padding_is_minus_one_where_off():
    space = design.layout_space((2, 2), num_context=3)
    ids = np.asarray(design.feature_ids(space, np.array([0, 1]), np.array([1, 0, 1])))
    context_slots = ids[1 + 2 + 1 :]
    assert context_slots.shape == (3 + 3 * 2,)
    # context main effects then context x variant (l-major), l = 1 off
    assert context_slots[1] == -1 and context_slots[0] >= 0 and context_slots[2] >= 0
    assert np.all(context_slots[3 + 2 : 3 + 4] == -1)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: design.layout_space((3, 0, 2)), "num_variants"),
        (lambda: design.layout_space(()), "num_variants"),
        (lambda: design.layout_space((2, 2.5)), "num_variants"),
        (lambda: design.layout_space((2, 2), num_context=-1), "num_context"),
        (lambda: design.layout_space((2, 2), model="mvt3"), "model"),
        (lambda: design.feature_ids(SPACES[0], np.array([0, 3, 0])), "layouts"),
        (lambda: design.feature_ids(SPACES[0], np.array([0, -1, 0])), "layouts"),
        (lambda: design.feature_ids(SPACES[0], np.array([0, 1])), "layouts"),
        (lambda: design.feature_ids(SPACES[0], np.array([0.0, 1.0, 0.0])), "layouts"),
        (lambda: design.feature_ids(SPACES[2], np.array([0, 0, 0, 0]), np.ones(3)), "contexts"),
        (
            lambda: design.feature_ids(SPACES[2], np.array([0, 0, 0, 0]), np.array([0, 2])),
            "contexts",
        ),
        (lambda: design.feature_ids(SPACES[2], np.array([0, 0, 0, 0])), "contexts"),
        (lambda: design.score(SPACES[0], np.zeros(3), np.array([0, 0, 0])), "weights"),
        (
            lambda: design.score_tables(SPACES[2], np.zeros(SPACES[2].num_features), np.ones(5)),
            "context",
        ),
        (lambda: design.all_layouts(design.layout_space((10,) * 7)), "space"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}: expected"):
        call()


@pytest.mark.slow
def test_jit_and_vmap_agree_with_eager():
    space = SPACES[2]
    weights = random_weights(space, 5)
    layouts = jnp.asarray(design.all_layouts(space)[:7])
    contexts = jnp.asarray(np.random.default_rng(0).integers(0, 2, (7, 2)))
    eager = design.score(space, weights, layouts, contexts)
    jitted = jax.jit(lambda w, a, x: design.score(space, w, a, x))(weights, layouts, contexts)
    mapped = jax.vmap(lambda a, x: design.score(space, weights, a, x))(layouts, contexts)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    np.testing.assert_allclose(mapped, eager, rtol=1e-6)
