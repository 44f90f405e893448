"""A population split over devices moves exactly as on one device (the member axis sharded with
the project's mesh helpers): draws are keyed by the customer's index, not by the device."""

import jax
import numpy as np
import pytest

from prime_science.core import mesh as mesh_lib
from prime_science.membership import model, simulate


@pytest.mark.sharding
@pytest.mark.skipif(
    jax.device_count() < 2,
    reason="needs several devices: XLA_FLAGS=--xla_force_host_platform_device_count=8",
)
def test_sharded_population_equals_one_device():
    mesh = mesh_lib.arm_mesh()
    num_members = 512 * mesh.devices.size
    params = model.true_params()
    tables = jax.jit(simulate.tables)(params)
    states = simulate.initial_states(jax.random.key(0), num_members)
    placed = jax.device_put(states, mesh_lib.arm_sharding(mesh))
    assert len(placed.plan.sharding.device_set) == mesh.devices.size

    def months(key, states):
        def advance(states, month_key):
            states, action, payment = simulate.step(month_key, tables, states)
            return states, (action, payment)

        return jax.lax.scan(advance, states, jax.random.split(key, 12))

    run = jax.jit(months)
    one = run(jax.random.key(1), states)
    many = run(jax.random.key(1), placed)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert np.asarray(one[1][0]).std() > 0  # the population does choose differently
