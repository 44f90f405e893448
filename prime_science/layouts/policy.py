"""Layout policies: MVT Thompson sampling and the baselines of Hill et al. (2017, KDD).

Every policy is a :class:`LayoutPolicy` of pure functions over a state of arrays::

    state = policy.init()
    layouts = policy.choose(key, state, num_requests)        # int32[R, D], one draw per request
    state = policy.update(state, layouts, rewards)            # a batch of shown layouts, 0/1
    layout = policy.recommend(key, state)                     # int32[D], the layout to deploy

* :func:`mvt_thompson` (MVT1 / MVT2 / MVT2c by the space's ``model`` and context): a Bayesian
  probit regression over the layout features of :mod:`.design`, updated by assumed-density
  filtering — :func:`prime_science.bandits.probit.probit_adf`, reused as is (its ``update``
  takes the layouts' active ids). ``choose`` draws ``w~ ~ N(mu, diag sigma^2)`` once per request
  and returns the layout that maximises ``x_A^T w~`` by hill climbing (``S`` restarts, ``K``
  steps) or, in small spaces, by exhaustive search. ``recommend`` searches under the posterior
  mean ``mu`` (greedy), exhaustively when the space is small enough.
* :func:`layout_mab` ("N^D-MAB"): Beta-Bernoulli Thompson sampling with one arm per layout
  (:func:`prime_science.bandits.beta_bernoulli.beta_bernoulli`); no sharing between layouts.
* :func:`component_mabs` ("D-MABs"): one Beta-Bernoulli Thompson sampler per component; each
  picks its variant independently and is credited with the layout's reward. It ignores
  interactions and settles on a coordinate-wise good layout at best.
* :func:`uniform_layouts`: every layout uniformly at random (an A/B/n test).

Selection among candidates goes through :mod:`prime_science.bandits.selection`: the exhaustive
search and ``recommend`` take the top layout of the (sampled or mean) scores with
:func:`~prime_science.bandits.selection.top_k`, and the Beta-Bernoulli baselines draw with
``beta_bernoulli``'s ``sample_batch`` (D-MABs: each component's slots as the availability mask).

Contexts (``C > 0``, MVT2c) enter ``choose``/``update``/``recommend`` of :func:`mvt_thompson`
as ``{0, 1}[R, C]`` / ``[n, C]`` / ``[C]``; the baselines take no context.

Bad input. The factories and every ``choose``/``update``/``recommend`` check their arguments
eagerly and raise ``InvalidArgumentError`` naming the argument: ``space`` not a
:class:`~prime_science.layouts.design.LayoutSpace`, a ``key`` that is not one PRNG key
(``errors.check_key``), ``num_requests`` not a positive integer, a ``state`` of the wrong type
or shapes (and, when concrete, with a non-finite mean or a variance that is not finite and
``> 0``), layouts out of range, ``rewards`` not 0/1 or of another length, contexts of the
wrong shape or not 0/1. A failed call returns nothing and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bandits import selection
from prime_science.bandits.beta_bernoulli import BetaBernoulliState, beta_bernoulli
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.bandits.scoring import linear_scores, materialise
from prime_science.core import errors
from prime_science.core.random import box_muller, key_words, random_bits, uniform_open
from prime_science.core.types import PRNGKey
from prime_science.layouts import design, search

__all__ = [
    "SEARCHES",
    "EXHAUSTIVE_LIMIT",
    "LayoutChooseFn",
    "LayoutUpdateFn",
    "LayoutRecommendFn",
    "LayoutPolicy",
    "posterior_draw",
    "mvt_thompson",
    "layout_mab",
    "component_mabs",
    "uniform_layouts",
]

SEARCHES = ("hill_climb", "exhaustive")
"""How :func:`mvt_thompson` maximises a sampled score."""

EXHAUSTIVE_LIMIT = 4096
"""Largest space that :func:`mvt_thompson` enumerates (``search="exhaustive"``,
``recommend``) and that :func:`layout_mab` accepts."""


class LayoutChooseFn(Protocol):
    """``choose(key, state, num_requests, contexts=None) -> int32[R, D]``: one layout per
    request."""

    def __call__(
        self, key: PRNGKey, state: Any, num_requests: int, contexts: Any = None
    ) -> jax.Array: ...


class LayoutUpdateFn(Protocol):
    """``update(state, layouts, rewards, contexts=None) -> state`` (same tree and shapes)."""

    def __call__(
        self, state: Any, layouts: jax.Array, rewards: jax.Array, contexts: Any = None
    ) -> Any: ...


class LayoutRecommendFn(Protocol):
    """``recommend(key, state, context=None) -> int32[D]``: the layout to deploy."""

    def __call__(self, key: PRNGKey, state: Any, context: Any = None) -> jax.Array: ...


class LayoutPolicy(NamedTuple):
    """``(init, choose, update, recommend)``, all pure (module docstring); ``init()`` takes no
    argument."""

    init: Callable[[], Any]
    choose: LayoutChooseFn
    update: LayoutUpdateFn
    recommend: LayoutRecommendFn


def posterior_draw(key: PRNGKey, mean: jax.Array, variance: jax.Array) -> jax.Array:
    """One Thompson draw ``w~ = mu + sigma z``, ``z ~ N(0, I)``, materialised.

    The normals come from the counter-based generator of :mod:`prime_science.core.random`
    (``lowbias32`` bits, Box-Muller with a polynomial sine/cosine): weight ``2 i`` and
    ``2 i + 1`` share the uniforms of counter ``i`` (streams 0 and 1) and take its cosine and
    sine normal. On the 2-core CPU, 1,024 draws of 4,601 weights took 32 ms against 48 ms
    for ``jax.random.normal`` alone; the draw is about a third of a hill-climbing request at
    ``D = N = 10`` (``prime_science.bench.hill_climb``).

    Raises ``InvalidArgumentError`` naming ``key``, ``mean`` (not a real vector; when
    concrete, not finite) or ``variance`` (not the shape of ``mean``; when concrete, not
    finite and ``>= 0``).
    """
    errors.check_key("key", key)
    errors.check_rank("mean", mean, 1)
    errors.check_dtype_kind("mean", mean, "f", "floating-point means")
    if np.shape(variance) != np.shape(mean):
        errors.fail("variance", f"the shape of mean {np.shape(mean)}", np.shape(variance))
    errors.check_dtype_kind("variance", variance, "f", "floating-point variances")
    for name, value, good in (
        ("mean", mean, np.isfinite),
        ("variance", variance, lambda x: np.isfinite(x) & (x >= 0)),
    ):
        if errors.is_concrete(value) and not good(np.asarray(value)).all():
            values = np.asarray(value)
            errors.fail(name, "finite values (variances >= 0)", values[~good(values)][:5].tolist())
    mean, variance = jnp.asarray(mean), jnp.asarray(variance)
    size = mean.shape[0]
    words = key_words(key)
    counters = jnp.arange((size + 1) // 2, dtype=jnp.uint32)
    radius_u = uniform_open(random_bits(words, 0, counters))
    angle_u = uniform_open(random_bits(words, 1, counters))
    cosines, sines = box_muller(radius_u, angle_u)
    normals = jnp.stack([cosines, sines], axis=-1).reshape(-1)[:size].astype(mean.dtype)
    return materialise(mean + jnp.sqrt(variance) * normals)


def _check_state(state: Any, kind: type, fields: tuple[str, ...], size: int) -> None:
    """``state``: a ``kind`` whose ``fields`` are vectors of length ``size``; when concrete,
    the ProbitState's mean finite and variance finite ``> 0`` (the Beta states are checked by
    :func:`beta_bernoulli`'s own functions)."""
    if not isinstance(state, kind):
        errors.fail("state", f"a {kind.__name__} (the policy's init())", type(state).__name__)
    for field in fields:
        if np.shape(getattr(state, field)) != (size,):
            errors.fail(f"state.{field}", f"shape ({size},)", np.shape(getattr(state, field)))
    if (
        kind is ProbitState
        and errors.is_concrete(state.mean)
        and errors.is_concrete(state.variance)
    ):
        mean, variance = np.asarray(state.mean), np.asarray(state.variance)
        if not np.isfinite(mean).all():
            errors.fail("state.mean", "finite values", mean[~np.isfinite(mean)][:5].tolist())
        good = np.isfinite(variance) & (variance > 0)
        if not good.all():
            errors.fail("state.variance", "finite values > 0", variance[~good][:5].tolist())


def _check_requests(num_requests: Any) -> int:
    if (
        isinstance(num_requests, bool)
        or not isinstance(num_requests, int | np.integer)
        or num_requests < 1
    ):
        errors.fail("num_requests", "a positive integer", repr(num_requests))
    return int(num_requests)


def _check_feedback(space: design.LayoutSpace, layouts: Any, rewards: Any) -> None:
    """``layouts: int[n, D]`` in range and ``rewards: {0, 1}[n]`` (bool, integer or real)."""
    design.check_layouts("layouts", space, layouts)
    errors.check_rank("layouts", layouts, 2)
    errors.check_rank("rewards", rewards, 1)
    errors.check_dtype_kind("rewards", rewards, "biuf", "0/1 rewards")
    errors.check_same_length(("layouts", "rewards"), layouts, rewards)
    if errors.is_concrete(rewards):
        values = np.asarray(rewards, np.float64)
        bad = (values != 0) & (values != 1)
        if bad.any():
            errors.fail("rewards", "values in {0, 1}", values[bad][:5].tolist())


def mvt_thompson(
    space: design.LayoutSpace,
    *,
    prior_mean: Any = 0.0,
    prior_variance: Any = 1.0,
    noise: float = 1.0,
    search_method: str = "hill_climb",
    restarts: int = 10,
    steps: int = 5,
    order: str = "random",
) -> LayoutPolicy:
    """Thompson sampling over a probit ADF posterior on the layout features, then search.

    Args:
      space: the layout space; its ``model`` (``"mvt1"``/``"mvt2"``) and ``num_context`` pick
        the features.
      prior_mean, prior_variance, noise: the probit model (:func:`probit_adf`); scalars or one
        value per feature.
      search_method: one of :data:`SEARCHES`; ``"exhaustive"`` needs at most
        :data:`EXHAUSTIVE_LIMIT` layouts.
      restarts, steps, order: hill climbing's ``S``, ``K`` and component order.

    Returns:
      A :class:`LayoutPolicy` whose state is a :class:`ProbitState` over ``space.num_features``.
    """
    space = design.check_space(space)
    if search_method not in SEARCHES:
        errors.fail("search_method", f"one of {SEARCHES}", repr(search_method))
    search.check_search(restarts, steps, order)
    if search_method == "exhaustive" and space.num_layouts > EXHAUSTIVE_LIMIT:
        errors.fail("space", f"at most {EXHAUSTIVE_LIMIT} layouts to enumerate", space.num_layouts)
    model = probit_adf(
        space.num_features, prior_mean=prior_mean, prior_variance=prior_variance, noise=noise
    )
    small = space.num_layouts <= EXHAUSTIVE_LIMIT
    layouts_table = design.all_layouts(space) if small else None

    def best_layout(key, weights, context, exhaustive):
        if exhaustive:
            ids = design.feature_ids(space, layouts_table, context)
            best = selection.top_k(linear_scores(weights, ids), 1).arms[0]
            return jnp.asarray(layouts_table)[best]
        tables = design.score_tables(space, weights, context)
        return search.hill_climb_tables(key, space, tables, restarts, steps, order).layout

    def contexts_for(contexts, num_requests):
        if space.num_context == 0:
            if contexts is not None:
                errors.fail("contexts", "None (the space has no context)", np.shape(contexts))
            return jnp.zeros((num_requests, 0), jnp.float32)
        design.check_contexts("contexts", space, contexts)
        errors.check_rank("contexts", contexts, 2)
        if np.shape(contexts)[0] != num_requests:
            errors.fail("contexts", f"{num_requests} rows (num_requests)", np.shape(contexts))
        return jnp.asarray(contexts)

    def choose(
        key: PRNGKey, state: ProbitState, num_requests: int, contexts: Any = None
    ) -> jax.Array:
        """``int32[R, D]``: per request one draw ``w~ = mu + sigma z`` (:func:`posterior_draw`)
        and its best layout."""
        errors.check_key("key", key)
        num_requests = _check_requests(num_requests)
        _check_state(state, ProbitState, ProbitState._fields, space.num_features)
        return choose_core(key, state, num_requests, contexts_for(contexts, num_requests))

    @partial(jax.jit, static_argnums=2)
    def choose_core(key, state, num_requests, contexts):
        def one(key, context):
            key_draw, key_search = jax.random.split(key)
            weights = posterior_draw(key_draw, state.mean, state.variance)
            context = context if space.num_context else None
            return best_layout(key_search, weights, context, search_method == "exhaustive")

        return jax.vmap(one)(jax.random.split(key, num_requests), contexts)

    def update(
        state: ProbitState, layouts: jax.Array, rewards: jax.Array, contexts: Any = None
    ) -> ProbitState:
        """ADF over the batch in order (``probit_adf(...).update`` on the layouts' ids)."""
        _check_feedback(space, layouts, rewards)
        contexts = None if space.num_context == 0 else contexts
        ids = design.feature_ids(space, layouts, contexts)
        return model.update(state, ids, rewards)

    def recommend(key: PRNGKey, state: ProbitState, context: Any = None) -> jax.Array:
        """``int32[D]``: the best layout under the posterior mean (exhaustive when small)."""
        errors.check_key("key", key)
        _check_state(state, ProbitState, ProbitState._fields, space.num_features)
        design.check_context(space, context)
        return recommend_core(key, state, context if space.num_context else None)

    @jax.jit
    def recommend_core(key, state, context):
        return best_layout(key, state.mean, context, small)

    return LayoutPolicy(model.init, choose, update, recommend)


def layout_mab(
    space: design.LayoutSpace,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    *,
    approximate: bool = False,
) -> LayoutPolicy:
    """N^D-MAB: Beta-Bernoulli Thompson sampling, one arm per layout (row-major arm ids);
    ``approximate`` selects the Wilson-Hilferty Beta sampler of :func:`beta_bernoulli`."""
    space = design.check_space(space)
    if space.num_layouts > EXHAUSTIVE_LIMIT:
        errors.fail("space", f"at most {EXHAUSTIVE_LIMIT} layouts", space.num_layouts)
    bandit = beta_bernoulli(prior_alpha, prior_beta, approximate=approximate)
    layouts_table = jnp.asarray(design.all_layouts(space))
    strides = np.cumprod((1, *space.num_variants[:0:-1]))[::-1].astype(np.int32)

    def choose(key, state, num_requests, contexts=None):
        """``int32[R, D]``: one Beta draw per layout and request, the argmax's layout."""
        _check_state(state, BetaBernoulliState, ("alpha", "beta"), space.num_layouts)
        arms = bandit.sample_batch(key, state, 1, _check_requests(num_requests)).arms[:, 0]
        return layouts_table[arms]

    def update(state, layouts, rewards, contexts=None):
        """Count the batch's successes and failures on the layouts' arms."""
        _check_state(state, BetaBernoulliState, ("alpha", "beta"), space.num_layouts)
        _check_feedback(space, layouts, rewards)
        arms = jnp.asarray(layouts, jnp.int32) @ jnp.asarray(strides)
        return bandit.update(state, arms, jnp.asarray(rewards, jnp.float32))

    def recommend(key, state, context=None):
        """The layout with the largest posterior mean ``alpha / (alpha + beta)``."""
        _check_state(state, BetaBernoulliState, ("alpha", "beta"), space.num_layouts)
        means = state.alpha / (state.alpha + state.beta)
        return layouts_table[selection.top_k(means, 1).arms[0]]

    return LayoutPolicy(lambda: bandit.init(space.num_layouts), choose, update, recommend)


def component_mabs(
    space: design.LayoutSpace,
    prior_alpha: float = 1.0,
    prior_beta: float = 1.0,
    *,
    approximate: bool = False,
) -> LayoutPolicy:
    """D-MABs: one Beta-Bernoulli Thompson sampler per component; component ``i`` credits the
    layout's reward to its shown variant.

    The ``D`` bandits share one :class:`BetaBernoulliState` of ``D x N_max`` slots (slot
    ``i N_max + v``; padding slots inactive) so that one traced sampler serves every component
    (``lax.map`` over components, each drawing with the other blocks masked out): the draws
    and updates of different components never mix.
    """
    space = design.check_space(space)
    bandit = beta_bernoulli(prior_alpha, prior_beta, approximate=approximate)
    d, n_max = space.num_components, space.max_variants
    valid = np.arange(n_max)[None, :] < np.asarray(space.num_variants)[:, None]  # [D, N_max]
    blocks = np.repeat(np.arange(d), n_max)
    offsets = jnp.arange(d, dtype=jnp.int32) * n_max

    def init():
        state = bandit.init(d * n_max)
        return state._replace(active=jnp.asarray(valid.reshape(-1)))

    def choose(key, state, num_requests, contexts=None):
        """``int32[R, D]``: each component's own Thompson draw over its variants."""
        errors.check_key("key", key)
        _check_state(state, BetaBernoulliState, ("alpha", "beta", "active"), d * n_max)
        return choose_core(key, state, _check_requests(num_requests))

    @partial(jax.jit, static_argnums=2)
    def choose_core(key, state, num_requests):
        def component(inputs):
            key, c = inputs
            own = jnp.asarray(blocks) == c
            return bandit.sample_batch(key, state, 1, num_requests, own).arms[:, 0] - c * n_max

        keys = jax.random.split(key, d)
        return jax.lax.map(component, (keys, jnp.arange(d, dtype=jnp.int32))).T

    def update(state, layouts, rewards, contexts=None):
        """Every component's slot of the shown variant gets the layout's reward."""
        _check_state(state, BetaBernoulliState, ("alpha", "beta", "active"), d * n_max)
        _check_feedback(space, layouts, rewards)
        arms = (jnp.asarray(layouts, jnp.int32) + offsets).reshape(-1)
        rewards = jnp.repeat(jnp.asarray(rewards, jnp.float32), d)
        return bandit.update(state, arms, rewards)

    def recommend(key, state, context=None):
        """Each component's variant with the largest posterior mean."""
        _check_state(state, BetaBernoulliState, ("alpha", "beta", "active"), d * n_max)
        means = (state.alpha / (state.alpha + state.beta)).reshape(d, n_max)
        best = jax.vmap(lambda row, mask: selection.top_k(row, 1, mask).arms[0])
        return best(means, jnp.asarray(valid))

    return LayoutPolicy(init, choose, update, recommend)


def uniform_layouts(space: design.LayoutSpace) -> LayoutPolicy:
    """Uniformly random layouts (A/B/n); learns nothing (state ``()``)."""
    space = design.check_space(space)

    def choose(key, state, num_requests, contexts=None):
        return search.random_layouts(key, space, (_check_requests(num_requests),))

    def update(state, layouts, rewards, contexts=None):
        _check_feedback(space, layouts, rewards)
        return state

    def recommend(key, state, context=None):
        return search.random_layouts(key, space)  # checks ``key``

    return LayoutPolicy(lambda: (), choose, update, recommend)
