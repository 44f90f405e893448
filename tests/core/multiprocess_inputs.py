"""Inputs shared by the multi-process worker and its test (the same on every process)."""

import jax.numpy as jnp
import numpy as np


def beta_inputs(num_devices: int):
    """``(num_arms, num_active, arms, rewards)`` for an arm-sharded Beta-Bernoulli update."""
    num_arms = 1024 * num_devices
    rng = np.random.default_rng(0)
    arms = jnp.asarray(rng.integers(0, num_arms - 100, 5000))
    rewards = jnp.asarray(rng.choice([0.0, 0.25, 1.0], 5000))
    return num_arms, num_arms - 100, arms, rewards


def probit_inputs(num_devices: int):
    """``(ids int32[candidates, 8], clicks float32[200], num_features)`` for probit scoring."""
    num_candidates, num_features = 512 * num_devices, 300
    rng = np.random.default_rng(1)
    ids = jnp.asarray(rng.integers(-1, num_features, (num_candidates, 8)), jnp.int32)
    clicks = jnp.asarray(rng.integers(0, 2, 200), jnp.float32)
    return ids, clicks, num_features
