"""A logged-bandit generator with a known policy value, for testing off-policy estimators.

World (:class:`SyntheticBandit`, from :func:`synthetic_bandit`). ``C`` user types ``x`` with
probabilities ``p(x)``, ``A`` items, ``K`` positions. User ``x`` has features
``u_x ~ N(0, I_d / d)``, item ``a`` has ``v_a ~ N(0, I_d)`` and a popularity ``b_a ~ N(0, 1/4)``.
The true click model is logistic with a position effect::

    q(x, a, k) = sigmoid(base_logit + u_x . v_a + b_a - position_effect * k).

The behaviour policy picks the item for position ``k`` of user ``x`` by a softmax::

    pi_b(a | x, k) = softmax_a( beta * (u_x . v_a + b_a + eta_{a,k}) ),

with ``eta_{a,k} ~ N(0, behaviour_noise^2)`` a position-specific taste (so the behaviour differs
across positions) and inverse temperature ``beta = behaviour_temperature`` (0: uniform over
items, as the Open Bandit Dataset's random policy).

Log (:func:`sample_logged_data`). Rows are i.i.d.: ``x ~ p``, ``k ~ Uniform{0..K-1}`` (every
impression fills all ``K`` slots, so a row's slot is uniform), ``a ~ pi_b(. | x, k)``,
``r ~ Bernoulli(q(x, a, k))``, and the logged propensity is the exact ``pi_b(a | x, k)``. The
user type and the item are drawn by the inverse CDF of one uniform each.

Truth (:func:`true_policy_value`). For any policy table ``pi_e[x, a, k]``, the value per row is
the closed form (no sampling)::

    V(pi_e) = sum_x p(x) (1/K) sum_k sum_a pi_e(a | x, k) q(x, a, k).

An evaluation policy is usually a table ``float[C, A, K]`` (for instance
:func:`softmax_policy` of some scores); the estimators of :mod:`prime_science.evaluation.ope`
take it row by row as ``table[context]``.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.core import errors
from prime_science.evaluation.ope import LoggedData

__all__ = [
    "SyntheticBandit",
    "SyntheticLog",
    "synthetic_bandit",
    "softmax_policy",
    "true_policy_value",
    "sample_logged_data",
]


class SyntheticBandit(NamedTuple):
    """A synthetic world (module docstring).

    Attributes:
      context_probs: ``float32[C]`` ``p(x)``.
      click_probs: ``float32[C, A, K]`` the true ``q(x, a, k) = E[r | x, a, k]``.
      behaviour: ``float32[C, A, K]`` ``pi_b(a | x, k)``, summing to 1 over ``a``.
    """

    context_probs: jax.Array
    click_probs: jax.Array
    behaviour: jax.Array


class SyntheticLog(NamedTuple):
    """A sampled log and each row's user type ``context: int32[n]`` (to build
    ``action_dist = table[context]``)."""

    data: LoggedData
    context: jax.Array


def _check_count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        errors.fail(name, f"an integer >= {minimum}", repr(value))
    return int(value)


def synthetic_bandit(
    key: jax.Array,
    num_contexts: int,
    num_actions: int,
    num_positions: int,
    *,
    num_features: int = 4,
    base_logit: float = -1.0,
    position_effect: float = 0.5,
    behaviour_temperature: float = 1.0,
    behaviour_noise: float = 1.0,
) -> SyntheticBandit:
    """Draw a world: user and item features, the click model and the behaviour policy.

    Args:
      key: a PRNG key.
      num_contexts, num_actions, num_positions: ``C``, ``A``, ``K`` (static, ``>= 1``).
      num_features: ``d``, the length of the user and item feature vectors.
      base_logit: the click model's intercept.
      position_effect: the click logit lost per slot further from the first.
      behaviour_temperature: ``beta >= 0``; 0 gives the uniform policy ``1/A``.
      behaviour_noise: standard deviation of the position-specific tastes ``eta``.

    Returns:
      A :class:`SyntheticBandit` (float32).
    """
    errors.check_key("key", key)
    sizes = (num_contexts, num_actions, num_positions, num_features)
    names = ("num_contexts", "num_actions", "num_positions", "num_features")
    num_contexts, num_actions, num_positions, num_features = (
        _check_count(name, value) for name, value in zip(names, sizes, strict=True)
    )
    for name, value in (
        ("behaviour_temperature", behaviour_temperature),
        ("behaviour_noise", behaviour_noise),
    ):
        if errors.is_concrete(value) and not float(value) >= 0:
            errors.fail(name, "a number >= 0", value)
    return _draw_world(
        key,
        num_contexts,
        num_actions,
        num_positions,
        num_features,
        base_logit,
        position_effect,
        behaviour_temperature,
        behaviour_noise,
    )


@partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _draw_world(
    key,
    num_contexts,
    num_actions,
    num_positions,
    num_features,
    base_logit,
    position_effect,
    behaviour_temperature,
    behaviour_noise,
):
    key_users, key_items, key_popularity, key_taste, key_types = jax.random.split(key, 5)
    users = jax.random.normal(key_users, (num_contexts, num_features)) / np.sqrt(num_features)
    items = jax.random.normal(key_items, (num_actions, num_features))
    popularity = 0.5 * jax.random.normal(key_popularity, (num_actions,))
    taste = behaviour_noise * jax.random.normal(key_taste, (num_actions, num_positions))
    affinity = users @ items.T + popularity  # [C, A]
    slots = jnp.arange(num_positions, dtype=jnp.float32)
    click_logit = base_logit + affinity[:, :, None] - position_effect * slots
    behaviour_scores = affinity[:, :, None] + taste
    return SyntheticBandit(
        context_probs=jax.random.dirichlet(key_types, jnp.ones(num_contexts)),
        click_probs=jax.nn.sigmoid(click_logit),
        behaviour=softmax_policy(behaviour_scores, behaviour_temperature),
    )


def softmax_policy(scores: jax.Array, inverse_temperature: Any = 1.0) -> jax.Array:
    """``pi(a | x, k) = softmax_a(inverse_temperature * scores[x, a, k])``: ``float[C, A, K]``
    (0 gives the uniform policy, large values the greedy one)."""
    errors.check_rank("scores", scores, 3)
    return jax.nn.softmax(inverse_temperature * jnp.asarray(scores), axis=1)


def true_policy_value(bandit: SyntheticBandit, action_dist: jax.Array) -> jax.Array:
    """``V(pi_e) = sum_x p(x) (1/K) sum_k sum_a pi_e(a | x, k) q(x, a, k)``, exactly.

    Args:
      bandit: the world.
      action_dist: ``float[C, A, K]`` ``pi_e(a | x, k)`` for every user type.

    Returns:
      The expected reward per logged row under ``pi_e``, a scalar.
    """
    if np.shape(action_dist) != np.shape(bandit.click_probs):
        errors.fail(
            "action_dist",
            f"a table of shape {np.shape(bandit.click_probs)} (contexts, actions, positions)",
            f"shape {np.shape(action_dist)}",
        )
    per_context_position = jnp.sum(action_dist * bandit.click_probs, axis=1)  # [C, K]
    return bandit.context_probs @ jnp.mean(per_context_position, axis=1)


def sample_logged_data(key: jax.Array, bandit: SyntheticBandit, num_rows: int) -> SyntheticLog:
    """``num_rows`` i.i.d. logged rows under the behaviour policy (module docstring).

    Jittable and vmappable over ``key`` (``num_rows`` is static).

    Returns:
      A :class:`SyntheticLog`: the :class:`~prime_science.evaluation.ope.LoggedData` (int32
      action and position, float32 0/1 reward, exact propensities) and the rows' user types.
    """
    errors.check_key("key", key)
    return _sample(key, bandit, _check_count("num_rows", num_rows))


def _inverse_cdf(probs: jax.Array, uniform: jax.Array) -> jax.Array:
    """Index ``j`` with ``F(j - 1) <= u < F(j)`` along the last axis (clipped to the last)."""
    below = jnp.sum(jnp.cumsum(probs, axis=-1) <= uniform[..., None], axis=-1)
    return jnp.minimum(below, probs.shape[-1] - 1)


@partial(jax.jit, static_argnums=2)
def _sample(key, bandit, num_rows):
    num_positions = bandit.click_probs.shape[2]
    key_context, key_position, key_action, key_reward = jax.random.split(key, 4)
    context = _inverse_cdf(bandit.context_probs, jax.random.uniform(key_context, (num_rows,)))
    position = jax.random.randint(key_position, (num_rows,), 0, num_positions)
    behaviour = bandit.behaviour[context, :, position]  # [n, A]
    action = _inverse_cdf(behaviour, jax.random.uniform(key_action, (num_rows,)))
    rows = jnp.arange(num_rows)
    click_prob = bandit.click_probs[context, action, position]
    reward = jax.random.bernoulli(key_reward, click_prob).astype(click_prob.dtype)
    data = LoggedData(
        action=action.astype(jnp.int32),
        position=position.astype(jnp.int32),
        reward=reward,
        pscore=behaviour[rows, action],
    )
    return SyntheticLog(data, context.astype(jnp.int32))
