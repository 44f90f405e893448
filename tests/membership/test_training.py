"""The Deep PQR training job: exact resume, refused checkpoints, streaming, bad settings."""

import hashlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice.deep_pqr import deep_pqr
from prime_science.core.errors import CheckpointError, InvalidArgumentError
from prime_science.membership import continuous, training

pytestmark = pytest.mark.slow  # each test compiles the job's four step functions (~5-10 s)

TINY = training.TrainingConfig(
    model=training.TrainingConfig().model._replace(hidden=4, depth=1),
    batch_size=8,
    policy_steps=3,
    anchor_q_steps=3,
    reward_steps=3,
    target_period=2,
    steps_per_block=2,
    checkpoint_every=4,
    log_every=1,
)


def tiny_rows(num_rows=40, num_features=3, seed=0):
    """Random rows (the job's arithmetic does not care where they come from)."""
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 3, num_rows).astype(np.int32)
    return continuous.Transitions(
        states=rng.normal(size=(num_rows, num_features)).astype(np.float32),
        actions=actions,
        next_states=rng.normal(size=(num_rows, num_features)).astype(np.float32),
        discounts=np.where(actions == 2, 0.99**12, 0.99).astype(np.float32),
        true_rewards=np.zeros((num_rows, 3), np.float32),
        member=np.arange(num_rows, dtype=np.int32),
    )


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with the sha256 of its bytes."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


@pytest.fixture(scope="module")
def source():
    return training.array_source(tiny_rows(), 12)  # 4 blocks, the last of 4 rows


@pytest.fixture(scope="module")
def uninterrupted(source, tmp_path_factory):
    directory = tmp_path_factory.mktemp("uninterrupted")
    return training.train(TINY, source, directory, key=jax.random.key(7), progress=False)


def test_resume_gives_the_same_parameters_bit_for_bit(source, uninterrupted, tmp_path):
    """Stop after step 5 (mid-way through a block visit and through the Q-phase, between
    target refreshes), resume, finish: every leaf of the state (networks, target network,
    optimiser states, step) equals the uninterrupted run's."""
    assert uninterrupted.finished and uninterrupted.resumed_from is None
    assert int(uninterrupted.state.step) == TINY.total_steps
    part = training.train(TINY, source, tmp_path, key=jax.random.key(7), stop_after=5)
    assert not part.finished and int(part.state.step) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000004", "step_00000005"]
    resumed = training.train(TINY, source, tmp_path, key=jax.random.key(7), progress=False)
    assert resumed.resumed_from == 5 and resumed.finished
    assert leaves_equal(resumed.state, uninterrupted.state)
    # a different key draws other batches: the test can fail
    other = training.train(TINY, source, tmp_path / "other", key=jax.random.key(8))
    assert not leaves_equal(other.state.policy, uninterrupted.state.policy)


def test_fit_evaluates_through_deep_pqr(uninterrupted):
    """The returned fit is a DeepPQRFit: Deep PQR's q_values and reward read it, and Q is
    ``g(s) + f(s) - f(s)_none``."""
    estimator = deep_pqr(TINY.model, 3, 3)
    states = jnp.asarray(tiny_rows(5, seed=1).states)
    reward = estimator.reward(uninterrupted.fit, states)
    q = estimator.q_values(uninterrupted.fit, states)
    log_policy = estimator.log_policy(uninterrupted.fit, states)
    assert reward.shape == (5, 3) and np.all(np.isfinite(reward))
    np.testing.assert_allclose(
        q - q[:, :1],
        log_policy - log_policy[:, :1],
        atol=1e-3,  # Q ~ 1e2 in float32
    )


def test_mismatched_or_corrupt_checkpoints_are_refused_and_left_intact(source, tmp_path):
    training.train(TINY, source, tmp_path, key=jax.random.key(7), stop_after=4, progress=False)
    before = snapshot(tmp_path)
    cases = [
        (TINY._replace(batch_size=4), jax.random.key(7), "config.batch_size"),
        (TINY._replace(policy_steps=4), jax.random.key(7), "config.policy_steps"),
        (TINY, jax.random.key(9), "key"),
        (TINY._replace(model=TINY.model._replace(hidden=5)), jax.random.key(7), "like"),
    ]
    for config, key, name in cases:
        with pytest.raises(CheckpointError, match=name):
            training.train(config, source, tmp_path, key=key, progress=False)
        assert snapshot(tmp_path) == before
    other_source = training.array_source(tiny_rows(), 20)
    with pytest.raises(CheckpointError, match="num_blocks"):
        training.train(TINY, other_source, tmp_path, key=jax.random.key(7), progress=False)
    array_files = [p for p in (tmp_path / "step_00000004").rglob("*") if p.is_file()]
    largest = max(array_files, key=lambda p: p.stat().st_size)
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    largest.write_bytes(bytes(data))
    corrupted = snapshot(tmp_path)
    with pytest.raises(CheckpointError):
        training.train(TINY, source, tmp_path, key=jax.random.key(7), progress=False)
    assert snapshot(tmp_path) == corrupted


def test_blocks_are_loaded_one_visit_at_a_time(tmp_path):
    """The job asks the source for one block per visit of ``steps_per_block`` steps (plus
    block 0 once for the standardiser), each visit a block of a fresh permutation."""
    rows = tiny_rows()
    inner = training.array_source(rows, 12)
    loads = []

    def load(block):
        loads.append(block)
        return inner.load(block)

    source = training.PanelSource(inner.num_blocks, load)
    training.train(TINY, source, tmp_path, key=jax.random.key(3), progress=False)
    visits = loads[1:]
    assert len(visits) == -(-TINY.total_steps // TINY.steps_per_block)
    assert sorted(visits[:4]) == [0, 1, 2, 3]  # the first pass visits every block once


def test_bad_settings_raise_named_errors(source, tmp_path):
    key = jax.random.key(0)
    cases = [
        (TINY._replace(batch_size=0), {}, "config.batch_size"),
        (TINY._replace(model=TINY.model._replace(reward_head="linear")), {}, "reward_head"),
        (TINY._replace(model=TINY.model._replace(anchor=1)), {}, "config.model"),
        (TINY, {"stop_after": TINY.total_steps + 1}, "stop_after"),
        (TINY, {"key": 3}, "key"),
    ]
    for config, overrides, name in cases:
        with pytest.raises(InvalidArgumentError, match=name):
            training.train(config, source, tmp_path, **{"key": key, **overrides})
    bad_block = training.PanelSource(1, lambda b: tiny_rows(num_features=4) if b else None)
    with pytest.raises(InvalidArgumentError, match="panel_source.load"):
        training.train(TINY, bad_block, tmp_path, key=key)
    assert not any(tmp_path.iterdir())
