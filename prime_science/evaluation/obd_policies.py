"""Policies to evaluate on the Open Bandit Dataset, and reward models for DM / DR estimators.

Off-policy evaluation (Saito, Aihara, Matsutani & Narita 2021) needs, for every logged row
``i`` (one impression's slot ``k_i`` shown item ``a_i``), the evaluation policy's probability
``pi_e(a | x_i, k)`` of putting item ``a`` in slot ``k``: an action distribution
``float[n, num_items, num_positions]`` whose ``[i, :, k]`` sums to 1. A ranking policy that
shows the top ``K`` of a random score has no closed form for it; it is estimated from ``R``
simulated rankings ``rho_1 .. rho_R`` (``rho_r[k]`` = the item in slot ``k``)::

    pi_hat(a, k) = (1 / R) sum_r 1[rho_r[k] = a],    Var pi_hat(a, k) = pi (1 - pi) / R,

so each entry is within ``2 sqrt(pi (1 - pi) / R)`` of the truth with probability ~95 %.

Policies here:

* the production Bernoulli Thompson sampler (BTS) that logged the ``bts`` data: prior
  ``Beta(alpha_a, beta_a)`` per item (:func:`prime_science.datasets.obd.load_bts_prior`),
  ranking = the top ``K`` of one Beta draw per item, simulated with the project's exact batched
  sampler (:func:`prime_science.bandits.beta_bernoulli.beta_bernoulli`, ``sample_batch``);
  context-free, so one ``[num_items, K]`` table serves every row
  (:func:`broadcast_to_rows`);
* any posterior of that sampler (:func:`arm_action_distribution`), e.g. the per-item
  Beta–Bernoulli TS learned offline from the uniform-random logs (:func:`fit_beta_bernoulli`);
* the uniform random policy, ``pi(a, k) = 1 / num_items`` (:func:`uniform_action_distribution`;
  the ``random`` logs' propensities equal it);
* probit Thompson sampling over user x item features (:func:`click_action_distribution`): one
  weight draw ``w~ ~ N(mu, diag(sigma^2))`` per ranking, items scored ``x(user, a)^T w~``, the
  top ``K`` shown; simulated per distinct user context and gathered to the rows.

Features (:func:`obd_feature_spec`, :mod:`prime_science.bandits.features`): an intercept, the
item, the position, the four hashed user features, the three categorical item attributes, and
the crosses ``user_feature_j x item_feature_1`` (``j = 0..3``), so the model can learn that a
kind of user clicks a kind of item. Position enters the reward model as a feature; the policy's
ranking ignores it (it adds the same to every item's score).

Reward models (:func:`estimated_rewards`). ``q_hat(x, a, k)``, the click probability of item
``a`` in slot ``k`` for context ``x``, from the probit ADF model
(:func:`prime_science.bandits.probit.probit_adf`, predictive ``Phi(x^T mu / Sigma)``) or the
Laplace-logistic model (:func:`prime_science.bandits.logistic.logistic_laplace`, predictive
``sigma(mu / sqrt(1 + pi s^2 / 8))``), cross-fitted (:func:`cross_fit`): the rows are split
into ``F`` contiguous folds in logged order and the rows of fold ``j`` are predicted by a model
trained on the other ``F - 1`` folds only, so no row's own click enters its ``q_hat`` (the
condition under which DR keeps its guarantees with a flexible model; Chernozhukov et al. 2018,
Narita, Yasui & Yata 2019). Priors: every weight ``N(0, s0^2)`` except the intercept, whose
prior mean is chosen so that the prior predictive click probability equals the training rows'
smoothed CTR ``(clicks + 1) / (rows + 2)``: ``Phi^-1(ctr) sqrt(beta^2 + K s0^2)`` (probit) or
``logit(ctr) sqrt(1 + pi K s0^2 / 8)`` (logistic), ``K`` the active ids per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import logit, ndtri

from prime_science.bandits import features
from prime_science.bandits.beta_bernoulli import BetaBernoulliState, beta_bernoulli
from prime_science.bandits.logistic import logistic_laplace
from prime_science.bandits.probit import probit_adf
from prime_science.core import errors
from prime_science.core.types import ArmPolicy, ClickPolicy, PRNGKey
from prime_science.datasets.obd import LoggedBandit

__all__ = [
    "REWARD_MODELS",
    "ClickModel",
    "ranking_frequencies",
    "arm_action_distribution",
    "bts_action_distribution",
    "uniform_action_distribution",
    "broadcast_to_rows",
    "fit_beta_bernoulli",
    "obd_feature_spec",
    "encode_pairs",
    "click_model",
    "fit_click_model",
    "click_action_distribution",
    "fold_ids",
    "cross_fit",
    "estimated_rewards",
]

REWARD_MODELS = ("probit", "logistic")
"""Click models :func:`fit_click_model` and :func:`estimated_rewards` accept."""

_PROBIT_NOISE = 1.0
_LOGISTIC_BATCH = 8_192  # rows per Laplace update; the last batch is padded with weight-0 rows


def ranking_frequencies(rankings: jax.Array, num_items: int) -> jax.Array:
    """``pi_hat[a, k] = (1 / R) #{r : rankings[r, k] = a}``: ``float32[num_items, K]`` from
    ``rankings: int[R, K]`` (item ids in ``[0, num_items)``)."""
    errors.check_rank("rankings", rankings, 2)
    errors.check_dtype_kind("rankings", rankings, "iu", "integer item ids")
    if errors.is_concrete(rankings):
        values = np.asarray(rankings)
        bad = (values < 0) | (values >= num_items)
        if bad.any():
            errors.fail("rankings", f"item ids in [0, {num_items})", values[bad][:5].tolist())
    num_rankings, num_positions = rankings.shape
    counts = jnp.zeros((num_items, num_positions), jnp.float32)
    counts = counts.at[rankings, jnp.arange(num_positions)[None, :]].add(1.0)
    return counts / num_rankings


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        errors.fail(name, "a positive integer", repr(value))
    return int(value)


def arm_action_distribution(
    key: PRNGKey, policy: ArmPolicy, state: Any, num_rankings: int, num_positions: int = 3
) -> jax.Array:
    """``float32[num_arms, num_positions]``: the frequencies (:func:`ranking_frequencies`) of
    ``num_rankings`` rankings ``policy.sample_batch(key, state, num_positions, num_rankings)``
    (for Thompson sampling: the top ``num_positions`` arms of one posterior draw each)."""
    num_rankings = _check_positive_int("num_rankings", num_rankings)
    num_positions = _check_positive_int("num_positions", num_positions)
    rankings = policy.sample_batch(key, state, num_positions, num_rankings).arms
    return ranking_frequencies(rankings, state.alpha.shape[0])


def bts_action_distribution(
    key: PRNGKey, alpha: Any, beta: Any, num_rankings: int = 1_000_000, num_positions: int = 3
) -> jax.Array:
    """The production BTS policy's ``pi(a, k)``, ``float32[num_items, num_positions]``: the top
    ``num_positions`` of one ``Beta(alpha_a, beta_a)`` draw per item, over ``num_rankings``
    simulated rankings (exact sampler of :mod:`prime_science.bandits.beta_bernoulli`).

    Raises ``InvalidArgumentError`` for priors that are not positive finite 1-D arrays of one
    length, or counts that are not positive integers."""
    alpha, beta = np.asarray(alpha), np.asarray(beta)
    for name, value in (("alpha", alpha), ("beta", beta)):
        if value.ndim != 1 or value.size < 1:
            errors.fail(name, "a non-empty 1-D array (one entry per item)", f"shape {value.shape}")
    if alpha.shape != beta.shape:
        errors.fail("beta", f"shape {alpha.shape} (as alpha)", f"shape {beta.shape}")
    policy = beta_bernoulli(alpha, beta)
    state = policy.init(alpha.size)
    return arm_action_distribution(key, policy, state, num_rankings, num_positions)


def uniform_action_distribution(num_items: int, num_positions: int = 3) -> jax.Array:
    """``pi(a, k) = 1 / num_items`` for every item and slot: ``float32[num_items,
    num_positions]`` (a ranking of distinct items drawn uniformly at random)."""
    num_items = _check_positive_int("num_items", num_items)
    num_positions = _check_positive_int("num_positions", num_positions)
    return jnp.full((num_items, num_positions), 1.0 / num_items, jnp.float32)


def broadcast_to_rows(distribution: jax.Array, num_rows: int) -> jax.Array:
    """A context-free ``[num_items, K]`` table as the ``[num_rows, num_items, K]`` action
    distribution the estimators take (a broadcast, no copy until it is materialised)."""
    errors.check_rank("distribution", distribution, 2)
    num_rows = _check_positive_int("num_rows", num_rows)
    return jnp.broadcast_to(distribution, (num_rows, *np.shape(distribution)))


def fit_beta_bernoulli(
    log: LoggedBandit, rows: Any, prior_alpha: float = 1.0, prior_beta: float = 1.0
) -> tuple[ArmPolicy, BetaBernoulliState]:
    """Per-item Beta–Bernoulli TS trained on the logged ``rows`` (positions pooled):
    ``alpha_a = prior_alpha + clicks of a``, ``beta_a = prior_beta + non-clicks of a``."""
    rows = _check_rows("rows", rows, log.item.size)
    policy = beta_bernoulli(prior_alpha, prior_beta)
    state = policy.update(
        policy.init(log.num_items), jnp.asarray(log.item[rows]), jnp.asarray(log.click[rows])
    )
    return policy, state


def _check_rows(name: str, rows: Any, num_rows: int) -> np.ndarray:
    rows = np.asarray(rows)
    if rows.ndim != 1 or rows.dtype.kind not in "iu" or rows.size == 0:
        errors.fail(name, "a non-empty 1-D array of row indices", f"{rows.dtype}{list(rows.shape)}")
    bad = (rows < 0) | (rows >= num_rows)
    if bad.any():
        errors.fail(name, f"row indices in [0, {num_rows})", rows[bad][:5].tolist())
    return rows


_USER_BLOCKS = tuple(f"user_feature_{j}" for j in range(4))
_ITEM_BLOCKS = tuple(f"item_feature_{j}" for j in (1, 2, 3))


def obd_feature_spec(log: LoggedBandit) -> features.FeatureSpec:
    """The click models' feature layout for one log (module docstring): intercept, item,
    position, ``user_feature_0..3``, ``item_feature_1..3`` and ``user_feature_j x
    item_feature_1``; vocabulary sizes from the log."""
    blocks = [
        features.intercept(),
        features.categorical("item", log.num_items),
        features.categorical("position", 3),
    ]
    blocks += [
        features.categorical(name, len(vocabulary))
        for name, vocabulary in zip(_USER_BLOCKS, log.user_vocabularies, strict=True)
    ]
    blocks += [
        features.categorical(name, len(vocabulary))
        for name, vocabulary in zip(_ITEM_BLOCKS, log.items.vocabularies, strict=True)
    ]
    blocks += [
        features.cross(f"{user} x item_feature_1", user, "item_feature_1") for user in _USER_BLOCKS
    ]
    return features.feature_spec(blocks)


def encode_pairs(
    spec: features.FeatureSpec, log: LoggedBandit, rows: Any, items: Any, positions: Any
) -> jax.Array:
    """Feature ids of (row's user, item, position) triples: ``rows``, ``items`` and ``positions``
    are integer arrays of one shape ``S``; returns ``int32[*S, spec.num_active]``."""
    rows, items, positions = np.broadcast_arrays(*(np.asarray(v) for v in (rows, items, positions)))
    shape = rows.shape
    rows, items, positions = rows.ravel(), items.ravel(), positions.ravel()
    columns = {"item": items, "position": positions}
    columns |= {name: log.user_features[rows, j] for j, name in enumerate(_USER_BLOCKS)}
    columns |= {name: log.items.categorical[items, j] for j, name in enumerate(_ITEM_BLOCKS)}
    ids = features.encode(spec, columns)
    return ids.reshape(*shape, spec.num_active)


class ClickModel(NamedTuple):
    """A fitted click model: the policy (its functions) and its posterior."""

    policy: ClickPolicy
    state: Any


def click_model(
    kind: str, spec: features.FeatureSpec, prior_ctr: float, prior_variance: float = 0.05
) -> ClickModel:
    """The click model ``kind`` (one of :data:`REWARD_MODELS`, Thompson sampling as its rule)
    at its prior: every weight ``N(0, prior_variance)`` except the intercept, whose prior mean
    makes the prior predictive click probability ``prior_ctr`` (module docstring)."""
    if kind not in REWARD_MODELS:
        errors.fail("kind", f"one of {REWARD_MODELS}", repr(kind))
    if not 0.0 < prior_ctr < 1.0:
        errors.fail("prior_ctr", "a probability in (0, 1)", prior_ctr)
    spread = spec.num_active * prior_variance
    if kind == "probit":
        intercept = float(ndtri(prior_ctr)) * np.sqrt(_PROBIT_NOISE**2 + spread)
    else:
        intercept = float(logit(prior_ctr)) * np.sqrt(1.0 + np.pi * spread / 8.0)
    prior_mean = np.zeros(spec.num_features, np.float32)
    prior_mean[spec.offsets[0]] = intercept
    make = probit_adf if kind == "probit" else logistic_laplace
    policy = make(spec.num_features, prior_mean=prior_mean, prior_variance=prior_variance)
    return ClickModel(policy, policy.init())


def fit_click_model(
    kind: str,
    spec: features.FeatureSpec,
    feature_ids: jax.Array,
    clicks: Any,
    prior_variance: float = 0.05,
) -> ClickModel:
    """:func:`click_model` with ``prior_ctr = (clicks + 1) / (rows + 2)``, fitted on events
    ``(feature_ids[j], clicks[j])`` in order: probit ADF one event at a time, logistic Laplace
    in batches of 8,192 rows."""
    clicks = np.asarray(clicks, np.float32)
    ctr = (clicks.sum() + 1.0) / (clicks.size + 2.0)
    policy, state = click_model(kind, spec, float(ctr), prior_variance)
    if kind == "probit":
        state = policy.update(state, feature_ids, clicks)
    else:
        # One compiled Newton solve for every call: batches of a fixed length, padded with
        # weight-0 rows of padding ids (no feature, no likelihood).
        padded = -(-clicks.size // _LOGISTIC_BATCH) * _LOGISTIC_BATCH
        extra = padded - clicks.size
        ids = np.pad(np.asarray(feature_ids), ((0, extra), (0, 0)), constant_values=-1)
        padded_clicks = np.pad(clicks, (0, extra))
        weights = np.pad(np.ones_like(clicks), (0, extra))
        for start in range(0, padded, _LOGISTIC_BATCH):
            batch = slice(start, start + _LOGISTIC_BATCH)
            state = policy.update(state, ids[batch], padded_clicks[batch], weights[batch])
    return ClickModel(policy, state)


def click_action_distribution(
    key: PRNGKey,
    model: ClickModel,
    spec: features.FeatureSpec,
    log: LoggedBandit,
    rows: Any,
    num_rankings: int,
    num_positions: int = 3,
) -> jax.Array:
    """``float32[len(rows), num_items, num_positions]``: Thompson sampling with ``model``'s
    posterior, each ranking the top ``num_positions`` items of one weight draw, scored for the
    row's user (position feature fixed at slot 0, which shifts every item alike). Rows with
    the same user features share one simulation of ``num_rankings`` rankings; user context
    ``c`` uses ``jax.random.fold_in(key, c)``."""
    rows = _check_rows("rows", rows, log.item.size)
    num_rankings = _check_positive_int("num_rankings", num_rankings)
    contexts, context_of_row = np.unique(log.user_features[rows], axis=0, return_inverse=True)
    items = np.arange(log.num_items)
    tables = []
    for index in range(contexts.shape[0]):
        representative = rows[np.flatnonzero(context_of_row.ravel() == index)[0]]
        ids = encode_pairs(spec, log, representative, items, 0)
        rankings = model.policy.sample_batch(
            jax.random.fold_in(key, index), model.state, ids, num_positions, num_rankings
        ).arms
        tables.append(ranking_frequencies(rankings, log.num_items))
    return jnp.stack(tables)[context_of_row.ravel()]


def fold_ids(num_rows: int, num_folds: int) -> np.ndarray:
    """``int32[num_rows]``: row ``i``'s fold ``floor(i F / n)`` (``F`` contiguous blocks in
    logged order, sizes differing by at most one)."""
    num_rows = _check_positive_int("num_rows", num_rows)
    num_folds = _check_positive_int("num_folds", num_folds)
    if not 2 <= num_folds <= num_rows:
        errors.fail("num_folds", f"an integer in [2, {num_rows}] (rows)", num_folds)
    return (np.arange(num_rows) * num_folds // num_rows).astype(np.int32)


def cross_fit(
    fit_predict: Callable[[np.ndarray, np.ndarray], Any], num_rows: int, num_folds: int
) -> np.ndarray:
    """Cross-fitted predictions: for each fold ``j`` (:func:`fold_ids`),
    ``out[held_out_j] = fit_predict(train_j, held_out_j)`` with ``train_j`` the rows of every
    other fold and ``held_out_j`` those of fold ``j`` (both sorted ``int`` index arrays); the
    predictions' leading axis follows ``held_out_j``. Returns the ``[num_rows, ...]`` array."""
    folds = fold_ids(num_rows, num_folds)
    out = None
    for fold in range(num_folds):
        held_out, train = np.flatnonzero(folds == fold), np.flatnonzero(folds != fold)
        predicted = np.asarray(fit_predict(train, held_out))
        if predicted.shape[:1] != held_out.shape:
            errors.fail(
                "fit_predict", f"{held_out.size} predictions (fold {fold})", predicted.shape
            )
        if out is None:
            out = np.empty((num_rows, *predicted.shape[1:]), predicted.dtype)
        out[held_out] = predicted
    return out


def estimated_rewards(
    log: LoggedBandit,
    kind: str = "probit",
    rows: Any = None,
    num_folds: int = 3,
    num_positions: int = 3,
) -> np.ndarray:
    """Cross-fitted ``q_hat(x_i, a, k)``: ``float32[len(rows), num_items, num_positions]`` for the
    logged ``rows`` (default all, in order), from the click model ``kind`` trained (per fold)
    on the other folds of ``rows`` (module docstring)."""
    rows = np.arange(log.item.size) if rows is None else _check_rows("rows", rows, log.item.size)
    spec = obd_feature_spec(log)
    logged_ids = np.asarray(encode_pairs(spec, log, rows, log.item[rows], log.position[rows]))
    items = np.arange(log.num_items)[None, :, None]
    positions = np.arange(num_positions)[None, None, :]

    def fit_predict(train: np.ndarray, held_out: np.ndarray) -> np.ndarray:
        model = fit_click_model(kind, spec, logged_ids[train], log.click[rows[train]])
        ids = encode_pairs(spec, log, rows[held_out][:, None, None], items, positions)
        flat = ids.reshape(-1, spec.num_active)
        predicted = model.policy.predict(model.state, flat)
        return np.asarray(predicted).reshape(held_out.size, log.num_items, num_positions)

    return cross_fit(fit_predict, rows.size, num_folds)
