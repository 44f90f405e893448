"""A simulated callout world with item attributes and a probit click truth.

The world is this project's construction (no paper gives one); its truth is a probit over the
attribute features of :mod:`prime_science.bandits.features` (the click model of Teo et al.
2016 and Graepel et al. 2010).

Items. ``num_initial_items`` items exist at day 0 and ``new_items_per_day`` arrive each day
(``arrival_day`` per item; an item is available from its arrival on). Each item has a brand,
a colour and a category (uniform codes), a price (log-normal, in currency units) and a title of
``title_length`` token ids drawn from a Zipf-like vocabulary (token ``j`` with probability
proportional to ``1 / (j + 10)``), so that new items share attributes with old ones.

Requests. Each request has a context segment (Prime member or not, probability
``prime_share``). The candidate pool of a request is every item available that day.

Truth. A probit model over the same feature layout the recommenders use
(:func:`callout_feature_spec`): with ``x(c, X)`` the binary features of candidate ``c`` in
context ``X``,

    P(click | c, X) = Phi(x(c, X)^T w_true),    w_true[block] ~ N(0, s_block^2),

block scales chosen by this project (brand 0.3, category 0.5, price 0.2, title tokens 0.1, colour
0.2, segment x category 0.1) and the intercept solved numerically so that the mean click
probability over the initial items and both segments is ``mean_ctr`` (3%). Unseen ids carry
weight 0 in the truth: the world never produces an unseen code, only the model's vocabulary
may lack them. The oracle of a request is the available item with the highest probability.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from prime_science.bandits import features as ft
from prime_science.core import errors

__all__ = [
    "CalloutWorldConfig",
    "CalloutWorld",
    "BLOCK_SCALES",
    "PRICE_BOUNDARIES",
    "callout_feature_spec",
    "make_callout_world",
    "item_columns",
    "click_probabilities",
    "available",
]

PRICE_BOUNDARIES = tuple(float(b) for b in np.geomspace(5.0, 500.0, 9))
"""Nine price boundaries, log-spaced from 5 to 500: ten buckets."""

BLOCK_SCALES = {
    "brand": 0.3,
    "colour": 0.2,
    "price": 0.2,
    "category": 0.5,
    "title": 0.1,
    "segment": 0.1,
    "segment_x_category": 0.1,
}
"""Standard deviations of the true weights per feature block (this project's choice)."""


class CalloutWorldConfig(NamedTuple):
    """Static settings of the world (hashable)."""

    num_initial_items: int = 2_000
    new_items_per_day: int = 20
    num_days: int = 30
    num_brands: int = 200
    num_colours: int = 15
    num_categories: int = 50
    vocabulary_size: int = 10_000
    title_length: int = 5
    title_buckets: int = 1 << 12
    prime_share: float = 0.5
    mean_ctr: float = 0.03

    @property
    def num_items(self) -> int:
        return self.num_initial_items + self.new_items_per_day * self.num_days


class CalloutWorld(NamedTuple):
    """Item attributes, arrival days and the true weights (arrays only)."""

    brand: jax.Array  # int32[items]
    colour: jax.Array  # int32[items]
    category: jax.Array  # int32[items]
    price: jax.Array  # float32[items]
    title: jax.Array  # int32[items, title_length]
    arrival_day: jax.Array  # int32[items]
    true_weights: jax.Array  # float32[num_features]


def callout_feature_spec(config: CalloutWorldConfig) -> ft.FeatureSpec:
    """The feature layout shared by the truth and the attribute models."""
    return ft.feature_spec(
        [
            ft.intercept(),
            ft.categorical("brand", config.num_brands),
            ft.categorical("colour", config.num_colours),
            ft.bucketized("price", PRICE_BOUNDARIES),
            ft.categorical("category", config.num_categories),
            ft.hashed_tokens("title", config.title_buckets, config.title_length),
            ft.categorical("segment", 2),
            ft.cross("segment_x_category", "segment", "category"),
        ]
    )


def item_columns(world: CalloutWorld) -> dict[str, jax.Array]:
    """The per-item attribute columns that :func:`features.encode` reads."""
    return {
        "brand": world.brand,
        "colour": world.colour,
        "price": world.price,
        "category": world.category,
        "title": world.title,
    }


def available(world: CalloutWorld, day: jax.Array | int) -> jax.Array:
    """``bool[items]``: items that have arrived by ``day``."""
    return world.arrival_day <= day


def click_probabilities(
    world: CalloutWorld, spec: ft.FeatureSpec, segment: jax.Array | int
) -> jax.Array:
    """``float32[items]``: true click probability of every item for a request of ``segment``."""
    ids = ft.encode(spec, item_columns(world), context={"segment": segment})
    return ndtr(_linear_score(world.true_weights, ids))


def _linear_score(weights: jax.Array, ids: jax.Array) -> jax.Array:
    gathered = jnp.where(ids >= 0, weights[jnp.maximum(ids, 0)], 0.0)
    return jnp.sum(gathered, axis=-1)


def make_callout_world(key: jax.Array, config: CalloutWorldConfig) -> CalloutWorld:
    """Draw a world: attributes, arrivals and true weights with a calibrated intercept.

    Raises ``InvalidArgumentError`` naming ``key`` (not one PRNG key) or ``config`` (not a
    :class:`CalloutWorldConfig`).
    """
    errors.check_key("key", key)
    if not isinstance(config, CalloutWorldConfig):
        errors.fail("config", "a CalloutWorldConfig", type(config).__name__)
    spec = callout_feature_spec(config)
    keys = dict(
        zip(
            ("brand", "colour", "category", "price", "title", "weights"),
            jax.random.split(key, 6),
            strict=True,
        )
    )
    n = config.num_items
    token_logits = -jnp.log(jnp.arange(config.vocabulary_size) + 10.0)
    arrival = jnp.concatenate(
        [
            jnp.zeros(config.num_initial_items, jnp.int32),
            1 + jnp.arange(config.new_items_per_day * config.num_days) // config.new_items_per_day,
        ]
    ).astype(jnp.int32)
    weights = jnp.zeros(spec.num_features, jnp.float32)
    has_unseen = {block.name: block.has_unseen for block in spec.blocks}
    for name, scale in BLOCK_SCALES.items():
        ids = spec.block_slices[name]
        seen = ids.stop - ids.start - int(has_unseen[name])  # the unseen id (last) stays 0
        draws = scale * jax.random.normal(jax.random.fold_in(keys["weights"], ids.start), (seen,))
        weights = weights.at[ids.start : ids.start + seen].set(draws)
    world = CalloutWorld(
        brand=jax.random.randint(keys["brand"], (n,), 0, config.num_brands),
        colour=jax.random.randint(keys["colour"], (n,), 0, config.num_colours),
        category=jax.random.randint(keys["category"], (n,), 0, config.num_categories),
        price=jnp.exp(3.5 + 1.0 * jax.random.normal(keys["price"], (n,))),
        title=jax.random.categorical(
            keys["title"], token_logits, shape=(n, config.title_length)
        ).astype(jnp.int32),
        arrival_day=arrival,
        true_weights=weights,
    )
    return world._replace(true_weights=_calibrate_intercept(world, spec, config))


def _calibrate_intercept(
    world: CalloutWorld, spec: ft.FeatureSpec, config: CalloutWorldConfig
) -> jax.Array:
    """Solve for the intercept ``b`` with mean_{initial items, segments} Phi(s + b) = mean_ctr
    by bisection (the mean is increasing in ``b``)."""
    initial = world.arrival_day == 0
    scores = jnp.stack(
        [
            _linear_score(
                world.true_weights, ft.encode(spec, item_columns(world), context={"segment": s})
            )
            for s in (0, 1)
        ]
    )
    share = jnp.array([1.0 - config.prime_share, config.prime_share])[:, None]

    def mean_ctr(b):
        return jnp.sum(share * jnp.where(initial, ndtr(scores + b), 0.0)) / jnp.sum(initial)

    def bisect(_, bounds):
        low, high = bounds
        middle = 0.5 * (low + high)
        too_high = mean_ctr(middle) > config.mean_ctr
        return jnp.where(too_high, low, middle), jnp.where(too_high, middle, high)

    low, high = jax.lax.fori_loop(0, 60, bisect, (jnp.float32(-10.0), jnp.float32(5.0)))
    intercept = spec.block_slices["intercept"].start
    return world.true_weights.at[intercept].set(0.5 * (low + high))
