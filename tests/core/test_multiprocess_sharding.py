"""The arm-sharded sampler and the candidate-sharded probit scorer across 2 processes x 4 CPU
devices (``jax.distributed.initialize`` with CPU collectives), equal to one process on one
device for the same key: the code path of a multi-host GPU or TPU job.

Two workers (:mod:`multiprocess_worker`) are launched as separate Python processes that meet
at a local coordinator port; each writes the replicated results, and this test compares both
files with the single-device computation here. Runs in CI's sharding pass."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from multiprocess_inputs import beta_inputs, probit_inputs

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.bandits.probit import probit_adf

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


def _run_workers(out_prefix: Path) -> None:
    port = str(_free_port())
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    env.pop("XLA_FLAGS", None)
    workers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "multiprocess_worker.py"), str(pid), port, str(out_prefix)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for pid in (0, 1)
    ]
    for pid, worker in enumerate(workers):
        try:
            output, _ = worker.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            pytest.fail(f"worker {pid} did not finish in 240 s")
        assert worker.returncode == 0, f"worker {pid} failed:\n{output[-3000:]}"


@pytest.mark.sharding
@pytest.mark.skipif(
    jax.device_count() < 2,
    reason="runs in the sharding pass (XLA_FLAGS=--xla_force_host_platform_device_count=8)",
)
def test_two_processes_equal_one_device(tmp_path):
    _run_workers(tmp_path / "out")
    num_devices = 8
    num_arms, num_active, arms, rewards = beta_inputs(num_devices)
    policy = beta_bernoulli()
    state = policy.update(policy.init(num_arms, num_active=num_active), arms, rewards)
    beta_draws = policy.sample(jax.random.key(3), state, 5)
    ids, clicks, num_features = probit_inputs(num_devices)
    single = probit_adf(num_features)
    probit_state = single.update(single.init(), ids[:200], clicks)
    probit_draws = single.sample(jax.random.key(4), probit_state, ids, 10)
    for pid in (0, 1):
        got = np.load(f"{tmp_path / 'out'}_{pid}.npz")
        np.testing.assert_array_equal(got["alpha"], np.asarray(state.alpha))
        np.testing.assert_array_equal(got["beta_arms"], np.asarray(beta_draws.arms))
        np.testing.assert_allclose(got["beta_scores"], np.asarray(beta_draws.scores), rtol=1e-6)
        np.testing.assert_array_equal(got["probit_arms"], np.asarray(probit_draws.arms))
        np.testing.assert_allclose(got["probit_scores"], np.asarray(probit_draws.scores), rtol=1e-6)
