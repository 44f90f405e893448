"""Bad inputs to every public entry point of ``prime_science.priors`` and ``prime_science.layouts``.

One table: each case is a call, the error class it must raise, a substring of the message that
names the offending argument (the house format ``<name>: expected <what>, got <what came>``),
and a ``watch`` whose value must be the same before and after the failed call (the arrays the
call was given, or the policy state). Every case builds on :func:`env`, one module-scoped set of
small spaces, weights, tables, policies, states, moments and records; every call fails at the
boundary, before any fit or search runs.
"""

from __future__ import annotations

import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from unchanged import Case, check_case

from prime_science.bench import hill_climb as LB
from prime_science.core.errors import InvalidArgumentError
from prime_science.layouts import design as LD
from prime_science.layouts import policy as LP
from prime_science.layouts import search as LS
from prime_science.priors import hierarchical as PH
from prime_science.priors import laplace as PL
from prime_science.priors import moments as PM
from prime_science.priors import record as PR
from prime_science.sim import arm_world as SA
from prime_science.sim import callout_world as SC
from prime_science.sim import layout_world as SL

IAE = InvalidArgumentError
KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def env():
    space = LD.layout_space((3, 4, 2))
    ctx_space = LD.layout_space((2, 3), num_context=2)
    weights = np.asarray(jax.random.normal(KEY, (space.num_features,)))
    nan_weights = weights.copy()
    nan_weights[1] = np.nan  # the reported case: hill_climb returned [3 3 0]
    inf_weights = weights.copy()
    inf_weights[-1] = np.inf
    ctx_weights = np.asarray(jax.random.normal(KEY, (ctx_space.num_features,)))
    mvt = LP.mvt_thompson(space, restarts=2, steps=2)
    ctx_mvt = LP.mvt_thompson(ctx_space, restarts=2, steps=2)
    mab = LP.layout_mab(space)
    dmabs = LP.component_mabs(space)
    estimates = np.array([0.1, 0.3, -0.2, 1.0, 1.2])
    groups = np.array([0, 0, 0, 1, 1])
    moments = PM.method_of_moments(estimates, np.full(5, 0.01), groups, 2)
    return types.SimpleNamespace(
        space=space,
        ctx_space=ctx_space,
        weights=weights,
        nan_weights=nan_weights,
        inf_weights=inf_weights,
        ctx_weights=ctx_weights,
        tables=LD.score_tables(space, weights),
        layouts=np.array([[0, 1, 1], [2, 3, 0]], np.int32),
        bad_layouts=np.array([[3, 3, 0]], np.int32),
        rewards=np.array([1.0, 0.0]),
        mvt=mvt,
        mvt_state=mvt.init(),
        ctx_mvt=ctx_mvt,
        ctx_state=ctx_mvt.init(),
        mab=mab,
        mab_state=mab.init(),
        dmabs=dmabs,
        dmabs_state=dmabs.init(),
        uniform=LP.uniform_layouts(space),
        estimates=estimates,
        noise=np.full(5, 0.01),
        groups=groups,
        moments=moments,
        record=PR.gaussian_group_prior(np.zeros(2), np.ones(2), groups),
        beta_record=PR.beta_group_prior(np.ones(2), np.ones(2)),
        events=np.array([[0, 1], [0, 2], [0, 1]], np.int32),
        clicks=np.array([1.0, 0.0, 1.0]),
        feature_groups=np.array([0, 1, 1]),
        item_clicks=np.array([1.0, 2.0, 0.0]),
        impressions=np.array([3.0, 4.0, 5.0]),
        item_groups=np.array([0, 0, 1]),
        arm_world=SA.make_arm_world(KEY, 4, 1, 3, 1.0, 1.0),
    )


def with_(array_name: str, index: Any, value: Any):
    """``env.<array_name>`` copied with one entry replaced (the fixture stays untouched)."""

    def build(e):
        array = np.array(getattr(e, array_name), copy=True)
        array[index] = value
        return array

    return build


WEIGHTS = lambda e: (e.weights, e.nan_weights, e.inf_weights)
TABLES = lambda e: e.tables
FEEDBACK = lambda e: (e.layouts, e.bad_layouts, e.rewards)
MVT = lambda e: e.mvt_state
CTX = lambda e: e.ctx_state
MAB = lambda e: e.mab_state
DMABS = lambda e: e.dmabs_state
DATA = lambda e: (e.estimates, e.noise, e.groups)
MOMENTS = lambda e: (e.moments, e.groups)
EVENTS = lambda e: (e.events, e.clicks, e.feature_groups)
ITEMS = lambda e: (e.item_clicks, e.impressions, e.item_groups)
RECORDS = lambda e: (e.record, e.beta_record)


def type2(num_groups=2, **options):
    """``probit_type2`` on the fixture's events with ``options`` over ``max_features=8``."""
    options = {"max_features": 8, **options}
    return lambda e: PL.probit_type2(e.events, e.clicks, e.feature_groups, num_groups, **options)


def svi(fit, key=KEY, num_groups=2, **options):
    return lambda e: fit(key, e.estimates, e.noise, e.groups, num_groups, **options)


CASES = [
    # ------------------------------------------------------------ layouts.design
    Case(
        "layout_space-zero-variants",
        lambda e: LD.layout_space((3, 0)),
        IAE,
        "num_variants:",
        WEIGHTS,
    ),
    Case("layout_space-empty", lambda e: LD.layout_space([]), IAE, "num_variants:", WEIGHTS),
    Case(
        "layout_space-float-variants",
        lambda e: LD.layout_space((2.5, 3)),
        IAE,
        "num_variants:",
        WEIGHTS,
    ),
    Case(
        "layout_space-negative-context",
        lambda e: LD.layout_space((2,), -1),
        IAE,
        "num_context:",
        WEIGHTS,
    ),
    Case(
        "layout_space-unknown-model",
        lambda e: LD.layout_space((2,), 0, "mvt3"),
        IAE,
        "model:",
        WEIGHTS,
    ),
    Case(
        "feature_ids-not-a-space",
        lambda e: LD.feature_ids((3, 4, 2), e.layouts),
        IAE,
        "space:",
        FEEDBACK,
    ),
    Case(
        "feature_ids-variant-out-of-range",
        lambda e: LD.feature_ids(e.space, e.bad_layouts),
        IAE,
        "layouts: expected variant indices",
        FEEDBACK,
    ),
    Case(
        "feature_ids-negative-variant",
        lambda e: LD.feature_ids(e.space, -e.layouts),
        IAE,
        "layouts:",
        FEEDBACK,
    ),
    Case(
        "feature_ids-float-layouts",
        lambda e: LD.feature_ids(e.space, e.layouts * 1.0),
        IAE,
        "layouts:",
        FEEDBACK,
    ),
    Case(
        "feature_ids-wrong-width",
        lambda e: LD.feature_ids(e.space, e.layouts[:, :2]),
        IAE,
        "layouts:",
        FEEDBACK,
    ),
    Case(
        "feature_ids-context-not-0-1",
        lambda e: LD.feature_ids(e.ctx_space, np.zeros((1, 2), int), np.array([[0.5, 1.0]])),
        IAE,
        "contexts:",
        WEIGHTS,
    ),
    Case(
        "feature_ids-context-missing",
        lambda e: LD.feature_ids(e.ctx_space, np.zeros((1, 2), int)),
        IAE,
        "contexts:",
        WEIGHTS,
    ),
    Case(
        "score-weights-wrong-length",
        lambda e: LD.score(e.space, e.weights[:-1], e.layouts),
        IAE,
        "weights: expected float[",
        WEIGHTS,
    ),
    Case(
        "score-nan-weight",
        lambda e: LD.score(e.space, e.nan_weights, e.layouts),
        IAE,
        "weights: expected finite",
        WEIGHTS,
    ),
    Case(
        "score-integer-weights",
        lambda e: LD.score(e.space, np.zeros(e.space.num_features, int), e.layouts),
        IAE,
        "weights:",
        FEEDBACK,
    ),
    Case(
        "score_tables-inf-weight",
        lambda e: LD.score_tables(e.space, e.inf_weights),
        IAE,
        "weights: expected finite",
        WEIGHTS,
    ),
    Case(
        "score_tables-two-contexts",
        lambda e: LD.score_tables(e.ctx_space, e.ctx_weights, np.zeros((2, 2))),
        IAE,
        "context:",
        WEIGHTS,
    ),
    Case(
        "score_tables-context-for-plain-space",
        lambda e: LD.score_tables(e.space, e.weights, np.ones(2)),
        IAE,
        "context",
        WEIGHTS,
    ),
    Case(
        "table_score-padding-variant",
        lambda e: LD.table_score(e.tables, np.array([3, 0, 0])),
        IAE,
        "layout: expected a real variant",
        TABLES,
    ),
    Case(
        "table_score-not-tables",
        lambda e: LD.table_score((1.0, 2.0, 3.0), np.array([0, 0, 0])),
        IAE,
        "tables:",
        TABLES,
    ),
    Case(
        "component_deltas-component-out-of-range",
        lambda e: LD.component_deltas(e.tables, np.array([0, 0, 0]), 3),
        IAE,
        "component:",
        TABLES,
    ),
    Case(
        "interaction_sums-short-layout",
        lambda e: LD.interaction_sums(e.tables, np.array([0, 0])),
        IAE,
        "layout:",
        TABLES,
    ),
    Case(
        "all_layouts-too-many",
        lambda e: LD.all_layouts(e.space, max_layouts=10),
        IAE,
        "space:",
        WEIGHTS,
    ),
    Case(
        "check_layouts-padding",
        lambda e: LD.check_layouts("layouts", e.space, e.bad_layouts),
        IAE,
        "layouts:",
        FEEDBACK,
    ),
    # ------------------------------------------------------------ layouts.search
    Case(
        "hill_climb-nan-weight",
        lambda e: LS.hill_climb(KEY, e.space, e.nan_weights),
        IAE,
        "weights: expected finite values",
        WEIGHTS,
    ),
    Case(
        "hill_climb-inf-weight",
        lambda e: LS.hill_climb(KEY, e.space, e.inf_weights),
        IAE,
        "weights: expected finite values",
        WEIGHTS,
    ),
    Case(
        "hill_climb-int-key", lambda e: LS.hill_climb(0, e.space, e.weights), IAE, "key:", WEIGHTS
    ),
    Case(
        "hill_climb-key-batch",
        lambda e: LS.hill_climb(jax.random.split(KEY, 2), e.space, e.weights),
        IAE,
        "key:",
        WEIGHTS,
    ),
    Case(
        "hill_climb-zero-restarts",
        lambda e: LS.hill_climb(KEY, e.space, e.weights, restarts=0),
        IAE,
        "restarts:",
        WEIGHTS,
    ),
    Case(
        "hill_climb-fractional-steps",
        lambda e: LS.hill_climb(KEY, e.space, e.weights, steps=1.5),
        IAE,
        "steps:",
        WEIGHTS,
    ),
    Case(
        "hill_climb-unknown-order",
        lambda e: LS.hill_climb(KEY, e.space, e.weights, order="cyclic"),
        IAE,
        "order:",
        WEIGHTS,
    ),
    Case(
        "hill_climb-not-a-space",
        lambda e: LS.hill_climb(KEY, (3, 4, 2), e.weights),
        IAE,
        "space:",
        WEIGHTS,
    ),
    Case(
        "hill_climb-weights-2d",
        lambda e: LS.hill_climb(KEY, e.space, e.weights[None]),
        IAE,
        "weights:",
        WEIGHTS,
    ),
    Case(
        "hill_climb-context-missing",
        lambda e: LS.hill_climb(KEY, e.ctx_space, e.ctx_weights),
        IAE,
        "context:",
        WEIGHTS,
    ),
    Case(
        "hill_climb_tables-other-space",
        lambda e: LS.hill_climb_tables(KEY, e.ctx_space, e.tables, 2, 2),
        IAE,
        "tables:",
        TABLES,
    ),
    Case(
        "hill_climb_tables-int-key",
        lambda e: LS.hill_climb_tables(7, e.space, e.tables, 2, 2),
        IAE,
        "key:",
        TABLES,
    ),
    Case(
        "hill_climb_tables-zero-steps",
        lambda e: LS.hill_climb_tables(KEY, e.space, e.tables, 2, 0),
        IAE,
        "steps:",
        TABLES,
    ),
    Case(
        "exhaustive_search-nan-weight",
        lambda e: LS.exhaustive_search(e.space, e.nan_weights),
        IAE,
        "weights: expected finite",
        WEIGHTS,
    ),
    Case(
        "exhaustive_search-too-many",
        lambda e: LS.exhaustive_search(e.space, e.weights, max_layouts=5),
        IAE,
        "space:",
        WEIGHTS,
    ),
    Case(
        "random_layouts-int-key",
        lambda e: LS.random_layouts(3, e.space, (2,)),
        IAE,
        "key:",
        WEIGHTS,
    ),
    Case(
        "random_layouts-negative-shape",
        lambda e: LS.random_layouts(KEY, e.space, (-1,)),
        IAE,
        "shape:",
        WEIGHTS,
    ),
    Case(
        "step_components-zero-components",
        lambda e: LS.step_components(KEY, 0, (2, 3)),
        IAE,
        "num_components:",
        WEIGHTS,
    ),
    Case(
        "step_components-no-key",
        lambda e: LS.step_components(None, 3, (2, 3)),
        IAE,
        "key:",
        WEIGHTS,
    ),
    Case(
        "step_components-unknown-order",
        lambda e: LS.step_components(KEY, 3, (2, 3), "zigzag"),
        IAE,
        "order:",
        WEIGHTS,
    ),
    Case(
        "climb-padding-start",
        lambda e: LS.climb(e.tables, np.array([3, 3, 0], np.int32), np.array([0, 1], np.int32)),
        IAE,
        "layout:",
        TABLES,
    ),
    Case(
        "climb-component-out-of-range",
        lambda e: LS.climb(e.tables, np.array([0, 0, 0], np.int32), np.array([0, 3], np.int32)),
        IAE,
        "components:",
        TABLES,
    ),
    Case(
        "argmax_first-empty", lambda e: LS.argmax_first(jnp.zeros((2, 0))), IAE, "values:", WEIGHTS
    ),
    Case(
        "check_search-negative-restarts",
        lambda e: LS.check_search(-1, 2, "random"),
        IAE,
        "restarts:",
        WEIGHTS,
    ),
    # ------------------------------------------------------------ layouts.policy
    Case("mvt_thompson-not-a-space", lambda e: LP.mvt_thompson((3, 4, 2)), IAE, "space:", WEIGHTS),
    Case(
        "mvt_thompson-unknown-search",
        lambda e: LP.mvt_thompson(e.space, search_method="anneal"),
        IAE,
        "search_method:",
        WEIGHTS,
    ),
    Case(
        "mvt_thompson-zero-prior-variance",
        lambda e: LP.mvt_thompson(e.space, prior_variance=0.0),
        IAE,
        "prior_variance:",
        WEIGHTS,
    ),
    Case(
        "mvt_thompson-nan-noise",
        lambda e: LP.mvt_thompson(e.space, noise=float("nan")),
        IAE,
        "noise:",
        WEIGHTS,
    ),
    Case("mvt.choose-int-key", lambda e: e.mvt.choose(0, e.mvt_state, 2), IAE, "key:", MVT),
    Case(
        "mvt.choose-zero-requests",
        lambda e: e.mvt.choose(KEY, e.mvt_state, 0),
        IAE,
        "num_requests:",
        MVT,
    ),
    Case(
        "mvt.choose-short-state",
        lambda e: e.mvt.choose(KEY, e.mvt_state._replace(mean=e.mvt_state.mean[:-1]), 2),
        IAE,
        "state.mean:",
        MVT,
    ),
    Case(
        "mvt.choose-contexts-for-plain-space",
        lambda e: e.mvt.choose(KEY, e.mvt_state, 2, np.ones((2, 2))),
        IAE,
        "contexts:",
        MVT,
    ),
    Case(
        "mvt.update-reward-2",
        lambda e: e.mvt.update(e.mvt_state, e.layouts, np.array([1.0, 2.0])),
        IAE,
        "rewards: expected values in {0, 1}",
        MVT,
    ),
    Case(
        "mvt.update-out-of-range-layout",
        lambda e: e.mvt.update(e.mvt_state, e.bad_layouts, np.array([1.0])),
        IAE,
        "layouts:",
        MVT,
    ),
    Case(
        "mvt.update-length-mismatch",
        lambda e: e.mvt.update(e.mvt_state, e.layouts, np.array([1.0])),
        IAE,
        "rewards:",
        MVT,
    ),
    Case("mvt.recommend-int-key", lambda e: e.mvt.recommend(1, e.mvt_state), IAE, "key:", MVT),
    Case(
        "mvt.recommend-nan-variance",
        lambda e: e.mvt.recommend(
            KEY, e.mvt_state._replace(variance=e.mvt_state.variance.at[0].set(jnp.nan))
        ),
        IAE,
        "state.variance:",
        MVT,
    ),
    Case(
        "mvt.recommend-context-missing",
        lambda e: e.ctx_mvt.recommend(KEY, e.ctx_state),
        IAE,
        "context:",
        CTX,
    ),
    Case(
        "mvt.choose-context-rows",
        lambda e: e.ctx_mvt.choose(KEY, e.ctx_state, 3, np.ones((2, 2))),
        IAE,
        "contexts:",
        CTX,
    ),
    Case(
        "layout_mab-too-large",
        lambda e: LP.layout_mab(LD.layout_space((10,) * 4)),
        IAE,
        "space:",
        WEIGHTS,
    ),
    Case("layout_mab.choose-int-key", lambda e: e.mab.choose(5, e.mab_state, 2), IAE, "key:", MAB),
    Case(
        "layout_mab.update-nan-reward",
        lambda e: e.mab.update(e.mab_state, e.layouts, np.array([1.0, np.nan])),
        IAE,
        "rewards:",
        MAB,
    ),
    Case(
        "layout_mab.recommend-wrong-state",
        lambda e: e.mab.recommend(KEY, e.dmabs_state),
        IAE,
        "state.alpha:",
        MAB,
    ),
    Case(
        "component_mabs.choose-int-key",
        lambda e: e.dmabs.choose(5, e.dmabs_state, 2),
        IAE,
        "key:",
        DMABS,
    ),
    Case(
        "component_mabs.update-out-of-range",
        lambda e: e.dmabs.update(e.dmabs_state, e.bad_layouts, np.array([1.0])),
        IAE,
        "layouts:",
        DMABS,
    ),
    Case(
        "component_mabs.recommend-not-a-state",
        lambda e: e.dmabs.recommend(KEY, e.mvt_state),
        IAE,
        "state:",
        DMABS,
    ),
    Case("uniform.choose-int-key", lambda e: e.uniform.choose(1, (), 2), IAE, "key:", WEIGHTS),
    Case("uniform.recommend-int-key", lambda e: e.uniform.recommend(1, ()), IAE, "key:", WEIGHTS),
    Case(
        "uniform.update-reward-minus-1",
        lambda e: e.uniform.update((), e.layouts, np.array([1.0, -1.0])),
        IAE,
        "rewards:",
        FEEDBACK,
    ),
    Case(
        "posterior_draw-int-key",
        lambda e: LP.posterior_draw(0, jnp.zeros(3), jnp.ones(3)),
        IAE,
        "key:",
        WEIGHTS,
    ),
    Case(
        "posterior_draw-negative-variance",
        lambda e: LP.posterior_draw(KEY, jnp.zeros(3), -jnp.ones(3)),
        IAE,
        "variance:",
        WEIGHTS,
    ),
    Case(
        "posterior_draw-nan-mean",
        lambda e: LP.posterior_draw(KEY, jnp.full(3, jnp.nan), jnp.ones(3)),
        IAE,
        "mean:",
        WEIGHTS,
    ),
    Case(
        "posterior_draw-shape-mismatch",
        lambda e: LP.posterior_draw(KEY, jnp.zeros(3), jnp.ones(2)),
        IAE,
        "variance:",
        WEIGHTS,
    ),
    Case(
        "hill_climb_workload-one-component",
        lambda e: LB.hill_climb_workload(1, 0),
        IAE,
        "num_components:",
        WEIGHTS,
    ),
    # ------------------------------------------------------------ priors.record
    Case(
        "gaussian_group_prior-zero-variance",
        lambda e: PR.gaussian_group_prior(np.zeros(2), np.array([1.0, 0.0]), e.groups),
        IAE,
        "variance: expected finite values > 0",
        DATA,
    ),
    Case(
        "gaussian_group_prior-nan-mean",
        lambda e: PR.gaussian_group_prior(np.array([0.0, np.nan]), np.ones(2), e.groups),
        IAE,
        "mean:",
        DATA,
    ),
    Case(
        "gaussian_group_prior-empty-group",
        lambda e: PR.gaussian_group_prior(np.zeros(3), np.ones(3), e.groups),
        IAE,
        "group_of_feature:",
        DATA,
    ),
    Case(
        "gaussian_group_prior-no-groups",
        lambda e: PR.gaussian_group_prior(np.zeros(0), np.ones(0), e.groups),
        IAE,
        "mean:",
        DATA,
    ),
    Case(
        "beta_group_prior-negative-alpha",
        lambda e: PR.beta_group_prior(np.array([-1.0, 1.0]), np.ones(2)),
        IAE,
        "alpha:",
        RECORDS,
    ),
    Case(
        "beta_group_prior-inf-beta",
        lambda e: PR.beta_group_prior(np.ones(2), np.array([1.0, np.inf])),
        IAE,
        "beta:",
        RECORDS,
    ),
    Case(
        "feature_prior-not-a-record",
        lambda e: PR.feature_prior(tuple(e.record)),
        IAE,
        "record:",
        RECORDS,
    ),
    Case(
        "feature_prior-zero-variance-record",
        lambda e: PR.feature_prior(e.record._replace(variance=jnp.zeros(2))),
        IAE,
        "variance:",
        RECORDS,
    ),
    Case(
        "item_prior-group-out-of-range",
        lambda e: PR.item_prior(e.beta_record, np.array([0, 2])),
        IAE,
        "group_of_item:",
        RECORDS,
    ),
    Case(
        "groups_from_slices-negative-size",
        lambda e: PR.groups_from_slices({"a": slice(0, 3)}, -1),
        IAE,
        "num_features:",
        WEIGHTS,
    ),
    Case(
        "groups_from_slices-open-slice",
        lambda e: PR.groups_from_slices({"a": slice(0, None)}, 3),
        IAE,
        "slices['a']:",
        WEIGHTS,
    ),
    Case(
        "groups_from_slices-not-a-slice",
        lambda e: PR.groups_from_slices({"a": (0, 3)}, 3),
        IAE,
        "slices['a']:",
        WEIGHTS,
    ),
    Case(
        "groups_from_slices-overlap",
        lambda e: PR.groups_from_slices({"a": slice(0, 2), "b": slice(1, 3)}, 3),
        IAE,
        "slices['b']:",
        WEIGHTS,
    ),
    Case(
        "check_group_ids-zero-groups",
        lambda e: PR.check_group_ids("ids", e.groups, 0, every_group=False),
        IAE,
        "num_groups:",
        DATA,
    ),
    # ------------------------------------------------------------ priors.moments
    Case(
        "method_of_moments-1e39",
        lambda e: PM.method_of_moments(with_("estimates", 0, 1e39)(e), e.noise, e.groups, 2),
        IAE,
        "estimates: expected finite values in float32",
        DATA,
    ),
    Case(
        "method_of_moments-sum-overflows",
        lambda e: PM.method_of_moments(np.array([3e38, 3e38]), np.ones(2), np.zeros(2, int), 1),
        IAE,
        "estimates: expected values whose group sums",
        DATA,
    ),
    Case(
        "method_of_moments-squares-overflow",
        lambda e: PM.method_of_moments(np.array([1e20, -1e20]), np.ones(2), np.zeros(2, int), 1),
        IAE,
        "estimates:",
        DATA,
    ),
    Case(
        "method_of_moments-nan-noise",
        lambda e: PM.method_of_moments(e.estimates, with_("noise", 2, np.nan)(e), e.groups, 2),
        IAE,
        "sampling_variances:",
        DATA,
    ),
    Case(
        "method_of_moments-zero-groups",
        lambda e: PM.method_of_moments(e.estimates, e.noise, e.groups, 0),
        IAE,
        "num_groups:",
        DATA,
    ),
    Case(
        "method_of_moments-float-groups",
        lambda e: PM.method_of_moments(e.estimates, e.noise, e.groups * 1.0, 2),
        IAE,
        "group_of_feature:",
        DATA,
    ),
    Case(
        "meta_prior-negative-min-variance",
        lambda e: PM.meta_prior(e.moments, e.groups, min_variance=-1),
        IAE,
        "min_variance:",
        MOMENTS,
    ),
    Case(
        "meta_prior-zero-fallback-variance",
        lambda e: PM.meta_prior(e.moments, e.groups, fallback_variance=0),
        IAE,
        "fallback_variance:",
        MOMENTS,
    ),
    Case(
        "meta_prior-inf-fallback-mean",
        lambda e: PM.meta_prior(e.moments, e.groups, fallback_mean=np.inf),
        IAE,
        "fallback_mean:",
        MOMENTS,
    ),
    Case(
        "meta_prior-min-count-1",
        lambda e: PM.meta_prior(e.moments, e.groups, min_count=1),
        IAE,
        "min_count:",
        MOMENTS,
    ),
    Case(
        "meta_prior-not-moments",
        lambda e: PM.meta_prior(tuple(e.moments), e.groups),
        IAE,
        "moments:",
        MOMENTS,
    ),
    Case(
        "meta_prior-group-out-of-range",
        lambda e: PM.meta_prior(e.moments, e.groups + 1),
        IAE,
        "group_of_feature:",
        MOMENTS,
    ),
    Case(
        "meta_prior-nan-moment",
        lambda e: PM.meta_prior(e.moments._replace(variance=jnp.array([jnp.nan, 0.1])), e.groups),
        IAE,
        "moments:",
        MOMENTS,
    ),
    Case(
        "divide_out_prior-zero-variance",
        lambda e: PM.divide_out_prior(jnp.ones(3), jnp.zeros(3), 0.0, 1.0),
        IAE,
        "variance: expected finite values > 0",
        WEIGHTS,
    ),
    Case(
        "divide_out_prior-negative-prior-variance",
        lambda e: PM.divide_out_prior(jnp.ones(3), jnp.ones(3), 0.0, -1.0),
        IAE,
        "prior_variance:",
        WEIGHTS,
    ),
    Case(
        "divide_out_prior-shape-mismatch",
        lambda e: PM.divide_out_prior(jnp.ones(3), jnp.ones(2), 0.0, 1.0),
        IAE,
        "variance:",
        WEIGHTS,
    ),
    # ------------------------------------------------------------ priors.laplace
    Case(
        "probit_type2-zero-initial-variance",
        type2(initial_variance=0),
        IAE,
        "initial_variance:",
        EVENTS,
    ),
    Case("probit_type2-zero-max-features", type2(max_features=0), IAE, "max_features:", EVENTS),
    Case("probit_type2-zero-iterations", type2(num_iters=0), IAE, "num_iters:", EVENTS),
    Case("probit_type2-negative-warm-steps", type2(warm_steps=-1), IAE, "warm_steps:", EVENTS),
    Case("probit_type2-zero-min-variance", type2(min_variance=0.0), IAE, "min_variance:", EVENTS),
    Case("probit_type2-inf-noise", type2(noise=np.inf), IAE, "noise:", EVENTS),
    Case("probit_type2-zero-groups", type2(num_groups=0), IAE, "num_groups:", EVENTS),
    Case(
        "probit_type2-fixed-group-out-of-range",
        type2(fixed_groups=(5,)),
        IAE,
        "fixed_groups:",
        EVENTS,
    ),
    Case(
        "probit_type2-feature-id-out-of-range",
        lambda e: PL.probit_type2(
            with_("events", (0, 1), 3)(e), e.clicks, e.feature_groups, 2, max_features=8
        ),
        IAE,
        "events:",
        EVENTS,
    ),
    Case(
        "probit_type2-nan-impressions",
        lambda e: PL.probit_type2(
            e.events,
            e.clicks,
            e.feature_groups,
            2,
            max_features=8,
            impressions=np.array([1.0, np.nan, 1.0]),
        ),
        IAE,
        "impressions:",
        EVENTS,
    ),
    Case(
        "probit_type2-no-features",
        lambda e: PL.probit_type2(e.events * 0 - 1, e.clicks, np.zeros(0, int), 2, max_features=8),
        IAE,
        "group_of_feature:",
        EVENTS,
    ),
    # ------------------------------------------------------------ priors.hierarchical
    Case(
        "fit_gaussian_type2-zero-steps",
        svi(PH.fit_gaussian_type2, num_steps=0),
        IAE,
        "num_steps:",
        DATA,
    ),
    Case(
        "fit_gaussian_type2-nan-learning-rate",
        svi(PH.fit_gaussian_type2, learning_rate=float("nan")),
        IAE,
        "learning_rate:",
        DATA,
    ),
    Case(
        "fit_gaussian_type2-zero-groups",
        svi(PH.fit_gaussian_type2, num_groups=0),
        IAE,
        "num_groups:",
        DATA,
    ),
    Case("fit_gaussian_type2-int-key", svi(PH.fit_gaussian_type2, key=0), IAE, "key:", DATA),
    Case(
        "fit_gaussian_type2-nan-estimate",
        lambda e: PH.fit_gaussian_type2(
            KEY, with_("estimates", 1, np.nan)(e), e.noise, e.groups, 2
        ),
        IAE,
        "estimates:",
        DATA,
    ),
    Case(
        "fit_gaussian_autonormal-zero-prior-scale",
        svi(PH.fit_gaussian_autonormal, prior_scale=0.0),
        IAE,
        "prior_scale:",
        DATA,
    ),
    Case(
        "fit_gaussian_autonormal-negative-learning-rate",
        svi(PH.fit_gaussian_autonormal, learning_rate=-0.1),
        IAE,
        "learning_rate:",
        DATA,
    ),
    Case(
        "fit_gaussian_nuts-one-sample",
        svi(PH.fit_gaussian_nuts, num_samples=1),
        IAE,
        "num_samples:",
        DATA,
    ),
    Case(
        "fit_gaussian_nuts-zero-chains",
        svi(PH.fit_gaussian_nuts, num_chains=0),
        IAE,
        "num_chains:",
        DATA,
    ),
    Case(
        "fit_gaussian_nuts-inf-tau-scale",
        svi(PH.fit_gaussian_nuts, tau_scale=np.inf),
        IAE,
        "tau_scale:",
        DATA,
    ),
    Case(
        "fit_beta_binomial-nan-impressions",
        lambda e: PH.fit_beta_binomial_type2(
            KEY, e.item_clicks, with_("impressions", 0, np.nan)(e), e.item_groups, 2
        ),
        IAE,
        "impressions:",
        ITEMS,
    ),
    Case(
        "fit_beta_binomial-clicks-above-impressions",
        lambda e: PH.fit_beta_binomial_type2(
            KEY, e.item_clicks + 4, e.impressions, e.item_groups, 2
        ),
        IAE,
        "clicks:",
        ITEMS,
    ),
    Case(
        "fit_beta_binomial-zero-steps",
        lambda e: PH.fit_beta_binomial_type2(
            KEY, e.item_clicks, e.impressions, e.item_groups, 2, num_steps=0
        ),
        IAE,
        "num_steps:",
        ITEMS,
    ),
    Case(
        "fit_beta_binomial-zero-groups",
        lambda e: PH.fit_beta_binomial_type2(KEY, e.item_clicks, e.impressions, e.item_groups, 0),
        IAE,
        "num_groups:",
        ITEMS,
    ),
    # ------------------------------------------------------------ sim worlds (same files)
    Case(
        "make_layout_world-int-key",
        lambda e: SL.make_layout_world(0, SL.LayoutWorldConfig((2, 2))),
        IAE,
        "key:",
        WEIGHTS,
    ),
    Case(
        "make_arm_world-nan-prior",
        lambda e: SA.make_arm_world(KEY, 10, 2, 5, float("nan"), 1.0),
        IAE,
        "prior_alpha:",
        WEIGHTS,
    ),
    Case(
        "make_arm_world-zero-beta",
        lambda e: SA.make_arm_world(KEY, 10, 2, 5, 1.0, 0.0),
        IAE,
        "prior_beta:",
        WEIGHTS,
    ),
    Case(
        "make_arm_world-int-key",
        lambda e: SA.make_arm_world(3, 10, 2, 5, 1.0, 1.0),
        IAE,
        "key:",
        WEIGHTS,
    ),
    Case(
        "pull-int-key",
        lambda e: SA.pull(3, e.arm_world, jnp.array([0, 1])),
        IAE,
        "key:",
        lambda e: e.arm_world,
    ),
    Case(
        "make_callout_world-int-key",
        lambda e: SC.make_callout_world(1, SC.CalloutWorldConfig()),
        IAE,
        "key:",
        WEIGHTS,
    ),
    Case(
        "make_callout_world-not-a-config",
        lambda e: SC.make_callout_world(KEY, {"num_days": 3}),
        IAE,
        "config:",
        WEIGHTS,
    ),
]


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 50


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_named_and_changes_nothing(env, case):
    check_case(env, case)


def test_a_diverging_svi_fit_names_the_learning_rate(env):
    """A finite but huge step: the parameters end non-finite and the error names
    ``learning_rate`` (it used to surface as ``mean: expected finite values``)."""
    with pytest.raises(IAE, match="^learning_rate: expected a step size"):
        PH.fit_gaussian_type2(
            KEY, env.estimates, env.noise, env.groups, 2, learning_rate=1e30, num_steps=5
        )


@pytest.mark.slow
def test_the_good_calls_next_to_the_bad_ones_work(env):
    """The fixture's own inputs pass (the table's errors come from the one bad value)."""
    found = LS.hill_climb(KEY, env.space, env.weights, restarts=2, steps=3)
    assert np.all(np.asarray(found.layout) < np.asarray(env.space.num_variants))
    record = PM.meta_prior(env.moments, env.groups, min_variance=1e-3, fallback_variance=2.0)
    assert np.all(np.asarray(record.variance) > 0)
    fit = PL.probit_type2(env.events, env.clicks, env.feature_groups, 2, max_features=8)
    assert np.all(np.isfinite(np.asarray(fit.variance)))
    state = env.mvt.update(env.mvt_state, env.layouts, env.rewards)
    assert np.asarray(env.mvt.choose(KEY, state, 2)).shape == (2, 3)
