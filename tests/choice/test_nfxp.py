"""NFXP on Rust's data (the published Table IX numbers) and on simulated panels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice import nfxp
from prime_science.choice.data import ChoiceData
from prime_science.datasets import rust_bus
from prime_science.sim.bus_engine import BusEngineDesign, simulate_bus_panel

# Rust (1987) Table IX, beta = 0.9999, group 4 (PROVENANCE.md)
RC, THETA11, THETA3, LOG_LIKELIHOOD = 10.075, 2.293, (0.3919, 0.5953, 0.0128), -3304.155


def group_4():
    data = rust_bus.discretise(rust_bus.load_rust_bus((4,)), 90, 5_000.0)
    return ChoiceData(*(jnp.asarray(x) for x in (data.state, data.decision, data.increment)))


def test_log_likelihood_at_published_estimates_equals_published_value():
    with jax.enable_x64(True):
        choice, transition = jax.jit(
            lambda d: nfxp.bus_log_likelihood(
                jnp.array([RC, THETA11]), jnp.array(THETA3), d, 90, 0.9999
            )
        )(group_4())
        assert abs(float(choice + transition) - LOG_LIKELIHOOD) < 0.01
        assert abs(float(choice) - (-163.584)) < 0.01  # ruspy's choice part


@pytest.mark.slow
def test_estimate_recovers_published_group_4():
    with jax.enable_x64(True):
        data = group_4()
        fit = jax.jit(
            lambda d: nfxp.estimate_bus(d, num_states=90, discount=0.9999, num_increments=3)
        )(data)
        assert bool(fit.info.converged) and float(fit.inner_residual) < 1e-9
        assert abs(float(fit.params[0]) / RC - 1) < 0.005
        assert abs(float(fit.params[1]) / THETA11 - 1) < 0.005
        np.testing.assert_allclose(fit.increment_probs[:2], THETA3[:2], atol=0.001)
        assert abs(float(fit.log_likelihood) - LOG_LIKELIHOOD) < 0.01
        # the maximum: no (RC, theta11) step raises the likelihood
        ll = jax.jit(lambda p: nfxp.choice_log_likelihood(p, fit.increment_probs, data, 90, 0.9999))
        for step in ([1e-3, 0], [-1e-3, 0], [0, 1e-3], [0, -1e-3]):
            assert float(ll(fit.params + jnp.array(step))) <= float(fit.choice_log_likelihood)
        # standard errors: positive, and the full-likelihood scores sum to its gradient
        assert np.all(np.asarray(fit.standard_errors) > 0)
        scores = jax.jit(lambda p, q, d: nfxp._full_scores(p, q, d, 90, 0.9999, {}))(
            fit.params, fit.increment_probs, data
        )

        @jax.jit
        def full_ll(phi):
            probs = jnp.concatenate([phi[2:], 1 - jnp.sum(phi[2:], keepdims=True)])
            return sum(nfxp.bus_log_likelihood(phi[:2], probs, data, 90, 0.9999))

        phi = jnp.concatenate([fit.params, fit.increment_probs[:2]])
        eps = 1e-6
        finite = [(full_ll(phi + eps * e) - full_ll(phi - eps * e)) / (2 * eps) for e in jnp.eye(4)]
        np.testing.assert_allclose(scores.sum(0), finite, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_estimate_recovers_simulated_truth_and_transition_mle():
    design = BusEngineDesign(num_buses=100, num_months=120)
    with jax.enable_x64(True):
        data = jax.jit(lambda k: simulate_bus_panel(k, design))(jax.random.key(3))
        increments = np.asarray(data.increment)
        counts = np.bincount(increments[increments >= 0], minlength=5)
        fit = jax.jit(
            lambda d: nfxp.estimate_bus(d, num_states=175, discount=0.975, num_increments=5)
        )(data)
    assert bool(fit.info.converged)
    np.testing.assert_allclose(fit.increment_probs, counts / counts.sum(), rtol=1e-12)
    truth = np.array([design.replacement_cost, design.theta11])
    z = (np.asarray(fit.params) - truth) / np.asarray(fit.standard_errors[:2])
    assert np.all(np.abs(z) < 3.5), z  # fixed key; P(|z| > 3.5) = 5e-4 per parameter
