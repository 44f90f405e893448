"""Deep PQR on a large member panel as a resumable training job.

The estimator is Deep PQR (Geng et al. 2020, ICML; :mod:`prime_science.choice.deep_pqr`) on the
continuous membership rows (:mod:`.continuous`), run as a stream of minibatch steps instead of
one in-memory fit, so that a panel of millions of member-months never sits in memory at once:

* **Phases.** Steps ``[0, P)`` fit the policy logits ``f`` (cross-entropy); steps ``[P, P + Q)``
  the anchor value ``g`` on anchor (``none``) rows of each batch, regressing on
  ``y_i = beta_i [g_{phi^-}(s'_i) - log pi_hat(none | s'_i)]`` with the target network
  ``phi^-`` refreshed every ``target_period`` steps (its output bias starts at the fixed point
  among constants, ``c = -mean(beta_i log pi_hat(none | s'_i)) / (1 - mean(beta_i))`` over the
  first batch's anchor rows); steps ``[P + Q, P + Q + R)`` fit the reward network ``h`` on
  ``z_i = g(s_i) + f(s_i)_{a_i} - f(s_i)_{none} - beta_i [g(s'_i) - log pi_hat(none | s'_i)]``
  (squared error on the taken action). Per-row discounts ``beta_i`` (``beta^12`` after annual)
  carry the annual macro-action. AMSGrad on each network; inputs standardised with the moments
  of block 0.
* **Streaming.** A :class:`PanelSource` yields the rows block by block (e.g. a simulated panel
  of some thousand members at a time, :func:`simulated_source`). Step ``t`` belongs to visit
  ``v = t // steps_per_block`` of block ``order_{v // B}[v mod B]`` (``order_p`` a permutation
  of the ``B`` blocks drawn from ``fold_in(key, p)``) and takes rows
  ``perm_v[(j b + 0 .. b - 1) mod n_block]``, ``j = t mod steps_per_block``, ``b`` the batch
  size, ``perm_v`` a permutation of the block's rows drawn from ``fold_in(key, v)``. So the batch
  at every step is a function of ``(key, step)`` and the data alone.
* **Checkpoints.** Every ``checkpoint_every`` steps (and at the end) the whole
  :class:`TrainingState` (all networks, target network, optimiser states, standardiser, step)
  is saved with :func:`prime_science.core.checkpoint.save_checkpoint` (Orbax, atomic, sha256 per
  leaf). :func:`train` resumes from the latest checkpoint in ``checkpoint_dir``: since the
  state and the batch stream are both restored exactly, an interrupted and resumed run ends with
  the same parameters, bit for bit, as an uninterrupted one. A checkpoint written with other
  settings (network sizes, phases, batch size, key, number of features or blocks) is refused
  with a :class:`~prime_science.core.errors.CheckpointError` naming the setting, and a
  corrupt one with the checkpoint module's error; nothing on disk is changed either way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from prime_science.choice.deep_pqr import (
    MLP,
    AnchorQFit,
    DeepPQRConfig,
    DeepPQRFit,
    PolicyFit,
    RewardFit,
    Standardizer,
)
from prime_science.core import checkpoint, errors
from prime_science.core.types import PRNGKey
from prime_science.membership import continuous, model, simulate

__all__ = [
    "PanelSource",
    "TrainingConfig",
    "TrainingResult",
    "TrainingState",
    "array_source",
    "simulated_source",
    "train",
]


class TrainingConfig(NamedTuple):
    """Static settings of the job (hashable).

    Attributes:
      model: Deep PQR's network and optimiser settings (``hidden``, ``depth``,
        ``learning_rate``); the anchor is ``none`` with reward 0, ``alpha = 1``, and the
        discounts come with the rows (``Transitions.discounts``), not from ``model.discount``.
      batch_size: rows per step.
      policy_steps, anchor_q_steps, reward_steps: steps of the P-, Q- and R-phases.
      target_period: Q-phase steps between refreshes of the target network.
      steps_per_block: consecutive steps drawn from one block before the next.
      checkpoint_every: steps between checkpoints.
      log_every: steps between updates of the progress bar's loss.
    """

    model: DeepPQRConfig = DeepPQRConfig(discount=0.99, hidden=32, reward_head="mlp")
    batch_size: int = 512
    policy_steps: int = 3_000
    anchor_q_steps: int = 6_000
    reward_steps: int = 3_000
    target_period: int = 100
    steps_per_block: int = 50
    checkpoint_every: int = 1_000
    log_every: int = 50

    @property
    def total_steps(self) -> int:
        return self.policy_steps + self.anchor_q_steps + self.reward_steps


class PanelSource(NamedTuple):
    """Rows in blocks: ``load(b)`` returns block ``b`` (``0 <= b < num_blocks``) as
    :class:`~.continuous.Transitions`, the same rows every time it is called with ``b``."""

    num_blocks: int
    load: Callable[[int], continuous.Transitions]


class TrainingState(NamedTuple):
    """Everything a checkpoint holds (arrays only).

    Attributes:
      step: ``int32`` steps done.
      standardizer: network input standardisation (block 0's moments).
      policy, anchor_q, anchor_q_target, reward: the networks' parameters (``nnx.State``).
      policy_opt, anchor_q_opt, reward_opt: their AMSGrad states.
      loss: the last step's minibatch loss.
    """

    step: jax.Array
    standardizer: Standardizer
    policy: Any
    anchor_q: Any
    anchor_q_target: Any
    reward: Any
    policy_opt: Any
    anchor_q_opt: Any
    reward_opt: Any
    loss: jax.Array


class TrainingResult(NamedTuple):
    """What :func:`train` returns.

    Attributes:
      state: the state after the last step run.
      fit: the networks as a :class:`~prime_science.choice.deep_pqr.DeepPQRFit` with the
        ``"mlp"`` reward head, so ``deep_pqr(config.model, d, 3).reward(fit, states)`` (and
        ``log_policy``, ``anchor_q``, ``q_values``) evaluate it; the job computes no held-out
        scores, so ``is_holdout`` is empty, likelihoods and losses are NaN, the targets empty
        and the epoch counts are the phases' steps.
      resumed_from: the checkpoint step the run started from (``None``: a fresh start).
      finished: whether all ``config.total_steps`` are done.
    """

    state: TrainingState
    fit: DeepPQRFit
    resumed_from: int | None
    finished: bool


def array_source(rows: continuous.Transitions, block_rows: int) -> PanelSource:
    """In-memory rows cut into consecutive blocks of ``block_rows`` (the last one may be
    shorter), e.g. for tests or a panel that fits in memory."""
    num_rows = int(np.shape(rows.actions)[0])
    if not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        errors.fail("block_rows", "an int >= 1", block_rows)
    num_blocks = math.ceil(num_rows / block_rows)

    def load(block: int) -> continuous.Transitions:
        return jax.tree.map(lambda x: x[block * block_rows : (block + 1) * block_rows], rows)

    return PanelSource(num_blocks, load)


def simulated_source(
    key: PRNGKey,
    params: model.MembershipParams,
    *,
    num_blocks: int,
    members_per_block: int,
    config: continuous.ContinuousConfig | None = None,
    levels: int = 5,
    lock_months: int = 11,
) -> PanelSource:
    """Blocks of ``members_per_block`` simulated members (``config.months`` months each, so
    ``num_blocks x members_per_block x months`` member-months in all), block ``b`` simulated on
    demand from ``fold_in(key, b)`` (the model solved once) and cut to its free-state rows
    (:func:`~.continuous.panel_transitions`; ``config`` defaults to
    :class:`~.continuous.ContinuousConfig`). The last block loaded is cached."""
    errors.check_key("key", key)
    config = continuous.ContinuousConfig() if config is None else config
    for name, value in (("num_blocks", num_blocks), ("members_per_block", members_per_block)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            errors.fail(name, "an int >= 1", value)
    tables = jax.jit(simulate.tables, static_argnames=("levels", "lock_months"))(
        params, levels=levels, lock_months=lock_months
    )
    reward_table = jax.jit(continuous.true_rewards, static_argnames=("levels", "lock_months"))(
        params, levels=levels, lock_months=lock_months
    )

    @jax.jit
    def candidates(block_key):
        key_panel, key_rows = jax.random.split(block_key)
        panel, _ = simulate.simulate_panel(
            key_panel,
            params,
            members_per_block,
            config.months,
            burn_in=config.burn_in,
            levels=levels,
            lock_months=lock_months,
            tables_=tables,
        )
        return continuous.candidate_transitions(
            key_rows,
            panel,
            params,
            num_noise=config.num_noise,
            jitter=config.jitter,
            levels=levels,
            lock_months=lock_months,
            reward_table=reward_table,
        )

    cache: dict[int, continuous.Transitions] = {}

    def load(block: int) -> continuous.Transitions:
        if not 0 <= block < num_blocks:
            errors.fail("block", f"a block index in [0, {num_blocks})", block)
        if block not in cache:
            rows, eligible = jax.device_get(candidates(jax.random.fold_in(key, block)))
            keep = np.flatnonzero(eligible)
            cache.clear()
            cache[block] = jax.tree.map(lambda x: x[keep], rows)
        return cache[block]

    return PanelSource(int(num_blocks), load)


def _check_config(config: TrainingConfig) -> None:
    if not isinstance(config, TrainingConfig):
        errors.fail("config", "a TrainingConfig", type(config).__name__)
    for name in (
        "batch_size",
        "policy_steps",
        "anchor_q_steps",
        "reward_steps",
        "target_period",
        "steps_per_block",
        "checkpoint_every",
        "log_every",
    ):
        value = getattr(config, name)
        if not isinstance(value, (int, np.integer)) or value < 1:
            errors.fail(f"config.{name}", "an int >= 1", value)
    settings = config.model
    if settings.anchor != model.NONE or settings.anchor_reward != 0.0 or settings.alpha != 1.0:
        errors.fail("config.model", "anchor 0 (none), anchor_reward 0 and alpha 1", settings)
    if settings.reward_head != "mlp":
        errors.fail("config.model.reward_head", '"mlp" (a streamed reward network)', settings)


def _check_block(block: Any, index: int, num_features: int | None) -> None:
    """A block from the source: Transitions with >= 1 row and ``num_features`` columns."""
    name = f"panel_source.load({index})"
    if not isinstance(block, continuous.Transitions):
        errors.fail(name, "a continuous.Transitions record", type(block).__name__)
    errors.check_rank(f"{name}.states", block.states, 2)
    if block.states.shape[0] < 1:
        errors.fail(name, "at least one row", "an empty block")
    if num_features is not None and block.states.shape[1] != num_features:
        errors.fail(f"{name}.states", f"{num_features} features", block.states.shape[1])


def _fingerprint(config: TrainingConfig, key: PRNGKey, source: PanelSource, num_features: int):
    """The settings a checkpoint must share with the run that resumes it (JSON)."""
    return {
        "config": {**config._asdict(), "model": config.model._asdict()},
        "key": np.asarray(_key_data(key)).ravel().tolist(),
        "num_blocks": int(source.num_blocks),
        "num_features": int(num_features),
    }


def _key_data(key: PRNGKey) -> jax.Array:
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return jax.random.key_data(key) if typed else key


def _check_fingerprint(saved: dict, expected: dict, directory: Path, step: int) -> None:
    """Refuse a checkpoint written with other settings, naming the first one that differs."""

    def walk(saved_value, expected_value, name):
        if isinstance(expected_value, dict) and isinstance(saved_value, dict):
            for field, value in expected_value.items():
                walk(saved_value.get(field), value, f"{name}.{field}")
        elif saved_value != expected_value:
            raise errors.CheckpointError(
                f"checkpoint {directory}/step {step}: {name}: expected {expected_value} "
                f"(this run), got {saved_value} (saved)"
            )

    for field, value in expected.items():
        walk(saved.get(field), _json_round_trip(value), field)


def _json_round_trip(value: Any) -> Any:
    """``value`` as it comes back from JSON (tuples become lists)."""
    if isinstance(value, dict):
        return {k: _json_round_trip(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_round_trip(v) for v in value]
    return value


@dataclasses.dataclass
class _BatchStream:
    """Host-side batches as a function of ``(key, step)`` (module docstring)."""

    key: PRNGKey
    source: PanelSource
    batch_size: int
    steps_per_block: int
    num_features: int
    visit: int = -1
    rows: continuous.Transitions | None = None
    order: np.ndarray | None = None

    def block_of(self, visit: int) -> int:
        num_blocks = self.source.num_blocks
        blocks_key = jax.random.fold_in(jax.random.fold_in(self.key, 0), visit // num_blocks)
        return int(jax.random.permutation(blocks_key, num_blocks)[visit % num_blocks])

    def batch(self, step: int) -> continuous.Transitions:
        visit, position = divmod(step, self.steps_per_block)
        if visit != self.visit:
            block = self.block_of(visit)
            self.rows = self.source.load(block)
            _check_block(self.rows, block, self.num_features)
            rows_key = jax.random.fold_in(jax.random.fold_in(self.key, 1), visit)
            self.order = np.asarray(jax.random.permutation(rows_key, self.rows.states.shape[0]))
            self.visit = visit
        offsets = position * self.batch_size + np.arange(self.batch_size)
        ids = self.order[offsets % len(self.order)]
        return jax.tree.map(lambda x: jnp.asarray(np.asarray(x)[ids]), self.rows)


def _networks(config: TrainingConfig, num_features: int, dtype):
    """Graph definitions and initial parameters of the three networks (fixed keys: the
    initial weights are part of the job's settings, not of its randomness)."""
    settings = config.model
    num_actions = len(model.ACTIONS)

    def build(outputs, seed):
        mlp = MLP(
            num_features,
            settings.hidden,
            settings.depth,
            outputs,
            rngs=nnx.Rngs(seed),
            param_dtype=dtype,
        )
        return nnx.split(mlp)

    return build(num_actions, 0), build(1, 1), build(num_actions, 2)


def _initial_state(config, standardizer, networks, optimizer) -> TrainingState:
    (_, policy), (_, anchor_q), (_, reward) = networks
    dtype = standardizer.shift.dtype
    return TrainingState(
        step=jnp.asarray(0, jnp.int32),
        standardizer=standardizer,
        policy=policy,
        anchor_q=anchor_q,
        anchor_q_target=anchor_q,
        reward=reward,
        policy_opt=optimizer.init(policy),
        anchor_q_opt=optimizer.init(anchor_q),
        reward_opt=optimizer.init(reward),
        loss=jnp.asarray(jnp.nan, dtype),
    )


def _step_functions(config: TrainingConfig, networks, optimizer):
    """Jitted ``(state, batch) -> state`` for each phase, and the anchor-Q warm start."""
    (policy_def, _), (q_def, _), (reward_def, _) = networks

    def net(graphdef, params, standardizer, states):
        return nnx.merge(graphdef, params)((states - standardizer.shift) / standardizer.scale)

    def log_anchor_next(state, batch):
        logits = net(policy_def, state.policy, state.standardizer, batch.next_states)
        return jax.nn.log_softmax(logits)[:, model.NONE]

    def anchor_value(params, standardizer, states):
        return net(q_def, params, standardizer, states)[:, 0]

    def apply(params, opt_state, grads):
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def policy_step(state: TrainingState, batch) -> TrainingState:
        def loss_fn(params):
            logp = jax.nn.log_softmax(net(policy_def, params, state.standardizer, batch.states))
            return -jnp.mean(jnp.take_along_axis(logp, batch.actions[:, None], axis=1))

        loss, grads = jax.value_and_grad(loss_fn)(state.policy)
        policy, opt = apply(state.policy, state.policy_opt, grads)
        return state._replace(step=state.step + 1, policy=policy, policy_opt=opt, loss=loss)

    @jax.jit
    def warm_start(state: TrainingState, batch) -> TrainingState:
        weight = (batch.actions == model.NONE).astype(batch.discounts.dtype)
        count = jnp.maximum(jnp.sum(weight), 1.0)
        mean_discounted = jnp.sum(weight * batch.discounts * log_anchor_next(state, batch)) / count
        mean_discount = jnp.sum(weight * batch.discounts) / count
        level = -mean_discounted / (1.0 - mean_discount)
        anchor_q = jax.tree_util.tree_map_with_path(
            lambda path, leaf: (
                jnp.full_like(leaf, level)
                if jax.tree_util.keystr(path).startswith("['out']['bias']")
                else leaf
            ),
            state.anchor_q,
        )
        return state._replace(anchor_q=anchor_q, anchor_q_opt=optimizer.init(anchor_q))

    @jax.jit
    def anchor_q_step(state: TrainingState, batch, refresh) -> TrainingState:
        target_params = jax.tree.map(
            lambda new, old: jnp.where(refresh, new, old), state.anchor_q, state.anchor_q_target
        )
        weight = (batch.actions == model.NONE).astype(batch.discounts.dtype)
        next_value = anchor_value(target_params, state.standardizer, batch.next_states)
        target = batch.discounts * (next_value - log_anchor_next(state, batch))

        def loss_fn(params):
            error = anchor_value(params, state.standardizer, batch.states) - target
            return jnp.sum(weight * error**2) / jnp.maximum(jnp.sum(weight), 1.0)

        loss, grads = jax.value_and_grad(loss_fn)(state.anchor_q)
        anchor_q, opt = apply(state.anchor_q, state.anchor_q_opt, grads)
        return state._replace(
            step=state.step + 1,
            anchor_q=anchor_q,
            anchor_q_target=target_params,
            anchor_q_opt=opt,
            loss=loss,
        )

    @jax.jit
    def reward_step(state: TrainingState, batch) -> TrainingState:
        logits = net(policy_def, state.policy, state.standardizer, batch.states)
        taken = jnp.take_along_axis(logits, batch.actions[:, None], axis=1)[:, 0]
        q_taken = anchor_value(state.anchor_q, state.standardizer, batch.states) + (
            taken - logits[:, model.NONE]
        )
        next_value = anchor_value(state.anchor_q, state.standardizer, batch.next_states)
        z = q_taken - batch.discounts * (next_value - log_anchor_next(state, batch))

        def loss_fn(params):
            out = net(reward_def, params, state.standardizer, batch.states)
            return jnp.mean((jnp.take_along_axis(out, batch.actions[:, None], 1)[:, 0] - z) ** 2)

        loss, grads = jax.value_and_grad(loss_fn)(state.reward)
        reward, opt = apply(state.reward, state.reward_opt, grads)
        return state._replace(step=state.step + 1, reward=reward, reward_opt=opt, loss=loss)

    return policy_step, warm_start, anchor_q_step, reward_step


@functools.lru_cache(maxsize=8)
def _job(config: TrainingConfig, num_features: int, dtype_name: str):
    """Networks, optimiser and jitted steps of one setting, built once per process (so a
    resumed run in the same process reuses the compiled steps)."""
    networks = _networks(config, num_features, jnp.dtype(dtype_name))
    optimizer = optax.amsgrad(config.model.learning_rate)
    return networks, optimizer, _step_functions(config, networks, optimizer)


def _progress(total: int, initial: int, enabled: bool):
    """A tqdm bar on stderr if tqdm is installed, else a plain stderr line per update."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None:
        return tqdm(total=total, initial=initial, file=sys.stderr, disable=not enabled)

    class Line:
        def __init__(self):
            self.done = initial

        def update(self, count):
            self.done += count

        def set_postfix(self, **values):
            if enabled:
                fields = " ".join(f"{k}={v}" for k, v in values.items())
                print(f"step {self.done}/{total} {fields}", file=sys.stderr)

        def close(self):
            pass

    return Line()


def _as_fit(state: TrainingState, config: TrainingConfig) -> DeepPQRFit:
    nan = jnp.asarray(jnp.nan, state.loss.dtype)
    steps = lambda n: jnp.asarray(n, jnp.int32)  # noqa: E731
    return DeepPQRFit(
        standardizer=state.standardizer,
        is_holdout=jnp.zeros(0, bool),
        policy=PolicyFit(state.policy, nan, nan, steps(config.policy_steps)),
        anchor_q=AnchorQFit(state.anchor_q, nan, steps(config.anchor_q_steps)),
        reward=RewardFit(state.reward, jnp.zeros(0, nan.dtype), nan, steps(config.reward_steps)),
    )


def train(
    config: TrainingConfig,
    panel_source: PanelSource,
    checkpoint_dir: str | Path,
    *,
    key: PRNGKey,
    stop_after: int | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Run (or resume) the job (module docstring) and return the networks.

    Args:
      config: the job's settings.
      panel_source: the rows, in blocks (:func:`simulated_source`, :func:`array_source`).
      checkpoint_dir: where checkpoints go; if it already holds some, the run resumes from the
        latest (after checking it was written with the same settings, key and source shape).
      key: one PRNG key: the batch at step ``t`` is a function of ``(key, t)``.
      stop_after: stop once this many steps (counted from 0, not from the resume point) are
        done, after checkpointing them: an interruption on purpose (time limits, tests).
      progress: show a progress bar with the minibatch loss on stderr.

    Raises:
      InvalidArgumentError: a bad setting or block. CheckpointError: a checkpoint in
        ``checkpoint_dir`` that does not match this run, or is corrupt (nothing is changed on
        disk).
    """
    _check_config(config)
    errors.check_key("key", key)
    if not isinstance(panel_source, PanelSource) or panel_source.num_blocks < 1:
        errors.fail("panel_source", "a PanelSource with >= 1 block", panel_source)
    total = config.total_steps
    if stop_after is not None and (
        not isinstance(stop_after, (int, np.integer)) or not 0 <= stop_after <= total
    ):
        errors.fail("stop_after", f"an int in [0, {total}] or None", stop_after)
    end = total if stop_after is None else int(stop_after)

    first = panel_source.load(0)
    _check_block(first, 0, None)
    num_features = int(first.states.shape[1])
    states = jnp.asarray(first.states)
    dtype = states.dtype
    standardizer = Standardizer(states.mean(0), jnp.maximum(states.std(0), 1e-6))
    networks, optimizer, steps = _job(config, num_features, jnp.dtype(dtype).name)
    state = _initial_state(config, standardizer, networks, optimizer)
    fingerprint = _fingerprint(config, key, panel_source, num_features)

    directory = Path(checkpoint_dir)
    resumed_from = checkpoint.latest_step(directory)
    if resumed_from is not None:
        state, saved = checkpoint.restore_checkpoint(directory, state, step=resumed_from)
        _check_fingerprint(saved, fingerprint, directory, resumed_from)

    policy_step, warm_start, anchor_q_step, reward_step = steps
    stream = _BatchStream(
        key, panel_source, config.batch_size, config.steps_per_block, num_features
    )
    start = int(state.step)
    bar = _progress(total, start, progress)
    shown = start
    q_start = config.policy_steps
    r_start = q_start + config.anchor_q_steps
    for step in range(start, end):
        batch = stream.batch(step)
        if step < q_start:
            state = policy_step(state, batch)
        elif step < r_start:
            if step == q_start:
                state = warm_start(state, batch)
            refresh = (step - q_start) % config.target_period == 0
            state = anchor_q_step(state, batch, jnp.asarray(refresh))
        else:
            state = reward_step(state, batch)
        done = step + 1
        if done % config.checkpoint_every == 0 or done == end:
            checkpoint.save_checkpoint(directory, state, step=done, metadata=fingerprint)
        if done % config.log_every == 0 or done == end:
            phase = "policy" if step < q_start else "anchor Q" if step < r_start else "reward"
            bar.set_postfix(phase=phase, loss=f"{float(state.loss):.4g}")
            bar.update(done - shown)
            shown = done
    bar.close()
    return TrainingResult(state, _as_fit(state, config), resumed_from, int(state.step) == total)
