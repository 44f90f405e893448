"""The membership benchmark on tiny problems: the numpy baselines do the model's work (the
numpy relative value iteration equals ``model.solve``; the numpy simulation draws from the same
tables), and the records carry what the report needs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bench import membership
from prime_science.membership import model, simulate


@pytest.mark.slow
@pytest.mark.parametrize(
    "solver",
    [membership.numpy_relative_value_iteration, membership.numpy_reduced_value_iteration],
    ids=["full", "reduced"],
)
def test_numpy_value_iteration_equals_model_solve(solver):
    with jax.enable_x64(True):
        params = membership.small_engagement_params(2, jnp.float64, annual_price=40.0)
        solution = jax.jit(lambda p: model.solve(p, 1, levels=2, lock_months=2, tol=1e-11))(params)
        value, iterations, residual = solver(
            np.asarray(model.flow_utilities(params, 2, 2)),
            model.feasible_actions(2),
            np.asarray(model.engagement_transition(params, 1, 2)),
            np.asarray(model.tenure_transition(jnp.float64)),
            np.asarray(model.content_transition(params)),
            np.asarray(params.regime_transition),
            model.next_plan(2),
            float(params.discount),
            tol=1e-11,
        )
    assert residual <= 1e-11 and iterations == int(solution.iterations)
    np.testing.assert_allclose(value, solution.value, rtol=0, atol=1e-9)


@pytest.mark.slow
def test_numpy_simulation_matches_jax_shares_within_monte_carlo_error():
    params = membership.small_engagement_params(2, annual_price=40.0)
    tables = jax.jit(lambda p: simulate.tables(p, levels=2, lock_months=2))(params)
    states = simulate.initial_states(jax.random.key(0), 20_000, levels=2)
    shares, revenue = jax.jit(membership.forward_simulation, static_argnums=3)(
        jax.random.key(1), tables, states, 8
    )
    host = jax.tree.map(np.asarray, tables)
    numpy_states = simulate.MemberStates(*(np.asarray(x) for x in states))
    numpy_shares, numpy_revenue = membership.numpy_forward_simulation(
        np.random.default_rng(0), host, numpy_states, 8
    )
    np.testing.assert_allclose(shares.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(shares[0], numpy_shares[0])  # the same starting states
    # two independent shares of 20,000 differ by at most ~5 standard errors (sd <= 0.0035 each)
    assert np.max(np.abs(shares - numpy_shares)) < 0.025
    assert np.all(shares[1:, 2] > 0)  # some customers buy annual
    np.testing.assert_allclose(revenue.mean(), numpy_revenue.mean(), rtol=0.1)


@pytest.mark.slow
def test_batched_solve_record():
    record = membership.batched_solve_timings(
        5, levels=2, lock_months=2, repeats=1, numpy_limit=2, lanes=2, vmap_limit=3
    )
    assert record["all_converged"] and record["max_abs_difference"] < 1e-8
    assert record["numpy_full_max_abs_difference"] < 1e-8
    assert record["same_iterations"] and record["numpy_extrapolated"]
    assert record["numpy_full_same_iterations"]
    assert record["numpy_timed_solves"] == 2 and record["speedup"] > 0
    assert record["vmap_solve"]["same_iterations"]
    assert record["vmap_solve"]["max_abs_difference"] < 1e-8
    assert record["device"]["cpu_model"]


@pytest.mark.slow
def test_pqr_record_matches_numpy():
    record = membership.pqr_timings(6, levels=2, lock_months=2, repeats=1, numpy_limit=3)
    assert record["max_abs_difference"] < 1e-9 and record["max_residual"] < 1e-9
    assert record["numpy_extrapolated"] and record["unknowns"] == 2 * 2**2 * 3
    assert record["lu_flops_per_replicate"] > record["shared_factor_flops_per_replicate"] > 0


def test_dram_bandwidth_record():
    record = membership.dram_bandwidth(8, repeats=1)
    assert record["best_gbps"] > 0 and record["array_mib"] == 8
