"""Save and restore a policy state (a NamedTuple of arrays) with a small JSON record.

This is the only module that touches Orbax; the rest of the library sees
plain arrays and NamedTuples. A checkpoint is one directory per step::

    directory/
      step_00000042/
        state/          the array tree, written by orbax-checkpoint
        metadata.json   the user's record, the step, and a description of every leaf
                        (path, shape, dtype, sha256 of its bytes) plus the tree structure

Atomicity. :func:`save_checkpoint` writes everything into a fresh hidden sibling
``directory/.tmp-step_00000042-<random>/``, flushes every file and folder to disk (``fsync``),
and only then renames it to ``step_00000042`` with one ``os.replace``, which is atomic on a
POSIX file system. The rename is the commit: a ``step_*`` directory exists only once it is
complete. A save interrupted by an exception removes its temporary directory; one killed
outright (``SIGKILL``, power loss) leaves a ``.tmp-*`` directory that :func:`latest_step` and
:func:`restore_checkpoint` never look at and that can be deleted at leisure. Either way the
previous checkpoints stay loadable. Overwriting a step (``overwrite=True``) first renames the old
directory to a hidden ``.tmp-*.old`` name, renames the new one into place, then deletes the old
one; a crash between the two renames leaves that step absent (older steps still restore) and
both versions on disk under hidden names.

Integrity. Orbax (TensorStore) reports missing or truncated array files, but a flipped bit
inside a large chunk can restore silently as a wrong value, so ``metadata.json`` also holds a
sha256 of every leaf's bytes and :func:`restore_checkpoint` checks it. Hashing copies each leaf
to the host once, which is cheap for policy states.

Concurrent writers. Without ``overwrite`` the commit is a plain ``rename`` of the temporary
directory onto ``step_00000042``, and POSIX ``rename`` fails (``EEXIST`` / ``ENOTEMPTY``) when
the target is a non-empty directory; the check and the move are one atomic step. So when
several processes save the same step at once, exactly one commits and every other one gets a
:class:`~prime_science.core.errors.CheckpointError` naming the step (its temporary directory
removed), whatever the interleaving; the early ``exists`` test only saves the losers the work
of writing. With ``overwrite=True`` the last writer wins (or, if two overwrites interleave
their two renames, one of them fails with a ``CheckpointError``).

Scope. One JAX process per save (``jax.process_count() == 1``): the
temporary-directory-and-rename commit is done by this process alone, so multi-host saves are
refused rather than half supported.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp

from prime_science.core.errors import CheckpointError

__all__ = ["save_checkpoint", "restore_checkpoint", "latest_step"]

State = TypeVar("State")

_FORMAT_VERSION = 1
_STATE_DIR = "state"
_METADATA_FILE = "metadata.json"
_STEP_PATTERN = re.compile(r"step_(\d+)")
_RESERVED_KEYS = ("step",)


def _fail(name: str, expected: str, got: Any) -> CheckpointError:
    """Build a :class:`CheckpointError` in the house format (the caller raises it)."""
    return CheckpointError(f"{name}: expected {expected}, got {got}")


def _step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def _check_step(step: Any) -> int:
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise _fail("step", "a non-negative int", repr(step))
    return int(step)


def _check_directory(directory: Any) -> Path:
    if not isinstance(directory, str | os.PathLike) or not str(directory):
        raise _fail("directory", "a path (str or os.PathLike)", repr(directory))
    return Path(directory)


def _saved_steps(directory: Path) -> list[int]:
    """Committed steps under ``directory``, ascending; temporary directories never match."""
    steps = []
    for entry in directory.iterdir():
        match = _STEP_PATTERN.fullmatch(entry.name)
        if match and entry.is_dir() and _step_dir_name(int(match[1])) == entry.name:
            steps.append(int(match[1]))
    return sorted(steps)


def _sha256(array: Any) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(array)).tobytes()).hexdigest()


def _describe_state(state: Any) -> tuple[list[dict[str, Any]], str]:
    """Check that ``state`` is a tree of concrete arrays; return its leaf records and treedef."""
    if isinstance(state, jax.Array | np.ndarray):
        raise _fail("state", "a NamedTuple (or other pytree container) of arrays", "one array")
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(state)
    if not leaves_with_path:
        raise _fail("state", "a tree with at least one array leaf", "an empty tree")
    leaves = []
    for path, leaf in leaves_with_path:
        name = "state" + jax.tree_util.keystr(path)
        if not isinstance(leaf, jax.Array | np.ndarray):
            raise _fail(name, "a jax.Array or numpy array", type(leaf).__name__)
        if isinstance(leaf, jax.core.Tracer):
            raise _fail(name, "a concrete array (save outside jit)", "a tracer")
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.extended):
            raise _fail(name, "an array of numbers or bools (no PRNG keys)", f"dtype {leaf.dtype}")
        leaves.append(
            {
                "path": jax.tree_util.keystr(path),
                "shape": [int(d) for d in leaf.shape],
                "dtype": str(np.dtype(leaf.dtype)),
                "sha256": _sha256(leaf),
            }
        )
    return leaves, str(treedef)


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    """Require a JSON-able dict with string keys and no reserved key."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise _fail("metadata", "a dict or None", type(metadata).__name__)
    bad_keys = [key for key in metadata if not isinstance(key, str) or key in _RESERVED_KEYS]
    if bad_keys:
        raise _fail("metadata", f"str keys other than {list(_RESERVED_KEYS)}", f"keys {bad_keys}")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise _fail("metadata", "strict-JSON-able values", f"{error}") from error
    return metadata


def _save_arrays(path: Path, state: Any) -> None:
    """Write the array tree with Orbax (synchronously) into the new directory ``path``."""
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer:
        checkpointer.save(path, args=ocp.args.StandardSave(state))


def _write_metadata(path: Path, record: dict[str, Any]) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(record, file, indent=2, allow_nan=False)
        file.write("\n")


def _fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under ``root`` so the rename commits complete data."""
    for folder, _, files in os.walk(root):
        for file in files:
            _fsync_path(Path(folder) / file)
        _fsync_path(Path(folder))


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _commit(temporary: Path, final: Path, step: int, overwrite: bool) -> None:
    """Rename ``temporary`` to ``final`` and flush the parent. With ``overwrite`` an existing
    ``final`` is replaced; without, the rename fails if ``final`` exists (module docstring:
    concurrent writers) and a :class:`CheckpointError` names the step."""
    if overwrite and final.exists():
        old = temporary.with_name(temporary.name + ".old")
        os.replace(final, old)
        os.replace(temporary, final)
        _remove_tree(old)
    else:
        try:
            os.rename(temporary, final)
        except OSError as error:
            if overwrite or error.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise _fail(
                "step",
                f"a step not yet saved in {final.parent} (or overwrite=True)",
                f"{step} (committed meanwhile by another writer)",
            ) from error
    _fsync_path(final.parent)


def save_checkpoint(
    directory: str | os.PathLike[str],
    state: Any,
    *,
    step: int,
    metadata: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save ``state`` and ``metadata`` as checkpoint ``step`` under ``directory``, atomically.

    Args:
      directory: the checkpoint root; created (with parents) if missing.
      state: a NamedTuple (possibly nested, or any pytree container) of concrete ``jax.Array``
        or numpy leaves; PRNG-key leaves are refused (a checkpoint holds data, not random streams).
      step: a non-negative int; the checkpoint goes to ``directory/step_<8-digit step>``.
      metadata: a dict with string keys and strict-JSON values (no NaN or infinities), e.g. the
        policy name and its prior. It comes back from :func:`restore_checkpoint` after a JSON
        round trip (tuples come back as lists). The key ``"step"`` is reserved.
      overwrite: replace an existing checkpoint ``step`` instead of refusing.

    Returns:
      The path of the committed step directory.

    Raises:
      CheckpointError: a bad argument (checked before anything is written), ``step`` already
        saved and ``overwrite`` false (also when another process commits it during this save:
        exactly one of several concurrent writers succeeds), more than one JAX process, or the
        write failing (Orbax
        or file-system error, chained as the cause). On any failure the temporary directory is
        removed and the checkpoints already committed are untouched.
    """
    step = _check_step(step)
    directory = _check_directory(directory)
    if not isinstance(overwrite, bool):
        raise _fail("overwrite", "True or False", repr(overwrite))
    user_metadata = _check_metadata(metadata)
    if jax.process_count() != 1:
        raise _fail("jax.process_count()", "1 (single-process checkpoints)", jax.process_count())
    leaves, treedef = _describe_state(state)
    root = Path(directory).absolute()
    if root.exists() and not root.is_dir():
        raise _fail("directory", "a directory", f"the file {root}")
    final = root / _step_dir_name(step)
    if final.exists() and not overwrite:
        raise _fail("step", f"a step not yet saved in {root} (or overwrite=True)", step)
    record = {
        "format_version": _FORMAT_VERSION,
        "step": step,
        "state_type": f"{type(state).__module__}.{type(state).__qualname__}",
        "treedef": treedef,
        "leaves": leaves,
        "metadata": user_metadata,
    }
    root.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=root))
    try:
        try:
            _save_arrays(temporary / _STATE_DIR, state)
        except Exception as error:
            raise _fail(f"{final}", "Orbax to write the array tree", repr(error)) from error
        try:
            _write_metadata(temporary / _METADATA_FILE, record)
            _fsync_tree(temporary)
            _commit(temporary, final, step, overwrite)
        except OSError as error:
            raise _fail(f"{final}", "a completed write", repr(error)) from error
    except BaseException:
        _remove_tree(temporary)
        raise
    return final


def latest_step(directory: str | os.PathLike[str]) -> int | None:
    """The highest committed step under ``directory``, or ``None`` if it has none (or is missing).

    Only complete checkpoints count: temporary directories of unfinished saves are ignored.

    Raises:
      CheckpointError: ``directory`` exists but is not a directory.
    """
    root = _check_directory(directory)
    if not root.exists():
        return None
    if not root.is_dir():
        raise _fail("directory", "a directory", f"the file {root}")
    steps = _saved_steps(root)
    return steps[-1] if steps else None


def _read_record(step_dir: Path) -> dict[str, Any]:
    """Load and sanity-check ``metadata.json`` of one step directory."""
    path = step_dir / _METADATA_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise _fail(f"{path}", "a metadata file", "none (missing)") from error
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise _fail(f"{path}", "valid JSON", f"a decoding error ({error})") from error
    expected_keys = {"format_version", "step", "leaves", "metadata"}
    if not isinstance(record, dict) or not expected_keys <= record.keys():
        raise _fail(f"{path}", f"a JSON object with keys {sorted(expected_keys)}", repr(record))
    if record["format_version"] != _FORMAT_VERSION:
        raise _fail(f"{path}", f"format_version {_FORMAT_VERSION}", record["format_version"])
    return record


def _target_leaf(name: str, leaf: Any, saved: dict[str, Any]) -> jax.ShapeDtypeStruct:
    """Check one template leaf against its saved record; return the abstract leaf to restore."""
    if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
        raise _fail(name, "an array or jax.ShapeDtypeStruct", type(leaf).__name__)
    shape, dtype = tuple(int(d) for d in leaf.shape), str(np.dtype(leaf.dtype))
    if shape != tuple(saved["shape"]):
        raise _fail(name, f"shape {tuple(saved['shape'])} as saved", f"shape {shape}")
    if dtype != saved["dtype"]:
        raise _fail(name, f"dtype {saved['dtype']} as saved", f"dtype {dtype}")
    sharding = getattr(leaf, "sharding", None)
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.ShapeDtypeStruct(shape, np.dtype(dtype), sharding=sharding)


def restore_checkpoint(
    directory: str | os.PathLike[str],
    like: State,
    *,
    step: int | None = None,
) -> tuple[State, dict[str, Any]]:
    """Restore checkpoint ``step`` (default: the latest) into a state shaped like ``like``.

    Args:
      directory: the checkpoint root given to :func:`save_checkpoint`.
      like: a template of the saved state: the same tree (e.g. the same NamedTuple type) whose
        leaves are arrays or ``jax.ShapeDtypeStruct`` with the saved shapes and dtypes; e.g.
        ``policy.init(num_arms)`` or ``jax.eval_shape(lambda: policy.init(num_arms))``.
      step: which step to restore; ``None`` restores the highest committed step.

    Returns:
      ``(state, metadata)``: ``state`` has ``like``'s tree type and ``jax.Array`` leaves equal,
      bit for bit, to what was saved. Each leaf is placed on ``like``'s leaf sharding when it
      has one (a ``jax.Array``'s own placement, or a ``jax.ShapeDtypeStruct`` built with
      ``sharding=``), otherwise on the first device of the default backend, ``jax.devices()[0]``.
      ``metadata`` is the dict given to :func:`save_checkpoint` (after a JSON round trip) plus
      ``"step"``.

    Raises:
      CheckpointError: the directory is missing or holds no checkpoint; ``step`` was not saved;
        ``metadata.json`` is missing or not valid JSON; ``like``'s leaf paths (field names,
        number of leaves), shapes or dtypes differ from the saved ones (the message names the
        leaf, e.g. ``like.alpha``); Orbax cannot read the array files (cause chained); or the
        restored bytes do not match the saved sha256 (a corrupt file).
    """
    root = _check_directory(directory)
    if not root.is_dir():
        raise _fail("directory", "an existing checkpoint directory", f"{root} (missing)")
    steps = _saved_steps(root)
    if not steps:
        raise _fail("directory", "at least one saved step_* checkpoint", f"none in {root}")
    if step is None:
        step = steps[-1]
    elif _check_step(step) not in steps:
        raise _fail("step", f"one of the saved steps {steps}", step)
    step_dir = root / _step_dir_name(step)
    record = _read_record(step_dir)
    saved_leaves = record["leaves"]

    like_with_path, like_treedef = jax.tree_util.tree_flatten_with_path(like)
    like_paths = [jax.tree_util.keystr(path) for path, _ in like_with_path]
    saved_paths = [leaf["path"] for leaf in saved_leaves]
    if like_paths != saved_paths:
        missing = [p for p in saved_paths if p not in like_paths]
        extra = [p for p in like_paths if p not in saved_paths]
        raise _fail(
            "like",
            f"a tree with the {len(saved_paths)} saved leaves {saved_paths}",
            f"{len(like_paths)} leaves {like_paths} (missing {missing}, unexpected {extra})",
        )
    target_leaves = [
        _target_leaf("like" + path, leaf, saved)
        for path, (_, leaf), saved in zip(like_paths, like_with_path, saved_leaves, strict=True)
    ]
    target = jax.tree_util.tree_unflatten(like_treedef, target_leaves)

    state_dir = (step_dir / _STATE_DIR).absolute()
    try:
        with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as checkpointer:
            state = checkpointer.restore(state_dir, args=ocp.args.StandardRestore(target))
    except Exception as error:
        summary = str(error).splitlines()[0][:300] if str(error) else ""
        raise _fail(
            f"{state_dir}", "readable array files", f"{type(error).__name__}: {summary}"
        ) from error

    for path, leaf, saved in zip(like_paths, jax.tree.leaves(state), saved_leaves, strict=True):
        digest = _sha256(leaf)
        if digest != saved["sha256"]:
            raise _fail(
                "state" + path,
                f"array bytes with sha256 {saved['sha256']} as saved",
                f"sha256 {digest} (the array files in {state_dir} are corrupt)",
            )
    return state, {**record["metadata"], "step": record["step"]}
