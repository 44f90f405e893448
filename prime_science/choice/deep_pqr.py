"""Deep PQR: inverse reinforcement learning with an anchor action (Geng et al. 2020, ICML).

Model. The agent follows the entropy-regularised optimal policy
``pi(a|s) = exp((Q(s,a) - V(s)) / alpha)`` with ``V = alpha log sum_a exp(Q / alpha)`` and
``Q(s,a) = r(s,a) + beta E[V(s')|s,a]``.
The anchor action ``a_A`` has a KNOWN reward ``r_A`` (a constant, 0 by default). Then

    Q_A(s) = r_A + beta E_{s'|s,a_A}[ Q_A(s') - alpha log pi(a_A | s') ]     (beta-contraction)
    Q(s,a) = Q_A(s) + alpha [log pi(a|s) - log pi(a_A|s)]
    r(s,a) = Q(s,a) - beta E_{s'|s,a}[ Q_A(s') - alpha log pi(a_A | s') ]

Estimation (P -> Q -> R) from transitions ``(s_i, a_i, s'_i)``, optionally with a discount
``beta_i`` per row (a semi-Markov action that lasts ``k`` periods, such as an annual plan whose
next choice comes 12 months later, has ``beta_i = beta^k``; ``beta_i = beta`` by default and
below wherever ``beta`` multiplies a next-state term of row ``i``):

* P-step: logits ``f_theta(s)`` (an MLP) by cross-entropy; ``pi_hat = softmax(f)``.
* Q-step: ``g_phi(s)`` on ANCHOR transitions only, by fitted fixed-point iteration: per epoch the
  target network ``phi^-`` is a frozen copy of ``phi`` taken at the start of the epoch and
  ``y_i = r_A + beta [g_{phi^-}(s'_i) - alpha log pi_hat(a_A|s'_i)]`` is a constant
  (``stop_gradient``); minimise ``sum_{a_i = a_A} (g_phi(s_i) - y_i)^2``.
  ``config.detach_target = False`` reproduces the author's code instead (``gengsinong/SAmQ``): the
  target uses the CURRENT ``phi`` and the gradient flows through ``g_phi(s'_i)`` (a residual-
  gradient method, biased under stochastic transitions) — for comparison only.
* R-step: ``z_i = Q_hat(s_i, a_i) - beta [g_phi(s'_i) - alpha log pi_hat(a_A|s'_i)]`` with
  ``Q_hat(s,a) = g_phi(s) + alpha (f(s)_a - f(s)_{a_A})``; ``E[z | s, a] = r(s, a)`` when
  ``pi_hat`` and ``g`` are exact, so least squares of ``z`` on ``(s, a)`` is unbiased. Heads:
  ``"linear"`` (closed-form least squares per action on ``[s, 1]`` over all rows, so the reward
  reads as coefficients + intercept) or ``"mlp"`` (an MLP ``h_psi(s)_a``, squared error on the
  taken action).

Training (every network step). Rows are split once at random into a training part and a
held-out part (``config.holdout``). Each epoch shuffles the training rows, drops the remainder
and takes Adam (AMSGrad) steps on mini-batches; after the epoch the HELD-OUT loss is computed
(cross-entropy; anchor-row squared Bellman residual with the current network on both sides;
reward squared error) and the best parameters so far are kept; training stops when the
held-out loss has not improved for ``patience`` consecutive epochs or after ``max_epochs``, and
the best parameters are returned. Everything is a ``lax.while_loop`` over epochs of a
``lax.scan`` over batches on ``nnx.split`` parameter pytrees, so :func:`DeepPQR.fit` is pure
and ``jit``/``vmap``-able over keys. Precision follows the inputs: the networks' parameters,
and so every step, are in the float dtype of ``states``.

Deviations from the author's code (``gengsinong/SAmQ``), all deliberate: the Q-step target is
detached (target network); early stopping is on held-out loss with a working patience
counter; inputs are standardised with the training rows' mean and standard deviation;
mini-batches are shuffled each epoch; hidden width 16 (the author: 10); the Q network's output
bias starts at the fixed point among constant functions (else Adam needs thousands of steps to
reach the level of ``Q_A``, ~29 on the SAmQ env); outputs are NOT clamped to ``[-50, 50]`` /
``[-100, 100]`` (clamping silently truncates near-deterministic choices); the linear reward
head is solved in closed form. Kept: two hidden ReLU layers, Xavier-normal weights and zero
biases, AMSGrad with ``lr = 4e-3``, batch 100, patience 5, 100 (P, R) / 200 (Q) epochs at most,
``alpha = 1``, ``r_A = 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from prime_science.core.errors import check_dtype_kind, check_key, check_rank, fail, is_concrete
from prime_science.core.types import PRNGKey

__all__ = [
    "DeepPQRConfig",
    "Standardizer",
    "LinearReward",
    "PolicyFit",
    "AnchorQFit",
    "RewardFit",
    "DeepPQRFit",
    "DeepPQR",
    "MLP",
    "deep_pqr",
]

REWARD_HEADS = ("linear", "mlp")


class DeepPQRConfig(NamedTuple):
    """Static settings (hashable).

    Attributes:
      hidden: width of the two hidden layers (the author: 10).
      depth: number of hidden layers.
      learning_rate: AMSGrad step size.
      batch_size: rows per mini-batch.
      patience: epochs without held-out improvement before stopping.
      max_epochs: epoch cap of the P- and R-steps.
      max_q_epochs: epoch cap of the Q-step.
      holdout: share of rows held out for early stopping and held-out likelihood.
      discount: ``beta`` (known; not identified).
      alpha: entropy temperature (only ``r / alpha`` is identified; 1 as in Rust).
      anchor: index of the anchor action.
      anchor_reward: the anchor's known reward ``r_A`` (a constant).
      detach_target: ``True``: target network + ``stop_gradient`` (ours); ``False``: the
        author's non-detached target (residual gradient).
      reward_head: ``"linear"`` or ``"mlp"``.
    """

    hidden: int = 16
    depth: int = 2
    learning_rate: float = 4e-3
    batch_size: int = 100
    patience: int = 5
    max_epochs: int = 100
    max_q_epochs: int = 200
    holdout: float = 0.2
    discount: float = 0.9
    alpha: float = 1.0
    anchor: int = 0
    anchor_reward: float = 0.0
    detach_target: bool = True
    reward_head: str = "linear"


class MLP(nnx.Module):
    """``depth`` hidden ReLU layers of width ``hidden``, linear output; Xavier-normal kernels,
    zero biases (the author's ``qEstimation``, without output clamping); parameters of
    ``param_dtype``."""

    def __init__(
        self,
        num_inputs: int,
        hidden: int,
        depth: int,
        num_outputs: int,
        *,
        rngs,
        param_dtype=jnp.float32,
    ):
        init = nnx.initializers.xavier_normal()
        sizes = [num_inputs] + [hidden] * depth
        self.layers = nnx.List(
            [
                nnx.Linear(i, o, kernel_init=init, param_dtype=param_dtype, rngs=rngs)
                for i, o in zip(sizes[:-1], sizes[1:], strict=True)
            ]
        )
        self.out = nnx.Linear(
            sizes[-1], num_outputs, kernel_init=init, param_dtype=param_dtype, rngs=rngs
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.out(x)


class Standardizer(NamedTuple):
    """``(s - shift) / scale`` applied to network inputs (training rows' moments)."""

    shift: jax.Array
    scale: jax.Array


class LinearReward(NamedTuple):
    """``r_hat(s, a) = weights[a] . s + intercept[a]`` (raw, unstandardised states)."""

    weights: jax.Array  # [A, d]
    intercept: jax.Array  # [A]


class PolicyFit(NamedTuple):
    """P-step output. ``params``: the logits MLP; ``train_loglik`` / ``holdout_loglik``: mean
    ``log pi_hat(a_i|s_i)`` over the training / held-out rows; ``epochs``: epochs run."""

    params: Any
    train_loglik: jax.Array
    holdout_loglik: jax.Array
    epochs: jax.Array


class AnchorQFit(NamedTuple):
    """Q-step output. ``holdout_loss``: best held-out mean squared Bellman residual on anchor
    rows; ``epochs``: epochs run."""

    params: Any
    holdout_loss: jax.Array
    epochs: jax.Array


class RewardFit(NamedTuple):
    """R-step output. ``params``: :class:`LinearReward` or the reward MLP's parameters;
    ``targets``: ``z_i`` for every row; ``holdout_loss``: mean squared error of ``r_hat(s_i,
    a_i)`` against ``z_i`` on held-out rows; ``epochs``: epochs run (0 for the linear head)."""

    params: Any
    targets: jax.Array
    holdout_loss: jax.Array
    epochs: jax.Array


class DeepPQRFit(NamedTuple):
    """Everything :meth:`DeepPQR.fit` returns (a pytree of arrays; stack it under ``vmap``).

    Attributes:
      standardizer: network input standardisation.
      is_holdout: ``bool[n]`` the rows held out from training.
      policy, anchor_q, reward: the three steps' outputs.
    """

    standardizer: Standardizer
    is_holdout: jax.Array
    policy: PolicyFit
    anchor_q: AnchorQFit
    reward: RewardFit


class DeepPQR(NamedTuple):
    """Deep PQR as pure functions (built by :func:`deep_pqr`; static config in the closure).

    ``fit(key, states, actions, next_states, discounts=None) -> DeepPQRFit`` runs all three
    steps; the steps are exposed too (``fit_policy``, ``fit_anchor_q``, ``fit_reward``) so that
    variants can share a P-step. Evaluation: ``log_policy(fit, states) -> [m, A]``,
    ``anchor_q(fit, states) -> [m]``, ``q_values(fit, states) -> [m, A]``,
    ``reward(fit, states) -> [m, A]``. A ``key`` must be one PRNG key (``jax.random.key``, or a
    legacy ``uint32[2]``) and evaluation ``states`` ``[m, num_features]``; otherwise
    :class:`~prime_science.core.errors.InvalidArgumentError`.
    """

    fit: Callable[..., DeepPQRFit]
    prepare: Callable[..., Any]
    fit_policy: Callable[..., PolicyFit]
    fit_anchor_q: Callable[..., AnchorQFit]
    fit_reward: Callable[..., RewardFit]
    log_policy: Callable[..., jax.Array]
    anchor_q: Callable[..., jax.Array]
    q_values: Callable[..., jax.Array]
    reward: Callable[..., jax.Array]


class _Data(NamedTuple):
    """Validated rows plus the split (internal)."""

    states: jax.Array
    actions: jax.Array
    next_states: jax.Array
    standardizer: Standardizer
    train: jax.Array  # int32[n_train] row ids
    holdout: jax.Array  # int32[n_holdout] row ids
    is_holdout: jax.Array
    discounts: jax.Array | None = None  # float[n] per-row beta_i, or None: beta everywhere


def _check_config(config: DeepPQRConfig, num_features: int, num_actions: int) -> None:
    if not isinstance(num_features, (int, np.integer)) or num_features < 1:
        fail("num_features", "an int >= 1", num_features)
    if not isinstance(num_actions, (int, np.integer)) or num_actions < 2:
        fail("num_actions", "an int >= 2", num_actions)
    if not (isinstance(config.anchor, (int, np.integer)) and 0 <= config.anchor < num_actions):
        fail("config.anchor", f"an action index in [0, {num_actions})", config.anchor)
    if config.reward_head not in REWARD_HEADS:
        fail("config.reward_head", f"one of {REWARD_HEADS}", config.reward_head)
    if not 0.0 < config.holdout < 1.0:
        fail("config.holdout", "a share in (0, 1)", config.holdout)
    if not 0.0 <= config.discount < 1.0:
        fail("config.discount", "beta in [0, 1)", config.discount)
    if not config.alpha > 0.0:
        fail("config.alpha", "a positive temperature", config.alpha)
    if not (np.isfinite(config.learning_rate) and config.learning_rate > 0.0):
        fail("config.learning_rate", "a positive finite step size", config.learning_rate)
    if not np.isfinite(config.anchor_reward):
        fail("config.anchor_reward", "a finite reward", config.anchor_reward)
    for name in ("hidden", "depth", "batch_size", "patience", "max_epochs", "max_q_epochs"):
        value = getattr(config, name)
        if not isinstance(value, (int, np.integer)) or value < 1:
            fail(f"config.{name}", "an int >= 1", value)


def _check_rows(states, actions, next_states, num_features, num_actions, config) -> None:
    check_rank("states", states, 2)
    check_rank("actions", actions, 1)
    check_rank("next_states", next_states, 2)
    check_dtype_kind("states", states, "f", "a float array")
    check_dtype_kind("next_states", next_states, "f", "a float array")
    check_dtype_kind("actions", actions, "iu", "an integer array")
    if np.shape(states)[1] != num_features:
        fail("states", f"{num_features} features per row", f"shape {np.shape(states)}")
    if np.shape(next_states) != np.shape(states):
        fail("next_states", f"the shape of states {np.shape(states)}", np.shape(next_states))
    n = np.shape(states)[0]
    if np.shape(actions)[0] != n:
        fail("actions", f"one per row of states ({n})", f"length {np.shape(actions)[0]}")
    num_holdout = int(round(config.holdout * n))
    if num_holdout < 1 or n - num_holdout < config.batch_size:
        fail(
            "states",
            f"enough rows for >= 1 held-out row and one batch of {config.batch_size} training "
            f"rows at holdout {config.holdout}",
            f"{n} rows",
        )
    if is_concrete(states) and not np.all(np.isfinite(np.asarray(states))):
        fail("states", "finite values", "NaN or inf")
    if is_concrete(next_states) and not np.all(np.isfinite(np.asarray(next_states))):
        fail("next_states", "finite values", "NaN or inf")
    if is_concrete(actions):
        values = np.asarray(actions)
        if values.min() < 0 or values.max() >= num_actions:
            fail(
                "actions",
                f"indices in [0, {num_actions})",
                f"range [{values.min()}, {values.max()}]",
            )
        if not np.any(values == config.anchor):
            fail("actions", f"at least one anchor transition (action {config.anchor})", "none")


def _check_discounts(discounts, num_rows: int) -> None:
    """Per-row discounts: ``float[num_rows]`` in ``[0, 1)``."""
    check_rank("discounts", discounts, 1)
    check_dtype_kind("discounts", discounts, "f", "a float array")
    if np.shape(discounts)[0] != num_rows:
        fail("discounts", f"one per row of states ({num_rows})", f"length {np.shape(discounts)[0]}")
    if is_concrete(discounts):
        values = np.asarray(discounts)
        if not (np.all(np.isfinite(values)) and values.min() >= 0.0 and values.max() < 1.0):
            fail("discounts", "values in [0, 1)", f"range [{values.min()}, {values.max()}]")


def _check_eval_states(states, num_features: int) -> None:
    """States to evaluate a fit at: ``float[m, num_features]``."""
    check_rank("states", states, 2)
    if np.shape(states)[1] != num_features:
        fail("states", f"{num_features} features per row", f"shape {np.shape(states)}")


def _train(
    key: PRNGKey,
    params: Any,
    loss_fn: Callable[[Any, Any, Any], jax.Array],
    holdout_fn: Callable[[Any], jax.Array],
    rows: Any,
    config: DeepPQRConfig,
    max_epochs: int,
) -> tuple[Any, jax.Array, jax.Array]:
    """Mini-batch AMSGrad with held-out early stopping; returns ``(best params, best held-out
    loss, epochs run)``. ``loss_fn(params, frozen, batch)`` gets the frozen copy of the
    parameters taken at the start of the epoch (the Q-step's target network)."""
    num_rows = jax.tree.leaves(rows)[0].shape[0]
    num_batches = num_rows // config.batch_size
    optimizer = optax.amsgrad(config.learning_rate)
    grad_fn = jax.grad(loss_fn)

    def epoch(carry):
        params, opt_state, best, best_loss, bad, count, key = carry
        key, key_order = jax.random.split(key)
        order = jax.random.permutation(key_order, num_rows)[: num_batches * config.batch_size]
        frozen = params

        def batch_step(state, ids):
            params, opt_state = state
            batch = jax.tree.map(lambda x: x[ids], rows)
            updates, opt_state = optimizer.update(grad_fn(params, frozen, batch), opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(
            batch_step, (params, opt_state), order.reshape(num_batches, config.batch_size)
        )
        loss = holdout_fn(params)
        improved = loss < best_loss  # False for NaN
        best = jax.tree.map(lambda new, old: jnp.where(improved, new, old), params, best)
        best_loss = jnp.where(improved, loss, best_loss)
        bad = jnp.where(improved, 0, bad + 1)
        return params, opt_state, best, best_loss, bad, count + 1, key

    def keep_going(carry):
        *_, bad, count, _ = carry
        return (count < max_epochs) & (bad < config.patience)

    dtype = jax.tree.leaves(params)[0].dtype
    carry = (
        params,
        optimizer.init(params),
        params,
        jnp.asarray(jnp.inf, dtype),
        jnp.asarray(0, jnp.int32),
        jnp.asarray(0, jnp.int32),
        key,
    )
    _, _, best, best_loss, _, count, _ = jax.lax.while_loop(keep_going, epoch, carry)
    return best, best_loss, count


def deep_pqr(config: DeepPQRConfig, num_features: int, num_actions: int) -> DeepPQR:
    """Build Deep PQR for ``num_features``-dimensional states and ``num_actions`` actions."""
    _check_config(config, num_features, num_actions)
    anchor, beta, alpha = config.anchor, config.discount, config.alpha

    def abstract(outputs):
        model = nnx.eval_shape(
            lambda: MLP(num_features, config.hidden, config.depth, outputs, rngs=nnx.Rngs(0))
        )
        return nnx.split(model)[0]

    policy_def, q_def = abstract(num_actions), abstract(1)

    def init(key, graphdef_outputs, dtype):
        model = MLP(
            num_features,
            config.hidden,
            config.depth,
            graphdef_outputs,
            rngs=nnx.Rngs(key),
            param_dtype=dtype,
        )
        return nnx.split(model)[1]

    def inputs(standardizer, states):
        return (states - standardizer.shift) / standardizer.scale

    def logits_of(params, standardizer, states):
        return nnx.merge(policy_def, params)(inputs(standardizer, states))

    def anchor_q_of(params, standardizer, states):
        return nnx.merge(q_def, params)(inputs(standardizer, states))[..., 0]

    def prepare(key, states, actions, next_states, discounts=None) -> _Data:
        """Validate (eagerly, when concrete) and split the rows; ``discounts`` (``float[n]``,
        optional) are the per-row ``beta_i``."""
        check_key("key", key)
        _check_rows(states, actions, next_states, num_features, num_actions, config)
        if discounts is not None:
            _check_discounts(discounts, np.shape(states)[0])
        states = jnp.asarray(states)
        next_states = jnp.asarray(next_states, states.dtype)
        actions = jnp.asarray(actions, jnp.int32)
        n = states.shape[0]
        num_holdout = int(round(config.holdout * n))
        order = jax.random.permutation(key, n)
        holdout, train = order[:num_holdout], order[num_holdout:]
        shift = states[train].mean(0)
        scale = jnp.maximum(states[train].std(0), 1e-6)
        is_holdout = jnp.zeros(n, bool).at[holdout].set(True)
        return _Data(
            states,
            actions,
            next_states,
            Standardizer(shift, scale),
            train,
            holdout,
            is_holdout,
            None if discounts is None else jnp.asarray(discounts, states.dtype),
        )

    def fit_policy(key, data: _Data) -> PolicyFit:
        """P-step: cross-entropy with held-out early stopping."""
        check_key("key", key)
        key_init, key_train = jax.random.split(key)

        def nll(params, s, a):
            logp = jax.nn.log_softmax(logits_of(params, data.standardizer, s))
            return -jnp.mean(jnp.take_along_axis(logp, a[:, None], axis=1))

        def loss(params, _frozen, batch):
            return nll(params, *batch)

        rows = (data.states[data.train], data.actions[data.train])
        held = (data.states[data.holdout], data.actions[data.holdout])
        params, _, epochs = _train(
            key_train,
            init(key_init, num_actions, data.states.dtype),
            loss,
            lambda p: nll(p, *held),
            rows,
            config,
            config.max_epochs,
        )
        return PolicyFit(params, -nll(params, *rows), -nll(params, *held), epochs)

    def next_anchor_term(policy: PolicyFit, data: _Data) -> jax.Array:
        """``alpha log pi_hat(a_A | s'_i)`` per row (a constant for the Q- and R-steps)."""
        logp = jax.nn.log_softmax(logits_of(policy.params, data.standardizer, data.next_states))
        return jax.lax.stop_gradient(alpha * logp[:, anchor])

    def fit_anchor_q(key, data: _Data, policy: PolicyFit) -> AnchorQFit:
        """Q-step: fitted fixed-point iteration on anchor rows (see the module docstring)."""
        check_key("key", key)
        key_init, key_train = jax.random.split(key)
        log_anchor_next = next_anchor_term(policy, data)
        weight = (data.actions == anchor).astype(data.states.dtype)

        def residual_loss(params, target_params, s, s_next, log_next, w, discount=beta):
            target_params = jax.lax.stop_gradient(target_params) if config.detach_target else params
            q_next = anchor_q_of(target_params, data.standardizer, s_next)
            target = config.anchor_reward + discount * (q_next - log_next)
            if config.detach_target:
                target = jax.lax.stop_gradient(target)
            error = anchor_q_of(params, data.standardizer, s) - target
            return jnp.sum(w * error**2) / jnp.maximum(jnp.sum(w), 1.0)

        def pick(ids):
            rows = (data.states[ids], data.next_states[ids], log_anchor_next[ids], weight[ids])
            return rows if data.discounts is None else rows + (data.discounts[ids],)

        # Warm start: the output bias is the fixed point among CONSTANT functions,
        # c = (r_A - beta mean_anchor[alpha log pi_hat(a_A|s')]) / (1 - beta) (with per-row
        # discounts: their anchor-row means); Adam's small steps would otherwise need thousands
        # of updates just to reach the level of Q_A.
        anchor_rows = jnp.maximum(jnp.sum(weight), 1.0)
        if data.discounts is None:
            mean_log_next = jnp.sum(weight * log_anchor_next) / anchor_rows
            level = (config.anchor_reward - beta * mean_log_next) / (1.0 - beta)
        else:
            mean_discounted = jnp.sum(weight * data.discounts * log_anchor_next) / anchor_rows
            mean_discount = jnp.sum(weight * data.discounts) / anchor_rows
            level = (config.anchor_reward - mean_discounted) / (1.0 - mean_discount)
        params = init(key_init, 1, data.states.dtype)
        bias = params["out"]["bias"]
        bias[...] = jnp.full((1,), level, bias[...].dtype)
        held = pick(data.holdout)
        params, loss, epochs = _train(
            key_train,
            params,
            lambda p, frozen, batch: residual_loss(p, frozen, *batch),
            lambda p: residual_loss(p, p, *held),
            pick(data.train),
            config,
            config.max_q_epochs,
        )
        return AnchorQFit(params, loss, epochs)

    def targets_of(data: _Data, policy: PolicyFit, anchor_fit: AnchorQFit) -> jax.Array:
        """``z_i = Q_hat(s_i, a_i) - beta [g(s'_i) - alpha log pi_hat(a_A | s'_i)]``."""
        logits = logits_of(policy.params, data.standardizer, data.states)
        taken = jnp.take_along_axis(logits, data.actions[:, None], axis=1)[:, 0]
        q_hat = anchor_q_of(anchor_fit.params, data.standardizer, data.states) + alpha * (
            taken - logits[:, anchor]
        )
        q_next = anchor_q_of(anchor_fit.params, data.standardizer, data.next_states)
        discount = beta if data.discounts is None else data.discounts
        return q_hat - discount * (q_next - next_anchor_term(policy, data))

    def fit_reward(key, data: _Data, policy: PolicyFit, anchor_fit: AnchorQFit) -> RewardFit:
        """R-step: least squares of ``z`` on ``(s, a)`` (linear head: closed form)."""
        check_key("key", key)
        z = jax.lax.stop_gradient(targets_of(data, policy, anchor_fit))
        onehot = jax.nn.one_hot(data.actions, num_actions, dtype=data.states.dtype)
        if config.reward_head == "linear":
            design = jnp.concatenate([data.states, jnp.ones_like(data.states[:, :1])], axis=1)

            def solve(mask):
                coef = jnp.linalg.lstsq(design * mask[:, None], z * mask)[0]
                return coef

            coef = jax.vmap(solve, in_axes=1)(onehot)  # [A, d + 1]
            params = LinearReward(coef[:, :-1], coef[:, -1])
            predicted = jnp.sum((data.states @ params.weights.T + params.intercept) * onehot, 1)
            loss = jnp.mean((predicted - z)[data.holdout] ** 2)
            return RewardFit(params, z, loss, jnp.asarray(0, jnp.int32))

        key_init, key_train = jax.random.split(key)

        def mse(params, s, a_onehot, target):
            out = nnx.merge(policy_def, params)(inputs(data.standardizer, s))
            return jnp.mean((jnp.sum(out * a_onehot, 1) - target) ** 2)

        def pick(ids):
            return data.states[ids], onehot[ids], z[ids]

        held = pick(data.holdout)
        params, loss, epochs = _train(
            key_train,
            init(key_init, num_actions, data.states.dtype),
            lambda p, _frozen, batch: mse(p, *batch),
            lambda p: mse(p, *held),
            pick(data.train),
            config,
            config.max_epochs,
        )
        return RewardFit(params, z, loss, epochs)

    def fit(key, states, actions, next_states, discounts=None) -> DeepPQRFit:
        """All three steps (pure; ``jit``/``vmap`` over ``key`` and the rows); ``discounts``
        (``float[n]``, optional): the per-row ``beta_i`` (module docstring)."""
        check_key("key", key)
        key_split, key_p, key_q, key_r = jax.random.split(key, 4)
        data = prepare(key_split, states, actions, next_states, discounts)
        policy = fit_policy(key_p, data)
        anchor_fit = fit_anchor_q(key_q, data, policy)
        reward_fit = fit_reward(key_r, data, policy, anchor_fit)
        return DeepPQRFit(data.standardizer, data.is_holdout, policy, anchor_fit, reward_fit)

    def log_policy(fit: DeepPQRFit, states) -> jax.Array:
        _check_eval_states(states, num_features)
        return jax.nn.log_softmax(logits_of(fit.policy.params, fit.standardizer, states))

    def anchor_q(fit: DeepPQRFit, states) -> jax.Array:
        _check_eval_states(states, num_features)
        return anchor_q_of(fit.anchor_q.params, fit.standardizer, states)

    def q_values(fit: DeepPQRFit, states) -> jax.Array:
        logits = logits_of(fit.policy.params, fit.standardizer, states)
        return anchor_q(fit, states)[:, None] + alpha * (logits - logits[:, anchor : anchor + 1])

    def reward(fit: DeepPQRFit, states) -> jax.Array:
        _check_eval_states(states, num_features)
        params = fit.reward.params
        if config.reward_head == "linear":
            return states @ params.weights.T + params.intercept
        return nnx.merge(policy_def, params)(inputs(fit.standardizer, states))

    return DeepPQR(
        fit, prepare, fit_policy, fit_anchor_q, fit_reward, log_policy, anchor_q, q_values, reward
    )
