"""Tests for :mod:`prime_science.core.checkpoint`.

The oracle is the state itself: whatever was saved must come back bit for bit, and a run that
is checkpointed and resumed half-way must end exactly where the uninterrupted run ends.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.core import checkpoint as checkpoint_module
from prime_science.core.checkpoint import latest_step, restore_checkpoint, save_checkpoint
from prime_science.core.errors import CheckpointError, InvalidArgumentError

# When several array reads fail at once (a corrupt checkpoint), Orbax closes its event loop
# while TensorStore still holds the other reads; their callbacks then raise "Event loop is
# closed" in a background thread, moments later and possibly during the next test. That is
# noise from Orbax's internals, not a failure of the code under test.
pytestmark = pytest.mark.filterwarnings(
    r"ignore:(?s).*Event loop is closed:pytest.PytestUnraisableExceptionWarning"
)


class ToyState(NamedTuple):
    alpha: jax.Array
    beta: jax.Array
    active: jax.Array
    count: jax.Array


class RenamedState(NamedTuple):
    alpha: jax.Array
    beta: jax.Array
    active: jax.Array
    pulls: jax.Array


class ShortState(NamedTuple):
    alpha: jax.Array
    beta: jax.Array
    active: jax.Array


class Inner(NamedTuple):
    mean: jax.Array
    log_scale: jax.Array


class NestedState(NamedTuple):
    inner: Inner
    count: jax.Array


def make_state(num_arms: int = 6, offset: float = 0.0) -> ToyState:
    """A state with awkward values: signed zero, NaN, infinities, extreme ints."""
    alpha = np.array([0.5, -0.0, np.nan, np.inf, -np.inf, 1e-38], np.float32)[:num_arms] + offset
    return ToyState(
        alpha=jnp.asarray(alpha),
        beta=jnp.linspace(1.0, 2.0, num_arms, dtype=jnp.float32) + offset,
        active=jnp.arange(num_arms) % 2 == 0,
        count=jnp.array([0, 1, -1, 2**31 - 1, -(2**31), 7], jnp.int32)[:num_arms],
    )


def assert_states_bit_identical(actual, expected) -> None:
    """Same tree type, and every leaf equal in dtype, shape and raw bytes."""
    assert type(actual) is type(expected)
    for got, want in zip(jax.tree.leaves(actual), jax.tree.leaves(expected), strict=True):
        assert isinstance(got, jax.Array)
        got, want = np.asarray(got), np.asarray(want)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.ravel(got).view(np.uint8), np.ravel(want).view(np.uint8))


def state_files(step_dir: Path) -> list[Path]:
    """The files Orbax wrote for the array tree, largest first."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file()]
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True)


def array_data_files(step_dir: Path) -> list[Path]:
    """Orbax's chunk files (inside its ``d/`` folders)."""
    return [p for p in state_files(step_dir) if p.parent.name == "d"]


# Round trips.


def test_round_trip_is_bit_identical_and_returns_metadata(tmp_path):
    state = make_state()
    metadata = {"policy": "beta_bernoulli", "prior": {"alpha": 1.0, "beta": 2.0}, "arms": [1, 2]}
    path = save_checkpoint(tmp_path, state, step=42, metadata=metadata)

    assert path == tmp_path.absolute() / "step_00000042"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000042"]
    record = json.loads((path / "metadata.json").read_text())
    assert [leaf["path"] for leaf in record["leaves"]] == [".alpha", ".beta", ".active", ".count"]
    assert record["leaves"][2] == {**record["leaves"][2], "shape": [6], "dtype": "bool"}

    restored, restored_metadata = restore_checkpoint(tmp_path, state)
    assert_states_bit_identical(restored, state)
    assert restored_metadata == {**metadata, "step": 42}


def test_round_trip_from_abstract_template_and_nested_tree(tmp_path):
    state = NestedState(
        inner=Inner(mean=jnp.arange(3.0), log_scale=-jnp.ones((2, 3))),
        count=jnp.int32(5),
    )
    save_checkpoint(tmp_path, state, step=0)
    like = jax.eval_shape(lambda: state)

    restored, metadata = restore_checkpoint(tmp_path, like)

    assert_states_bit_identical(restored, state)
    assert metadata == {"step": 0}


def test_restore_places_leaves_on_the_template_sharding(tmp_path):
    state = make_state()
    save_checkpoint(tmp_path, state, step=1)
    device = jax.devices()[-1]
    sharding = jax.sharding.SingleDeviceSharding(device)
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)

    restored, _ = restore_checkpoint(tmp_path, like)

    for leaf in restored:
        assert leaf.sharding == sharding
    unsharded, _ = restore_checkpoint(tmp_path, jax.eval_shape(lambda: state))
    for leaf in unsharded:
        assert leaf.devices() == {jax.devices()[0]}


@pytest.mark.sharding
def test_restore_onto_an_arm_sharded_template(tmp_path):
    if jax.device_count() < 2:
        pytest.skip("needs 2+ devices: XLA_FLAGS=--xla_force_host_platform_device_count=2")
    mesh = jax.make_mesh((2,), ("arms",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("arms"))
    state = jax.device_put(make_state(), jax.devices()[1])
    save_checkpoint(tmp_path, state, step=1)
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)

    restored, _ = restore_checkpoint(tmp_path, like)

    assert_states_bit_identical(restored, state)
    for leaf in restored:
        assert leaf.sharding == sharding


# Steps.


def test_latest_step_picks_the_highest_and_restore_follows(tmp_path):
    for step in (3, 12, 7):
        save_checkpoint(tmp_path, make_state(offset=step), step=step)

    assert latest_step(tmp_path) == 12
    latest, metadata = restore_checkpoint(tmp_path, make_state())
    assert metadata["step"] == 12
    assert_states_bit_identical(latest, make_state(offset=12))
    earlier, metadata = restore_checkpoint(tmp_path, make_state(), step=7)
    assert metadata["step"] == 7
    assert_states_bit_identical(earlier, make_state(offset=7))


def test_latest_step_of_a_missing_or_empty_directory_is_none(tmp_path):
    assert latest_step(tmp_path / "nowhere") is None
    assert latest_step(tmp_path) is None
    (tmp_path / "step_7").mkdir()  # not a name save_checkpoint writes
    (tmp_path / "notes.txt").write_text("x")
    assert latest_step(tmp_path) is None


def test_existing_step_needs_overwrite(tmp_path):
    save_checkpoint(tmp_path, make_state(), step=5, metadata={"run": "first"})

    with pytest.raises(CheckpointError, match="step: expected a step not yet saved"):
        save_checkpoint(tmp_path, make_state(offset=1.0), step=5)
    restored, metadata = restore_checkpoint(tmp_path, make_state())
    assert_states_bit_identical(restored, make_state())
    assert metadata["run"] == "first"

    save_checkpoint(tmp_path, make_state(offset=1.0), step=5, metadata={"run": "2"}, overwrite=True)
    restored, metadata = restore_checkpoint(tmp_path, make_state())
    assert_states_bit_identical(restored, make_state(offset=1.0))
    assert metadata["run"] == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000005"]


# Atomicity.


class SimulatedCrash(Exception):
    """Stands in for whatever stops a save half-way."""


def test_save_interrupted_while_writing_metadata_keeps_previous(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, make_state(), step=1)

    def crash(path, record):
        path.write_text('{"format_version": 1, "st')  # half a file, then the crash
        raise SimulatedCrash

    monkeypatch.setattr(checkpoint_module, "_write_metadata", crash)
    with pytest.raises(SimulatedCrash):
        save_checkpoint(tmp_path, make_state(offset=1.0), step=2)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000001"]
    assert latest_step(tmp_path) == 1
    restored, metadata = restore_checkpoint(tmp_path, make_state())
    assert_states_bit_identical(restored, make_state())
    assert metadata["step"] == 1


def test_save_killed_while_writing_arrays_leaves_nothing_restore_picks(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, make_state(), step=1)
    save_arrays = checkpoint_module._save_arrays

    def crash(path, state):
        save_arrays(path, state)
        for file in array_data_files(path.parent):
            file.write_bytes(file.read_bytes()[:3])  # torn writes
        raise SimulatedCrash

    # A hard kill also skips the clean-up, so the temporary directory stays behind.
    monkeypatch.setattr(checkpoint_module, "_save_arrays", crash)
    monkeypatch.setattr(checkpoint_module, "_remove_tree", lambda path: None)
    with pytest.raises(CheckpointError, match="expected Orbax to write") as excinfo:
        save_checkpoint(tmp_path, make_state(offset=1.0), step=2)
    assert isinstance(excinfo.value.__cause__, SimulatedCrash)

    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "step_00000001"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-step_00000002")
    assert latest_step(tmp_path) == 1
    restored, metadata = restore_checkpoint(tmp_path, make_state())
    assert_states_bit_identical(restored, make_state())
    assert metadata["step"] == 1
    with pytest.raises(CheckpointError, match=r"step: expected one of the saved steps \[1\]"):
        restore_checkpoint(tmp_path, make_state(), step=2)


def test_orbax_write_failure_is_a_checkpoint_error(tmp_path, monkeypatch):
    def broken(path, state):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module, "_save_arrays", broken)
    with pytest.raises(CheckpointError, match="disk full") as excinfo:
        save_checkpoint(tmp_path, make_state(), step=3)
    assert isinstance(excinfo.value.__cause__, OSError)
    assert list(tmp_path.iterdir()) == []


# Corrupt checkpoints.


@pytest.mark.parametrize("damage", ["delete", "truncate", "overwrite"])
def test_damaged_array_files_raise(tmp_path, damage):
    path = save_checkpoint(tmp_path, make_state(), step=1)
    files = array_data_files(path)
    assert files
    for file in files:
        if damage == "delete":
            file.unlink()
        elif damage == "truncate":
            file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
        else:
            file.write_bytes(bytes(file.stat().st_size))

    with pytest.raises(CheckpointError, match="expected readable array files") as excinfo:
        restore_checkpoint(tmp_path, make_state())
    assert excinfo.value.__cause__ is not None


def test_flipped_bit_in_array_data_is_caught(tmp_path):
    # Large enough that Orbax stores the chunk in its own file, where TensorStore does not
    # notice a flipped bit: only the sha256 in metadata.json does.
    big = ToyState(
        alpha=jnp.asarray(np.random.default_rng(0).standard_normal(50_000), jnp.float32),
        beta=jnp.ones(50_000, jnp.float32),
        active=jnp.ones(50_000, bool),
        count=jnp.zeros(50_000, jnp.int32),
    )
    path = save_checkpoint(tmp_path, big, step=1)
    largest = state_files(path)[0]
    data = bytearray(largest.read_bytes())
    data[len(data) // 2] ^= 0x01
    largest.write_bytes(bytes(data))

    with pytest.raises(CheckpointError):
        restore_checkpoint(tmp_path, big)


def test_checksum_mismatch_names_the_leaf(tmp_path):
    path = save_checkpoint(tmp_path, make_state(), step=1)
    record_path = path / "metadata.json"
    record = json.loads(record_path.read_text())
    record["leaves"][1]["sha256"] = "0" * 64
    record_path.write_text(json.dumps(record))

    with pytest.raises(CheckpointError, match=r"state\.beta: expected array bytes with sha256"):
        restore_checkpoint(tmp_path, make_state())


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (None, "expected a metadata file, got none"),
        ("{not json", "expected valid JSON"),
        ('{"step": 1}', "expected a JSON object with keys"),
    ],
)
def test_bad_metadata_file_raises(tmp_path, contents, message):
    path = save_checkpoint(tmp_path, make_state(), step=1)
    if contents is None:
        (path / "metadata.json").unlink()
    else:
        (path / "metadata.json").write_text(contents)

    with pytest.raises(CheckpointError, match=message):
        restore_checkpoint(tmp_path, make_state())


# Templates that do not match.


@pytest.mark.parametrize(
    ("like", "message"),
    [
        (make_state(num_arms=5), r"like\.alpha: expected shape \(6,\) as saved, got shape \(5,\)"),
        (
            make_state()._replace(count=jnp.zeros(6, jnp.float32)),
            r"like\.count: expected dtype int32 as saved, got dtype float32",
        ),
        (RenamedState(*make_state()), r"missing \['\.count'\], unexpected \['\.pulls'\]"),
        (ShortState(*make_state()[:3]), r"got 3 leaves .*missing \['\.count'\]"),
    ],
    ids=["shape", "dtype", "renamed-field", "missing-field"],
)
def test_mismatched_template_raises_naming_the_field(tmp_path, like, message):
    save_checkpoint(tmp_path, make_state(), step=1)
    with pytest.raises(CheckpointError, match=message):
        restore_checkpoint(tmp_path, like)


# Bad arguments.


def test_missing_directory_empty_directory_and_missing_step_raise(tmp_path):
    with pytest.raises(CheckpointError, match="directory: expected an existing checkpoint"):
        restore_checkpoint(tmp_path / "nowhere", make_state())
    with pytest.raises(CheckpointError, match="directory: expected at least one saved step"):
        restore_checkpoint(tmp_path, make_state())
    save_checkpoint(tmp_path, make_state(), step=4)
    with pytest.raises(CheckpointError, match=r"step: expected one of the saved steps \[4\]"):
        restore_checkpoint(tmp_path, make_state(), step=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"step": -1}, "step: expected a non-negative int"),
        ({"step": 1.0}, "step: expected a non-negative int"),
        ({"step": True}, "step: expected a non-negative int"),
        ({"step": 1, "metadata": {"step": 3}}, "metadata: expected str keys other than"),
        ({"step": 1, "metadata": {"prior": np.float32(1.0)}}, "metadata: expected strict-JSON"),
        ({"step": 1, "metadata": {"prior": float("nan")}}, "metadata: expected strict-JSON"),
        ({"step": 1, "state": ToyState(1.0, 2.0, True, 3)}, r"state\.alpha: expected a jax"),
        ({"step": 1, "state": {"key": jax.random.key(0)}}, r"state\['key'\]: expected an array"),
        ({"step": 1, "state": jnp.zeros(3)}, "state: expected a NamedTuple"),
    ],
)
def test_bad_save_arguments_raise_before_writing(tmp_path, kwargs, message):
    kwargs = {"state": make_state(), **kwargs}
    with pytest.raises(CheckpointError, match=message) as excinfo:
        save_checkpoint(tmp_path, **kwargs)
    assert isinstance(excinfo.value, InvalidArgumentError)
    assert list(tmp_path.iterdir()) == []


# Continuation.


@jax.jit
def toy_update(key: jax.Array, state: ToyState) -> ToyState:
    """A deterministic pure update that uses every leaf and dtype."""
    key_draw, key_flip = jax.random.split(key)
    draw = jax.random.uniform(key_draw, state.alpha.shape, state.alpha.dtype)
    flip = jax.random.bernoulli(key_flip, 0.2, state.active.shape)
    return ToyState(
        alpha=state.alpha + draw * state.active,
        beta=state.beta * (1.0 + draw),
        active=state.active ^ flip,
        count=state.count + state.active.astype(jnp.int32),
    )


def run_steps(update_fn, key, state, steps: range):
    for step in steps:
        state = update_fn(jax.random.fold_in(key, step), state)
    return state


def test_continuation_after_restore_is_bit_identical(tmp_path):
    key = jax.random.key(2024)
    initial = ToyState(
        alpha=jnp.ones(8, jnp.float32),
        beta=jnp.ones(8, jnp.float32),
        active=jnp.arange(8) < 6,
        count=jnp.zeros(8, jnp.int32),
    )
    uninterrupted = run_steps(toy_update, key, initial, range(10))

    halfway = run_steps(toy_update, key, initial, range(5))
    save_checkpoint(tmp_path, halfway, step=5, metadata={"policy": "toy"})
    restored, metadata = restore_checkpoint(tmp_path, jax.eval_shape(lambda: initial))
    resumed = run_steps(toy_update, key, restored, range(metadata["step"], 10))

    assert_states_bit_identical(resumed, uninterrupted)


@pytest.mark.slow
def test_beta_bernoulli_continuation_after_restore_is_bit_identical(tmp_path):
    policy = beta_bernoulli(prior_alpha=1.0, prior_beta=1.0)
    click_rates = jnp.linspace(0.05, 0.6, 10)

    @jax.jit
    def round_fn(key, state):
        key_sample, key_reward = jax.random.split(key)
        selection = policy.sample(key_sample, state, 3)
        clicks = jax.random.bernoulli(key_reward, click_rates[selection.arms])
        return policy.update(state, selection.arms, clicks.astype(jnp.float32))

    key = jax.random.key(7)
    initial = policy.init(10)
    uninterrupted = run_steps(round_fn, key, initial, range(10))

    halfway = run_steps(round_fn, key, initial, range(5))
    save_checkpoint(tmp_path, halfway, step=5, metadata={"policy": "beta_bernoulli"})
    restored, metadata = restore_checkpoint(tmp_path, jax.eval_shape(lambda: policy.init(10)))
    resumed = run_steps(round_fn, key, restored, range(metadata["step"], 10))

    assert metadata["policy"] == "beta_bernoulli"
    assert_states_bit_identical(resumed, uninterrupted)
