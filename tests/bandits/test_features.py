"""Feature ids: layout, a hand-written dense oracle, unseen codes, buckets, hashing, crosses,
context broadcast, jit, and the boundary errors."""

import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bandits import features as F
from prime_science.core.errors import InvalidArgumentError

BRAND_VOCAB, BOUNDARIES, BUCKETS, TOKENS, SEGMENTS = 4, (10.0, 20.0), 8, 3, 2


def small_spec():
    return F.feature_spec(
        [
            F.intercept(),
            F.categorical("brand", BRAND_VOCAB),
            F.bucketized("price", BOUNDARIES),
            F.hashed_tokens("title", BUCKETS, TOKENS),
            F.categorical("segment", SEGMENTS),
            F.cross("segment_x_brand", "segment", "brand"),
        ]
    )


def world_spec():
    """The simulated callout world (:mod:`prime_science.sim.callout_world`): brand 200,
    colour 15, price 10 buckets, category 50, title 2^12 buckets x 5 tokens, segment x
    category."""
    return F.feature_spec(
        [
            F.intercept(),
            F.categorical("brand", 200),
            F.categorical("colour", 15),
            F.bucketized("price", np.geomspace(5.0, 500.0, 9)),
            F.categorical("category", 50),
            F.hashed_tokens("title", 2**12, 5),
            F.categorical("segment", 2),
            F.cross("segment_x_category", "segment", "category"),
        ]
    )


def lowbias32(tokens):
    """Oracle of the stated hash, in numpy uint32 arithmetic (wraps mod 2^32)."""
    z = np.atleast_1d(np.asarray(tokens)).astype(np.uint32)  # arrays wrap without warnings
    z = z ^ (z >> np.uint32(16))
    z = z * np.uint32(0x7FEB352D)
    z = z ^ (z >> np.uint32(15))
    z = z * np.uint32(0x846CA68B)
    return z ^ (z >> np.uint32(16))


def one_hot(size, index):
    row = np.zeros(size)
    row[index] = 1.0
    return row


def hand_dense_row(brand, price, title, segment):
    """x for one candidate of small_spec, written block by block from the module docstring."""
    brand_local = brand if 0 <= brand < BRAND_VOCAB else BRAND_VOCAB
    segment_local = segment if 0 <= segment < SEGMENTS else SEGMENTS
    bucket = sum(price >= b for b in BOUNDARIES)
    tokens = np.zeros(BUCKETS)
    for token in title:
        if token >= 0:
            tokens[int(lowbias32(token)[0]) % BUCKETS] = 1.0
    unseen = brand_local == BRAND_VOCAB or segment_local == SEGMENTS
    cross = SEGMENTS * BRAND_VOCAB if unseen else segment_local * BRAND_VOCAB + brand_local
    return np.concatenate(
        [
            [1.0],
            one_hot(BRAND_VOCAB + 1, brand_local),
            one_hot(len(BOUNDARIES) + 1, bucket),
            tokens,
            one_hot(SEGMENTS + 1, segment_local),
            one_hot(SEGMENTS * BRAND_VOCAB + 1, cross),
        ]
    )


def dense_from_ids(ids, num_features):
    x = np.zeros((ids.shape[0], num_features))
    for i, row in enumerate(ids):
        for f in row[row >= 0]:
            x[i, f] += 1.0  # += so that a repeated id would show up as a 2
    return x


def random_columns(rng, n):
    return {
        "brand": rng.integers(-2, BRAND_VOCAB + 3, n),
        "price": rng.choice([0.0, 5.0, 10.0, 15.0, 20.0, 99.0], n),
        "title": np.where(rng.random((n, TOKENS)) < 0.3, -1, rng.integers(0, 40, (n, TOKENS))),
        "segment": rng.integers(-1, SEGMENTS + 1, n),
    }


def test_world_layout_is_contiguous_disjoint_and_sized_by_the_blocks():
    spec = world_spec()
    sizes = {
        "intercept": 1,
        "brand": 201,
        "colour": 16,
        "price": 10,
        "category": 51,
        "title": 4096,
        "segment": 3,
        "segment_x_category": 2 * 50 + 1,
    }
    assert spec.num_features == sum(sizes.values()) == 4479
    assert spec.num_active == 12
    assert spec.columns == ("brand", "colour", "price", "category", "title", "segment")
    covered = []
    for name, ids in spec.block_slices.items():
        assert ids.stop - ids.start == sizes[name]
        covered.extend(range(ids.start, ids.stop))
    assert covered == list(range(spec.num_features))  # contiguous, disjoint, in order
    slots = [range(s.start, s.stop) for s in spec.slot_slices.values()]
    assert [i for r in slots for i in r] == list(range(spec.num_active))
    assert spec.slot_slices["title"] == slice(5, 10)
    assert spec.unseen_id("brand") == spec.block_slices["brand"].stop - 1
    assert hash(spec) == hash(world_spec())  # static: usable as a jit static argument


def test_ids_match_a_hand_written_dense_encoding():
    spec = small_spec()
    rng = np.random.default_rng(0)
    columns = random_columns(rng, 64)
    ids = np.asarray(F.encode(spec, columns))
    assert ids.shape == (64, spec.num_active) and ids.dtype == np.int32
    assert np.all((ids == -1) | ((ids >= 0) & (ids < spec.num_features)))
    x = dense_from_ids(ids, spec.num_features)
    expected = np.stack(
        [
            hand_dense_row(b, p, t, s)
            for b, p, t, s in zip(
                columns["brand"],
                columns["price"],
                columns["title"],
                columns["segment"],
                strict=True,
            )
        ]
    )
    np.testing.assert_array_equal(x, expected)
    np.testing.assert_array_equal(np.asarray(F.dense_features(spec, ids)), expected)
    for name, slots in spec.slot_slices.items():  # every id lies in its own block's range
        block_ids = ids[:, slots]
        inside = (block_ids >= spec.block_slices[name].start) & (
            block_ids < spec.block_slices[name].stop
        )
        assert np.all(inside | (block_ids == -1))


def test_unseen_codes_map_to_the_unseen_id_and_leave_other_blocks_alone():
    spec = small_spec()
    codes = np.array([-1, BRAND_VOCAB, BRAND_VOCAB + 7, -5, 2**40, 2], dtype=np.int64)
    n = codes.size
    columns = {
        "brand": codes,
        "price": np.full(n, 12.0),
        "title": np.tile([3, 5, -1], (n, 1)),
        "segment": np.ones(n, np.int64),
    }
    ids = np.asarray(F.encode(spec, columns))
    brand = ids[:, spec.slot_slices["brand"]].ravel()
    np.testing.assert_array_equal(brand[:-1], spec.unseen_id("brand"))
    assert brand[-1] == spec.block_slices["brand"].start + 2
    cross = ids[:, spec.slot_slices["segment_x_brand"]].ravel()
    np.testing.assert_array_equal(cross[:-1], spec.unseen_id("segment_x_brand"))
    others = [s for name, s in spec.slot_slices.items() if "brand" not in name]
    for slots in others:  # a new brand is scored by its other attributes, unchanged
        np.testing.assert_array_equal(ids[:, slots], np.tile(ids[-1, slots], (n, 1)))
    unseen_segment = F.encode(spec, {**columns, "segment": np.full(n, SEGMENTS)})
    cross = np.asarray(unseen_segment)[:, spec.slot_slices["segment_x_brand"]].ravel()
    np.testing.assert_array_equal(cross, spec.unseen_id("segment_x_brand"))


def test_price_buckets_at_and_around_the_boundaries():
    boundaries = (0.5, 10.0, 20.0)  # exactly representable in float32
    spec = F.feature_spec([F.bucketized("price", boundaries)])
    just_below = [np.nextafter(np.float32(b), np.float32(-np.inf)) for b in boundaries]
    just_above = [np.nextafter(np.float32(b), np.float32(np.inf)) for b in boundaries]
    prices = np.array(
        [-np.inf, -3.0, *just_below, *boundaries, *just_above, 1e30, np.inf], np.float32
    )
    expected = [0, 0, 0, 1, 2, 1, 2, 3, 1, 2, 3, 3, 3]
    ids = np.asarray(F.encode(spec, {"price": prices})).ravel()
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_array_equal(ids, np.searchsorted(boundaries, prices, side="right"))
    cents = F.encode(F.feature_spec([F.bucketized("price", (999, 1999))]), {"price": [998, 999]})
    np.testing.assert_array_equal(np.asarray(cents).ravel(), [0, 1])


def test_hashed_tokens_follow_the_stated_hash_and_keep_padding():
    spec = F.feature_spec([F.hashed_tokens("title", 1000, 4)])
    tokens = np.array([[0, 17, 2**31 - 1, -1], [-1, -1, -1, -1], [5, 123456, -1, 42]])
    ids = np.asarray(F.encode(spec, {"title": tokens}))
    expected = np.where(tokens >= 0, (lowbias32(tokens) % 1000).astype(np.int64), -1)
    np.testing.assert_array_equal(ids, expected)
    again = F.encode(F.feature_spec([F.hashed_tokens("title", 1000, 4)]), {"title": tokens})
    np.testing.assert_array_equal(np.asarray(again), ids)  # deterministic, no hidden state


def test_repeated_buckets_in_one_row_are_padded_so_x_stays_binary():
    spec = F.feature_spec([F.hashed_tokens("title", 2, 4)])
    tokens = np.array([[7, 7, -1, 7], [0, 1, 2, 3]])
    ids = np.asarray(F.encode(spec, {"title": tokens}))
    assert ids[0].tolist() == [int(lowbias32(7)[0]) % 2, -1, -1, -1]
    kept = ids[1][ids[1] >= 0]
    assert len(set(kept.tolist())) == len(kept) == len(set((lowbias32([0, 1, 2, 3]) % 2).tolist()))
    assert dense_from_ids(ids, spec.num_features).max() == 1.0


@pytest.mark.parametrize("vocabulary", ["random", "sequential"])
def test_collision_count_matches_the_formula(vocabulary):
    """Colliding pairs among V distinct tokens in H buckets: mean C(V,2)/H ~ V^2/(2H); pair
    indicators of a uniform hash are pairwise independent, so var = C(V,2) p (1 - p), p = 1/H.
    Tolerance 4 sd: failure budget ~1e-4 per case if the hash behaves uniformly."""
    num_tokens, num_buckets = 2000, 4096
    rng = np.random.default_rng(1)
    if vocabulary == "random":
        tokens = rng.choice(2**31 - 1, num_tokens, replace=False)
    else:
        tokens = np.arange(num_tokens)
    spec = F.feature_spec([F.hashed_tokens("title", num_buckets, 1)])
    buckets = np.asarray(F.encode(spec, {"title": tokens[:, None]})).ravel()
    counts = np.bincount(buckets, minlength=num_buckets)
    pairs = int(np.sum(counts * (counts - 1) // 2))
    p = 1.0 / num_buckets
    mean = num_tokens * (num_tokens - 1) / 2 * p
    sd = np.sqrt(num_tokens * (num_tokens - 1) / 2 * p * (1 - p))
    assert abs(mean - num_tokens**2 / (2 * num_buckets)) < 1.0
    assert abs(pairs - mean) < 4 * sd, (pairs, mean, sd)


def test_crosses_enumerate_every_pair_and_go_unseen_with_either_parent():
    spec = F.feature_spec(
        [
            F.categorical("segment", 2),
            F.categorical("category", 3),
            F.bucketized("price", (1.0,)),
            F.cross("segment_x_category", "segment", "category"),
            F.cross("category_x_price", "category", "price"),
            F.cross("triple", "segment_x_category", "price"),
        ]
    )
    segment, category, bucket = np.meshgrid([0, 1, 2], [0, 1, 2, 3], [0, 1], indexing="ij")
    segment, category, bucket = segment.ravel(), category.ravel(), bucket.ravel()
    ids = np.asarray(
        F.encode(spec, {"segment": segment, "category": category, "price": bucket * 2.0})
    )
    slots, blocks = spec.slot_slices, spec.block_slices

    def local(name):
        return ids[:, slots[name]].ravel() - blocks[name].start

    seen_sc = (segment < 2) & (category < 3)
    np.testing.assert_array_equal(
        local("segment_x_category"), np.where(seen_sc, segment * 3 + category, 6)
    )
    np.testing.assert_array_equal(
        local("category_x_price"), np.where(category < 3, category * 2 + bucket, 6)
    )
    np.testing.assert_array_equal(
        local("triple"), np.where(seen_sc, (segment * 3 + category) * 2 + bucket, 12)
    )
    assert [blocks[n].stop - blocks[n].start for n in ("category_x_price", "triple")] == [7, 13]
    no_unseen = F.feature_spec([F.bucketized("a", (0.0,)), F.bucketized("b", (0.0,))])
    no_unseen = F.feature_spec([*no_unseen.blocks, F.cross("a_x_b", "a", "b")])
    assert no_unseen.block_slices["a_x_b"] == slice(4, 8)


def test_context_columns_broadcast_to_every_candidate():
    spec = small_spec()
    rng = np.random.default_rng(2)
    columns = random_columns(rng, 5)
    del columns["segment"]
    with_context = F.encode(spec, columns, context={"segment": 1})
    repeated = F.encode(spec, {**columns, "segment": np.ones(5, np.int32)})
    np.testing.assert_array_equal(np.asarray(with_context), np.asarray(repeated))
    title = np.array([4, -1, 9])
    shared_title = F.encode(
        spec,
        {k: v for k, v in columns.items() if k != "title"},
        {
            "segment": 0,
            "title": title,
        },
    )
    per_row_title = F.encode(spec, {**columns, "title": np.tile(title, (5, 1)), "segment": [0] * 5})
    np.testing.assert_array_equal(np.asarray(shared_title), np.asarray(per_row_title))
    only_context = F.encode(
        F.feature_spec([F.intercept(), F.categorical("segment", 2)]), {}, {"segment": 1}
    )
    np.testing.assert_array_equal(np.asarray(only_context), [[0, 2]])


def test_jit_matches_eager_and_pads_what_it_cannot_check():
    spec = small_spec()
    columns = random_columns(np.random.default_rng(3), 16)
    context_columns = {k: v for k, v in columns.items() if k != "segment"}
    eager = np.asarray(F.encode(spec, context_columns, {"segment": 1}))
    by_partial = jax.jit(partial(F.encode, spec))(context_columns, {"segment": 1})
    by_static = jax.jit(F.encode, static_argnums=0)(spec, context_columns, {"segment": 1})
    np.testing.assert_array_equal(np.asarray(by_partial), eager)
    np.testing.assert_array_equal(np.asarray(by_static), eager)
    by_request = jax.vmap(partial(F.encode, spec), in_axes=(None, 0))(
        context_columns, {"segment": jnp.array([0, 1])}
    )
    np.testing.assert_array_equal(np.asarray(by_request[1]), eager)
    # Inside jit nothing is value-checked: NaN prices and negative tokens become padding.
    traced = jax.jit(partial(F.encode, spec))(
        {
            "brand": jnp.array([1, 1]),
            "price": jnp.array([jnp.nan, 15.0]),
            "title": jnp.array([[-7, 3, -1], [3, 3, 3]]),
        },
        {"segment": 0},
    )
    traced = np.asarray(traced)
    assert traced[0, spec.slot_slices["price"]].item() == -1
    assert traced[1, spec.slot_slices["price"]].item() == spec.block_slices["price"].start + 1
    assert traced[0, spec.slot_slices["title"]].tolist()[::2] == [-1, -1]
    assert (traced[1, spec.slot_slices["title"]] >= 0).sum() == 1


def test_boundary_accepts_lists_numpy_and_jax_arrays():
    spec = small_spec()
    columns = random_columns(np.random.default_rng(4), 7)
    expected = np.asarray(F.encode(spec, columns))
    as_lists = {k: v.tolist() for k, v in columns.items()}
    as_jax = {k: jnp.asarray(v) for k, v in columns.items()}
    np.testing.assert_array_equal(np.asarray(F.encode(spec, as_lists)), expected)
    np.testing.assert_array_equal(np.asarray(F.encode(spec, as_jax)), expected)
    as_bool = F.encode(spec, {**columns, "segment": columns["segment"] > 0})
    segment = np.asarray(as_bool)[:, spec.slot_slices["segment"]].ravel()
    np.testing.assert_array_equal(
        segment - spec.block_slices["segment"].start, columns["segment"] > 0
    )


def test_boundary_accepts_pandas_and_pyarrow():
    pd = pytest.importorskip("pandas")
    spec = small_spec()
    columns = random_columns(np.random.default_rng(5), 7)
    expected = np.asarray(F.encode(spec, columns))
    frame = pd.DataFrame({k: v for k, v in columns.items() if k != "title"})
    ids = F.encode(spec, {**{k: frame[k] for k in frame}, "title": columns["title"]})
    np.testing.assert_array_equal(np.asarray(ids), expected)
    pa = pytest.importorskip("pyarrow")
    arrow = {k: pa.array(v) for k, v in columns.items() if k != "title"}
    ids = F.encode(spec, {**arrow, "title": columns["title"]})
    np.testing.assert_array_equal(np.asarray(ids), expected)


def bad(message_start):
    return pytest.raises(InvalidArgumentError, match="^" + re.escape(message_start) + ".*, got ")


def valid():
    columns = random_columns(np.random.default_rng(6), 6)
    return columns, {"segment": columns.pop("segment")[0]}


BAD_INPUTS = {
    "unknown block": (lambda c, x: ({**c, "brnad": c["brand"]}, x), "columns: expected only"),
    "missing column": (
        lambda c, x: ({k: v for k, v in c.items() if k != "price"}, x),
        "columns: expected the columns ['price']",
    ),
    "NaN price": (
        lambda c, x: ({**c, "price": np.r_[1.0, np.nan, c["price"][2:]]}, x),
        "columns['price']: expected no NaN",
    ),
    "mismatched lengths": (
        lambda c, x: ({**c, "price": c["price"][:-1]}, x),
        "columns['price']: expected length 6",
    ),
    "float codes": (
        lambda c, x: ({**c, "brand": c["brand"].astype(float)}, x),
        "columns['brand']: expected integer category codes",
    ),
    "wrong rank": (
        lambda c, x: ({**c, "brand": c["brand"][:, None]}, x),
        "columns['brand']: expected an array of rank 1",
    ),
    "token width": (
        lambda c, x: ({**c, "title": c["title"][:, :2]}, x),
        "columns['title']: expected 3 token positions",
    ),
    "token below -1": (
        lambda c, x: ({**c, "title": c["title"] - 5}, x),
        "columns['title']: expected token ids in [0, 2^31) or -1",
    ),
    "float tokens": (
        lambda c, x: ({**c, "title": c["title"] * 1.0}, x),
        "columns['title']: expected integer token ids",
    ),
    "string prices": (
        lambda c, x: ({**c, "price": c["price"].astype(str)}, x),
        "columns['price']: expected real numbers",
    ),
    "context not scalar": (
        lambda c, x: (c, {"segment": [0, 1]}),
        "context['segment']: expected an array of rank 0",
    ),
    "column in both": (
        lambda c, x: ({**c, "segment": np.zeros(6, int)}, x),
        "context: expected no column also given in columns",
    ),
    "not a mapping": (lambda c, x: (list(c.values()), x), "columns: expected a mapping"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_in_the_house_format(case):
    change, message_start = BAD_INPUTS[case]
    columns, context = change(*valid())
    with bad(message_start):
        F.encode(small_spec(), columns, context)


def test_static_checks_still_run_under_jit():
    columns, context = valid()
    columns["brand"] = columns["brand"].astype(np.float32)
    with bad("columns['brand']: expected integer category codes"):
        jax.jit(partial(F.encode, small_spec()))(columns, context)


@pytest.mark.parametrize(
    ("build", "message_start"),
    [
        (lambda: F.categorical("brand", 0), "vocabulary_size: expected an integer in [1, 2^31)"),
        (lambda: F.categorical("", 3), "name: expected a non-empty string"),
        (lambda: F.bucketized("price", (2.0, 1.0)), "boundaries: expected finite, strictly"),
        (lambda: F.bucketized("price", (1.0, np.nan)), "boundaries: expected finite, strictly"),
        (lambda: F.hashed_tokens("title", 2**31, 5), "num_buckets: expected an integer"),
        (lambda: F.cross("x", "a", "a"), "block_b: expected a block other than block_a"),
        (
            lambda: F.feature_spec([F.categorical("a", 2), F.categorical("a", 3)]),
            "blocks[1]: expected a block name not used before",
        ),
        (
            lambda: F.feature_spec([F.cross("x", "a", "b"), F.categorical("a", 2)]),
            "blocks[0]: expected parents among the blocks before it",
        ),
        (
            lambda: F.feature_spec(
                [F.hashed_tokens("t", 4, 2), F.categorical("a", 2), F.cross("x", "t", "a")]
            ),
            "blocks[2]: expected single-slot parents",
        ),
        (
            lambda: F.feature_spec([F.categorical("a", 2**30), F.categorical("b", 2**30)]),
            "blocks: expected fewer than 2^31 feature ids",
        ),
        (lambda: small_spec().unseen_id("brnad"), "name: expected one of the spec's blocks"),
        (lambda: small_spec().unseen_id("price"), "name: expected a block with an unseen id"),
        (lambda: F.encode("spec", {}), "spec: expected a FeatureSpec"),
    ],
)
def test_bad_specs_raise_in_the_house_format(build, message_start):
    with bad(message_start):
        build()
