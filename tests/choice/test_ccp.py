"""CCP estimators: exact Hotz-Miller inversion at the true policy; NPL converges to NFXP's MLE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice import ccp, mdp, nfxp, solvers
from prime_science.choice.data import ChoiceData
from prime_science.datasets import rust_bus


def test_inversion_at_the_true_policy_reproduces_the_fixed_point_values():
    """With pi = the model's own policy, v(x, a; theta) from the CCP inversion equals Q(x, a)
    from the Newton-Kantorovich fixed point (up to a constant per state)."""

    @jax.jit
    def values(theta, probs):
        model = mdp.bus_engine_mdp(theta[0], theta[1], probs, 175, 0.975)
        value, _ = solvers.newton_kantorovich(model, tol=1e-12)
        policy = mdp.choice_probabilities(model, value)[:, 1]
        z, e = ccp._linear_values(policy, probs, 175, 0.975, 0.001)
        return jnp.einsum("sak,k->sa", z, theta) + e, mdp.choice_values(model, value)

    with jax.enable_x64(True):
        probs = jnp.array([0.0937, 0.4475, 0.4459, 0.0127, 0.0002])
        v, q = values(jnp.array([11.7257, 2.4569]), probs)
    np.testing.assert_allclose(v, q, atol=1e-8)


@pytest.mark.slow
def test_npl_converges_to_the_nfxp_estimate_on_group_4():
    data = rust_bus.discretise(rust_bus.load_rust_bus((4,)), 90, 5_000.0)
    data = ChoiceData(*(jnp.asarray(x) for x in (data.state, data.decision, data.increment)))
    options = dict(num_states=90, discount=0.9999, num_increments=3)
    with jax.enable_x64(True):
        two_step = jax.jit(lambda d: ccp.estimate_bus_ccp(d, **options))(data)
        npl = jax.jit(lambda d: ccp.estimate_bus_ccp(d, num_npl_iters=20, **options))(data)
        mle = jax.jit(lambda d: nfxp.estimate_bus(d, **options))(data)
    assert float(npl.npl_step) < 1e-8
    np.testing.assert_allclose(npl.params, mle.params, rtol=1e-6)
    np.testing.assert_allclose(npl.pseudo_log_likelihood, mle.choice_log_likelihood, atol=1e-6)
    # the two-step estimate is a different (consistent, less efficient) estimator
    assert float(two_step.pseudo_log_likelihood) < float(npl.pseudo_log_likelihood)
    assert np.all(np.isfinite(np.asarray(two_step.params)))
