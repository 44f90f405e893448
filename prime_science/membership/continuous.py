"""The continuous membership variant: Deep PQR on real-valued member-month features.

The tabular model (:mod:`.model`) is observed through features instead of state indices, the
setting of Deep PQR (Geng et al. 2020, ICML): each member-month of a simulated panel
(:func:`.simulate.simulate_panel`) becomes the row ``x = (member, tenure, shipping, video,
content, promotion, higher annual price, segment, noise_1 .. noise_k)``::

    member    = 1[plan = free member]          (0: not a member)
    tenure    = tenure bucket / 5               (the model's tau)
    shipping  = (e_ship  + jitter (U_ship  - 1/2)) / (E - 1)
    video     = (e_video + jitter (U_video - 1/2)) / (E - 1)
    content   = the content shock (0 or 1)
    promotion, higher annual price = 1[regime = 1], 1[regime = 2]
    segment   = the observed segment (0 or 1)
    noise_j   ~ N(0, 1), redrawn every month, j = 1 .. k

with ``U ~ U(0, 1)`` drawn afresh each member-month. The jitter (``0 <= jitter < 1``) spreads
each engagement bucket over an interval of that width around its level; it never crosses into
the next bucket and never enters utility, which depends on the bucket ``e`` only. Jitter and
noise features are pure distraction: the reward is a function of the first eight coordinates
(with the jitter removed).

Transitions (Deep PQR needs choices, so rows come from FREE states only, plan 0 or 1): the row
of member ``i`` at month ``t`` is ``(x_{i,t}, a_{i,t}, x'_i, beta_i)`` with

    x'_i = x_{i,t+1},  beta_i = beta        for a in {none, monthly},
    x'_i = x_{i,t+12}, beta_i = beta^12     for a = annual (the semi-Markov macro-action),

because an annual term bought at month ``t`` locks months ``t+1 .. t+11`` (no choice is
revealed there) and the member is free again at ``t + 12``. Only months ``t < T - 12`` are
used for every action alike, so that whether a row has a next state never depends on its action.

True rewards (the targets of the reward error): ``r(s, none) = 0``, ``r(s, monthly) = u(s,
monthly)`` and the package reward of the macro-action

    R(s, annual) = u(s, annual) + E[ sum_{j=1..11} beta^j u(L_j) | s, annual ],

``L_j`` the locked state ``j`` months after buying (:func:`package_rewards`), so that ``Q(s,
annual) = R(s, annual) + beta^12 E[V(s_12) | s, annual]``: PQR with per-row discounts recovers
exactly these (Geng et al. 2020, anchor identification).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.choice.deep_pqr import DeepPQRConfig, deep_pqr
from prime_science.core import errors
from prime_science.core.types import PRNGKey
from prime_science.membership import model, simulate

__all__ = [
    "BASE_FEATURES",
    "ContinuousConfig",
    "RewardErrors",
    "Transitions",
    "candidate_transitions",
    "deep_pqr_reward_error",
    "feature_names",
    "first_transitions",
    "member_month_features",
    "package_rewards",
    "panel_transitions",
    "true_rewards",
]

BASE_FEATURES = (
    "member",
    "tenure",
    "shipping",
    "video",
    "content",
    "promotion",
    "higher_annual_price",
    "segment",
)
"""The state's features, in column order, before the ``k`` noise features."""


def feature_names(num_noise: int) -> tuple[str, ...]:
    """The column names of a row: :data:`BASE_FEATURES` then ``noise_1 .. noise_k``."""
    return BASE_FEATURES + tuple(f"noise_{j + 1}" for j in range(num_noise))


class ContinuousConfig(NamedTuple):
    """Static settings of the continuous variant (hashable).

    Attributes:
      months: panel months per member (``T``; rows use ``t < T - 1 - lock``).
      burn_in: unrecorded months before the panel (:func:`.simulate.simulate_panel`).
      num_noise: ``k`` pure-noise features, N(0, 1), redrawn every month.
      jitter: width of the within-bucket engagement jitter, in ``[0, 1)`` (0: none).
      test_rows: held-out free-state rows (from other members) the reward error is measured on.
      model: Deep PQR's settings; ``model.discount`` must equal ``params.discount``.
    """

    months: int = 36
    burn_in: int = 36
    num_noise: int = 5
    jitter: float = 0.5
    test_rows: int = 5_000
    model: DeepPQRConfig = DeepPQRConfig(discount=0.99, reward_head="mlp", hidden=32)


class Transitions(NamedTuple):
    """Deep PQR rows from free states (``n`` rows, ``d = 8 + k`` features).

    Attributes:
      states: ``float[n, d]`` features of the month of the choice.
      actions: ``int32[n]`` 0 none, 1 monthly, 2 annual.
      next_states: ``float[n, d]`` features of the next free month (``t + 1``, or ``t + 12``
        after annual).
      discounts: ``float[n]`` ``beta`` or ``beta^12`` (after annual).
      true_rewards: ``float[n, 3]`` ``r(s, none) = 0``, ``u(s, monthly)``, ``R(s, annual)``.
      member: ``int32[n]`` the member each row belongs to (its index in the panel).
    """

    states: jax.Array
    actions: jax.Array
    next_states: jax.Array
    discounts: jax.Array
    true_rewards: jax.Array
    member: jax.Array


class RewardErrors(NamedTuple):
    """Deep PQR's reward error on held-out rows.

    Attributes:
      rmse: ``float[3]`` ``sqrt(mean_i (r_hat(s_i, a) - r(s, a))^2)`` over the held-out rows,
        for ``a`` = none, monthly, annual.
      spread: ``float[3]`` the standard deviation of the true ``r(s_i, a)`` over the same rows
        (the error of the best constant guess, for scale).
      holdout_loglik: mean ``log pi_hat(a_i | s_i)`` on the held-out rows.
      shortfall: ``int32`` training plus test rows the simulated panels could not fill (0
        unless the panels were unusually short of free states; the rows are then padded with
        locked months and the errors are not meaningful).
    """

    rmse: jax.Array
    spread: jax.Array
    holdout_loglik: jax.Array
    shortfall: jax.Array


def package_rewards(
    params: model.MembershipParams, segment=0, *, levels: int = 5, lock_months: int = 11
) -> jax.Array:
    """``float[2 free plans, 6, E^2, 2, 3]``: ``R(s, annual)`` at the free states of ``segment``.

    ``W(L) = u(L) + beta E[W(L') | L]`` on the locked plans, ``W = 0`` once free again, solved
    backwards in ``lock_months`` sweeps (the last locked plan first); then ``R(s, annual) =
    u(s, annual) + beta E[W(L_1) | s, annual]``. Linear in the structural parameters and
    ``benefit_shift``, like ``u``."""
    flows = model.flow_utilities(params, levels, lock_months)[..., model.ANNUAL]

    def sweep(_, locked):
        ahead = model.expected_next_values(params, locked, segment, levels, lock_months)
        return locked.at[2:].set(flows[2:] + params.discount * ahead[2:, ..., model.ANNUAL])

    zeros = jnp.zeros(model.state_shape(levels, lock_months), flows.dtype)
    locked = jax.lax.fori_loop(0, lock_months, sweep, zeros)
    ahead = model.expected_next_values(params, locked, segment, levels, lock_months)
    return flows[:2] + params.discount * ahead[:2, ..., model.ANNUAL]


def true_rewards(
    params: model.MembershipParams, *, levels: int = 5, lock_months: int = 11
) -> jax.Array:
    """``float[2 segments, 2 free plans, 6, E^2, 2, 3, 3 actions]``: ``0``, ``u(s, monthly)``,
    ``R(s, annual)`` at every free state of both segments."""
    monthly = model.flow_utilities(params, levels, lock_months)[:2, ..., model.MONTHLY]
    per_segment = []
    for segment in (0, 1):
        annual = package_rewards(params, segment, levels=levels, lock_months=lock_months)
        per_segment.append(jnp.stack([jnp.zeros_like(monthly), monthly, annual], axis=-1))
    return jnp.stack(per_segment)


def member_month_features(
    key: PRNGKey,
    panel: simulate.Panel,
    *,
    num_noise: int,
    jitter: float,
    levels: int = 5,
    dtype=jnp.float32,
) -> jax.Array:
    """``float[N, T, 8 + k]``: the row ``x`` of every member-month (module docstring)."""
    key_jitter, key_noise = jax.random.split(key)
    num_members, months = panel.plan.shape
    spread = jax.random.uniform(key_jitter, (num_members, months, 2), dtype) - 0.5
    scale = max(levels - 1, 1)
    segment = jnp.broadcast_to(panel.segment[:, None], panel.plan.shape)
    columns = [
        panel.plan == model.PLAN_FREE,
        panel.tenure / (len(model.TENURE_WIDTHS) - 1),
        (panel.ship + jitter * spread[..., 0]) / scale,
        (panel.video + jitter * spread[..., 1]) / scale,
        panel.content,
        panel.regime == 1,
        panel.regime == 2,
        segment,
    ]
    base = jnp.stack([jnp.asarray(c, dtype) for c in columns], axis=-1)
    noise = jax.random.normal(key_noise, (num_members, months, num_noise), dtype)
    return jnp.concatenate([base, noise], axis=-1)


def _check_sizes(num_noise, jitter, months, lock_months) -> None:
    if not isinstance(num_noise, (int, np.integer)) or num_noise < 0:
        errors.fail("num_noise", "an int >= 0", num_noise)
    if not 0.0 <= float(jitter) < 1.0:
        errors.fail("jitter", "a bucket share in [0, 1)", jitter)
    if months < lock_months + 2:
        errors.fail("panel months", f">= {lock_months + 2} (lock + 2)", months)


def candidate_transitions(
    key: PRNGKey,
    panel: simulate.Panel,
    params: model.MembershipParams,
    *,
    num_noise: int,
    jitter: float,
    levels: int = 5,
    lock_months: int = 11,
    reward_table: jax.Array | None = None,
) -> tuple[Transitions, jax.Array]:
    """Every member-month ``t < T - 1 - lock_months`` as a row, member-major (``N (T - 1 -
    lock_months)`` rows), and ``bool`` eligibility (a free state). Jittable (fixed shapes);
    rows of locked months are placeholders to drop. ``reward_table``: :func:`true_rewards`
    (computed when not given)."""
    num_members, months = panel.plan.shape
    _check_sizes(num_noise, jitter, months, lock_months)
    dtype = params.theta_ship.dtype
    if reward_table is None:
        reward_table = true_rewards(params, levels=levels, lock_months=lock_months)
    features = member_month_features(
        key, panel, num_noise=num_noise, jitter=jitter, levels=levels, dtype=dtype
    )
    span = months - 1 - lock_months
    actions = panel.choice[:, :span]
    annual = actions == model.ANNUAL
    month = jnp.arange(span)[None, :] + jnp.where(annual, 1 + lock_months, 1)
    next_features = jnp.take_along_axis(features, month[..., None], axis=1)
    beta = params.discount
    discounts = jnp.where(annual, beta ** (1 + lock_months), beta).astype(dtype)
    plan = jnp.minimum(panel.plan[:, :span], model.PLAN_FREE)
    segment = jnp.broadcast_to(panel.segment[:, None], plan.shape)
    engagement = panel.ship[:, :span] * levels + panel.video[:, :span]
    rewards = reward_table[
        segment, plan, panel.tenure[:, :span], engagement, panel.content[:, :span],
        panel.regime[:, :span],
    ]  # fmt: skip
    member = jnp.broadcast_to(jnp.arange(num_members, dtype=jnp.int32)[:, None], plan.shape)
    flat = lambda x: x.reshape((num_members * span,) + x.shape[2:])  # noqa: E731
    rows = Transitions(
        states=flat(features[:, :span]),
        actions=flat(actions).astype(jnp.int32),
        next_states=flat(next_features),
        discounts=flat(discounts),
        true_rewards=flat(rewards),
        member=flat(member),
    )
    return rows, flat(panel.plan[:, :span] <= model.PLAN_FREE)


def panel_transitions(
    key: PRNGKey, panel: simulate.Panel, params: model.MembershipParams, **kwargs
) -> Transitions:
    """The free-state rows of a panel (eager: the row count depends on the data). Arguments as
    :func:`candidate_transitions`."""
    rows, eligible = candidate_transitions(key, panel, params, **kwargs)
    keep = np.flatnonzero(np.asarray(eligible))
    return jax.tree.map(lambda x: x[keep], rows)


def first_transitions(
    key: PRNGKey,
    panel: simulate.Panel,
    params: model.MembershipParams,
    num_rows: int,
    **kwargs,
) -> tuple[Transitions, jax.Array]:
    """The first ``num_rows`` free-state rows in member-major order (whole members' histories,
    the last one cut) and the shortfall (``int32``: rows missing, padded with locked months).
    Jittable: ``num_rows`` is static. Other arguments as :func:`candidate_transitions`."""
    rows, eligible = candidate_transitions(key, panel, params, **kwargs)
    if not isinstance(num_rows, (int, np.integer)) or not 1 <= num_rows <= eligible.shape[0]:
        errors.fail("num_rows", f"an int in [1, {eligible.shape[0]}] (the panel's rows)", num_rows)
    order = jnp.argsort(~eligible, stable=True)[:num_rows]
    shortfall = jnp.maximum(num_rows - jnp.sum(eligible), 0).astype(jnp.int32)
    return jax.tree.map(lambda x: x[order], rows), shortfall


def _members_for(num_rows: int, config: ContinuousConfig, lock_months: int) -> int:
    """Members to simulate for ``num_rows`` free-state rows: 2.5 x the rows over the usable
    months (the truth has ~57 % of member-months free, so ~1.4 x the rows are available)."""
    return math.ceil(2.5 * num_rows / (config.months - 1 - lock_months))


def _check_config(config: ContinuousConfig, params: model.MembershipParams) -> None:
    if not isinstance(config, ContinuousConfig):
        errors.fail("config", "a ContinuousConfig", type(config).__name__)
    if not isinstance(config.test_rows, (int, np.integer)) or config.test_rows < 1:
        errors.fail("config.test_rows", "an int >= 1", config.test_rows)
    if errors.is_concrete(params.discount) and not math.isclose(
        float(params.discount), config.model.discount, rel_tol=1e-6
    ):
        errors.fail(
            "config.model.discount", f"params.discount ({float(params.discount)})", config.model
        )
    if config.model.anchor != model.NONE or config.model.anchor_reward != 0.0:
        errors.fail("config.model", "anchor 0 (none) with anchor_reward 0", config.model)


def deep_pqr_reward_error(
    key: PRNGKey,
    params: model.MembershipParams,
    num_member_months: int,
    config: ContinuousConfig | None = None,
    *,
    levels: int = 5,
    lock_months: int = 11,
) -> RewardErrors:
    """Deep PQR's reward error with ``num_member_months`` free-state rows (static).

    Simulates a training panel and an independent test panel (other members), turns them into
    rows (:func:`first_transitions`), fits Deep PQR with per-row discounts
    (:func:`prime_science.choice.deep_pqr.deep_pqr`) and compares ``r_hat(s, a)`` with the true
    reward at the ``config.test_rows`` test rows, for each action. Jittable over ``key`` and
    ``params`` (dtype from ``params``); ``num_member_months >= 125`` (one training batch of
    100 after the 20 % hold-out of the default Deep PQR settings); ``config`` defaults to
    :class:`ContinuousConfig`."""
    errors.check_key("key", key)
    config = ContinuousConfig() if config is None else config
    _check_config(config, params)
    if not isinstance(num_member_months, (int, np.integer)) or num_member_months < 1:
        errors.fail("num_member_months", "an int >= 1", num_member_months)
    key_train, key_test, key_rows_train, key_rows_test, key_fit = jax.random.split(key, 5)
    tables = simulate.tables(params, levels=levels, lock_months=lock_months)
    reward_table = true_rewards(params, levels=levels, lock_months=lock_months)
    options = dict(
        num_noise=config.num_noise,
        jitter=config.jitter,
        levels=levels,
        lock_months=lock_months,
        reward_table=reward_table,
    )

    def rows(key_panel, key_rows, num_rows):
        panel, _ = simulate.simulate_panel(
            key_panel,
            params,
            _members_for(num_rows, config, lock_months),
            config.months,
            burn_in=config.burn_in,
            levels=levels,
            lock_months=lock_months,
            tables_=tables,
        )
        return first_transitions(key_rows, panel, params, num_rows, **options)

    train, train_shortfall = rows(key_train, key_rows_train, int(num_member_months))
    test, test_shortfall = rows(key_test, key_rows_test, config.test_rows)
    estimator = deep_pqr(config.model, train.states.shape[1], len(model.ACTIONS))
    fit = estimator.fit(key_fit, train.states, train.actions, train.next_states, train.discounts)
    error = estimator.reward(fit, test.states) - test.true_rewards
    log_policy = estimator.log_policy(fit, test.states)
    return RewardErrors(
        rmse=jnp.sqrt(jnp.mean(error**2, axis=0)),
        spread=jnp.std(test.true_rewards, axis=0),
        holdout_loglik=jnp.mean(jnp.take_along_axis(log_policy, test.actions[:, None], 1)),
        shortfall=train_shortfall + test_shortfall,
    )
