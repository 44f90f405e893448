"""One process of the multi-process sharding test (:mod:`test_multiprocess_sharding`).

Run as ``python multiprocess_worker.py PROCESS_ID PORT OUT_PREFIX``: the process joins a
2-process job through ``jax.distributed.initialize`` with 4 CPU devices of its own (8 in all,
CPU collectives over gloo), samples from the arm-sharded Beta-Bernoulli sampler and the
candidate-sharded probit scorer on a mesh over all 8 devices, and writes the (replicated)
results to ``OUT_PREFIX_<PROCESS_ID>.npz``. The inputs are the same on both processes, so each
process places the same global arrays; the test compares the files with one process on one
device.
"""

import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=4"

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from multiprocess_inputs import beta_inputs, probit_inputs  # noqa: E402


def main(process_id: int, port: str, out_prefix: str) -> None:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id)
    assert jax.process_count() == 2 and jax.device_count() == 8, jax.devices()

    from jax.experimental import multihost_utils

    from prime_science.bandits.beta_bernoulli import beta_bernoulli
    from prime_science.bandits.probit import probit_adf
    from prime_science.core import mesh as mesh_lib

    mesh = mesh_lib.arm_mesh()
    num_arms, num_active, arms, rewards = beta_inputs(mesh.devices.size)
    policy = beta_bernoulli(mesh=mesh)
    state = policy.update(policy.init(num_arms, num_active=num_active), arms, rewards)
    alpha = multihost_utils.process_allgather(state.alpha, tiled=True)
    beta_draws = jax.jit(policy.sample, static_argnums=2)(jax.random.key(3), state, 5)

    ids, clicks, num_features = probit_inputs(mesh.devices.size)
    single, sharded = probit_adf(num_features), probit_adf(num_features, mesh=mesh)
    probit_state = single.update(single.init(), ids[:200], clicks)
    placed = jax.device_put(ids, mesh_lib.arm_sharding(mesh))
    probit_draws = sharded.sample(jax.random.key(4), probit_state, placed, 10)
    np.savez(
        f"{out_prefix}_{process_id}.npz",
        alpha=np.asarray(alpha),
        beta_arms=np.asarray(beta_draws.arms),
        beta_scores=np.asarray(beta_draws.scores),
        probit_arms=np.asarray(probit_draws.arms),
        probit_scores=np.asarray(jnp.asarray(probit_draws.scores)),
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
