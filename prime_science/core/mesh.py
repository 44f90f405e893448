"""Sharding the arm axis over devices.

The arm axis of a bandit state (and the candidate axis of a scoring call) is split over a 1-D
device mesh with axis name ``"arms"``: each device holds a contiguous block of
``num_arms / num_devices`` arms. Element-wise work (posterior updates) needs nothing more:
XLA's SPMD partitioner keeps it local. A reduction over arms (top-k) goes through
:func:`sharded_top_k`, a ``shard_map`` in which each device takes the top-k of its block and
the ``k x num_devices`` candidates are gathered and reduced again.

Draws depend on the global arm id (see :mod:`prime_science.core.random`), so a sharded
``sample`` returns exactly what one device returns for the same key.

Testing on one machine: ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` before JAX is
imported gives 8 CPU devices. Several hosts: call ``jax.distributed.initialize()`` (with
``coordinator_address``, ``num_processes`` and ``process_id``, or from the cluster's
environment on SLURM / TPU pods) at the start of every process, then build the mesh from
``jax.devices()`` — all devices of all hosts — and shard as here; each host feeds its own
block of arms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from prime_science.core.errors import fail
from prime_science.core.random import top_k_with_ids

__all__ = [
    "ARM_AXIS",
    "arm_mesh",
    "arm_sharding",
    "shard_arms",
    "sharded_top_k",
    "constrain_arms",
]

ARM_AXIS = "arms"


def _check_mesh(name: str, mesh: Any) -> None:
    """A :class:`Mesh` with the one axis ``"arms"`` (what :func:`arm_mesh` builds)."""
    if not isinstance(mesh, Mesh):
        fail(name, 'a 1-D jax.sharding.Mesh with axis "arms" (from arm_mesh)', repr(mesh))
    if tuple(mesh.axis_names) != (ARM_AXIS,):
        fail(name, f"a mesh with the one axis {ARM_AXIS!r}", f"axes {tuple(mesh.axis_names)}")


def arm_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"arms"`` over ``devices`` (default: every device JAX sees).

    Raises ``InvalidArgumentError`` unless ``devices`` is ``None`` or a non-empty sequence of
    distinct ``jax.Device``.
    """
    if devices is None:
        devices = jax.devices()
    if isinstance(devices, str | bytes) or not isinstance(devices, Iterable):
        fail("devices", "a non-empty sequence of jax devices", repr(devices))
    devices = list(devices)
    if not devices or not all(isinstance(device, jax.Device) for device in devices):
        fail("devices", "a non-empty sequence of jax devices", repr(devices))
    if len(set(devices)) != len(devices):
        fail("devices", "distinct devices", repr(devices))
    return Mesh(np.array(devices), (ARM_AXIS,))


def arm_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (arm) axis over the mesh."""
    _check_mesh("mesh", mesh)
    return NamedSharding(mesh, PartitionSpec(ARM_AXIS))


def shard_arms(state: Any, mesh: Mesh) -> Any:
    """Place every leaf of ``state`` with its arm axis split over ``mesh``.

    Raises:
      InvalidArgumentError: if ``mesh`` is not an arm mesh, a leaf is not an array with a
        leading axis, or a leaf's arm axis is not divisible by the number of devices.
    """
    _check_mesh("mesh", mesh)
    num_devices = mesh.devices.size
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        if not hasattr(leaf, "shape") or np.ndim(leaf) < 1:
            name = "state" + jax.tree_util.keystr(path)
            fail(name, "an array with a leading arm axis", f"{type(leaf).__name__} {leaf!r}")
        if leaf.shape[0] % num_devices:
            fail(
                "state",
                f"an arm axis divisible by the {num_devices} devices of the mesh",
                f"{leaf.shape[0]} arms (choose a capacity that is a multiple of {num_devices})",
            )
    return jax.device_put(state, arm_sharding(mesh))


def sharded_top_k(
    local_top_k: Callable[..., tuple[jax.Array, jax.Array]],
    mesh: Mesh,
    k: int,
) -> Callable[..., tuple[jax.Array, jax.Array]]:
    """Lift a per-block top-k to the whole sharded arm axis.

    ``local_top_k(key, arm_offset, *arm_arrays) -> (values[k], global_ids[k])`` runs on each
    device's block of arms; ``arm_offset`` is the global id of the block's first arm. The
    returned function takes ``(key, *arm_arrays)`` (arrays sharded over ``"arms"``) and gives
    the global top-k, replicated on every device.

    Raises ``InvalidArgumentError`` for a ``local_top_k`` that is not callable, a ``mesh`` that
    is not an arm mesh, or ``k`` that is not a positive integer.
    """
    if not callable(local_top_k):
        fail("local_top_k", "a callable", repr(local_top_k))
    _check_mesh("mesh", mesh)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        fail("k", "a positive integer", repr(k))

    def per_device(key, *arm_arrays):
        block = arm_arrays[0].shape[0]
        offset = jax.lax.axis_index(ARM_AXIS) * block
        values, ids = local_top_k(key, offset, *arm_arrays)
        values = jax.lax.all_gather(values, ARM_AXIS, tiled=True)
        ids = jax.lax.all_gather(ids, ARM_AXIS, tiled=True)
        # Candidates are ordered by device, i.e. by arm id, so ties resolve as on one device.
        return top_k_with_ids(values, ids, k)

    def run(key, *arm_arrays):
        specs = (PartitionSpec(),) + (PartitionSpec(ARM_AXIS),) * len(arm_arrays)
        return jax.shard_map(
            per_device,
            mesh=mesh,
            in_specs=specs,
            out_specs=(PartitionSpec(), PartitionSpec()),
            check_vma=False,
        )(key, *arm_arrays)

    return run


def constrain_arms(x: jax.Array, mesh: Mesh | None) -> jax.Array:
    """Keep an arm-indexed array split over ``mesh`` (no-op without a mesh); ``mesh`` must be
    ``None`` or an arm mesh, ``x`` an array with a leading axis."""
    if mesh is None:
        return x
    _check_mesh("mesh", mesh)
    if np.ndim(x) < 1:
        fail("x", "an array with a leading arm axis", f"shape {np.shape(x)}")
    return jax.lax.with_sharding_constraint(x, arm_sharding(mesh))
