"""Conformance suite of the choice solvers and estimators: every case passes the same checks.

jit == no-jit, vmap over replicates == a loop, no retrace across calls with new inputs and
keys, the same key (and inputs) gives the same output and, for the estimators that draw, a new
key a new output; and precision follows the inputs: with x64 enabled, float32 inputs give float32
outputs (the numbers of the same call with x64 disabled) and float64 inputs float64 outputs.
Add a solver by adding a ``SolverCase`` to ``CASES``.

The properties do not depend on the problem's size, so every case is tiny (a few states, two
parameters, a short panel, a few outer iterations): the eager run of ``jax.disable_jit`` steps
every ``while_loop`` in Python, and it and compiling are what cost. Each case is jitted once
(``_jitted``) and its jit and inputs (``_inputs``) are reused by every check.
"""

import collections
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.choice import ccp, mdp, nfxp, pqr, solvers
from prime_science.choice.data import ChoiceData
from prime_science.choice.deep_pqr import DeepPQRConfig, deep_pqr
from prime_science.choice.maxent_irl import choice_counts, maxent_irl
from prime_science.sim import samq_bus
from prime_science.sim.bus_engine import BusEngineDesign, simulate_bus_panel

NUM_STATES, NUM_ACTIONS, DISCOUNT = 4, 2, 0.9
REPLICATES = 2


class SolverCase(NamedTuple):
    name: str
    fn: Callable[[jax.Array, Any], Any]  # (key, inputs) -> output pytree
    make_inputs: Callable[[int, Any], Any]  # (seed, float dtype) -> inputs pytree
    draws: bool = False  # the output depends on the key
    rtol: float = 1e-5  # jit vs eager, vmap vs loop, x64 on vs off (float32 inputs)
    slow: bool = False  # an estimator with an outer loop: seconds to compile per check


def _random_mdp(seed: int, dtype) -> mdp.TabularMDP:
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=(NUM_STATES, NUM_ACTIONS))
    transitions = rng.dirichlet(np.ones(NUM_STATES), size=(NUM_ACTIONS, NUM_STATES))
    return mdp.TabularMDP(
        jnp.asarray(rewards, dtype),
        jnp.asarray(transitions, dtype),
        jnp.asarray(DISCOUNT, dtype),
        jnp.asarray(1.0, dtype),
    )


def _policy_inputs(seed: int, dtype) -> tuple[jax.Array, jax.Array]:
    """``(log pi, P)`` of a random MDP's exact policy, in ``dtype``."""
    model = _random_mdp(seed, dtype)
    relative_value, _ = solvers.solve_relative(model)
    return mdp.log_choice_probabilities(model, relative_value), model.transitions


BUS = BusEngineDesign(
    replacement_cost=2.0,
    theta11=300.0,
    increment_probs=(0.35, 0.6, 0.05),
    num_states=8,
    discount=0.9,
    num_buses=4,
    num_months=15,
)
BUS_SIZES = dict(
    num_states=BUS.num_states, discount=BUS.discount, num_increments=len(BUS.increment_probs)
)


def _bus_inputs(seed: int, dtype) -> tuple[ChoiceData, jax.Array]:
    """A simulated panel (integers: the same in every precision) and a BHHH start of ``dtype``."""
    with jax.enable_x64(False):
        panel = simulate_bus_panel(jax.random.key(seed), BUS)
    return ChoiceData(*(np.asarray(x) for x in panel)), jnp.asarray((1.5, 200.0), dtype)


SAMQ = samq_bus.SamqBusConfig(
    theta=(1.0, 0.0), grid_step=0.5, grid_max=10.0, quadrature_nodes=4, iterations=10
)
DEEP_PQR = DeepPQRConfig(
    hidden=2, depth=1, batch_size=8, max_epochs=1, max_q_epochs=1, anchor=samq_bus.ANCHOR
)


def _samq_rows(seed: int, dtype) -> tuple[jax.Array, jax.Array, jax.Array]:
    table = samq_bus.soft_q_table(SAMQ, dtype)
    rows = samq_bus.simulate(jax.random.key(seed), table, SAMQ, 4, 5)
    return rows.states, rows.actions, rows.next_states


def _maxent_inputs(seed: int, dtype):
    log_policy, transitions = _policy_inputs(seed, dtype)
    rng = np.random.default_rng(seed + 100)
    states = rng.integers(0, NUM_STATES, 50)
    actions = np.asarray(jax.random.categorical(jax.random.key(seed), log_policy[states]), np.int32)
    features = jnp.eye(NUM_STATES, 2, dtype=dtype)
    counts = choice_counts(states, actions, NUM_STATES, NUM_ACTIONS, dtype)
    return features, transitions, counts


CASES = [
    SolverCase(
        "successive_approximation",
        lambda key, model: solvers.successive_approximation(model),
        _random_mdp,
    ),
    SolverCase(
        "newton_kantorovich",
        lambda key, model: solvers.newton_kantorovich(model),
        _random_mdp,
    ),
    SolverCase(
        "solve_relative_banded_bus",
        lambda key, params: solvers.solve_relative(
            mdp.bus_engine_mdp(*params, num_states=10, discount=0.9999, banded=True)
        ),
        lambda seed, dtype: (
            jnp.asarray(9.0 + seed, dtype),
            jnp.asarray(2.5, dtype),
            jnp.asarray((0.35, 0.6, 0.05), dtype),
        ),
    ),
    SolverCase(
        "tabular_pqr",
        lambda key, inputs: pqr.tabular_pqr(*inputs, DISCOUNT),
        _policy_inputs,
    ),
    SolverCase(
        "maxent_irl",
        lambda key, inputs: maxent_irl(*inputs[:2], DISCOUNT, inputs[2], max_iters=3),
        _maxent_inputs,
        rtol=1e-4,
        slow=True,
    ),
    SolverCase(
        "nfxp",
        lambda key, inputs: nfxp.estimate_bus(
            inputs[0],
            initial_params=inputs[1],
            tol=1e-3,
            max_iters=3,
            max_halvings=3,
            contraction_steps=5,
            **BUS_SIZES,
        ),
        _bus_inputs,
        rtol=1e-4,
        slow=True,
    ),
    SolverCase(
        "ccp_npl",
        # npl_step, a difference of nearly equal iterates, is left out: its float32 rounding
        # error is on the scale of the parameters, not its own
        lambda key, inputs: ccp.estimate_bus_ccp(
            inputs[0], initial_params=inputs[1], num_npl_iters=1, num_newton_iters=3, **BUS_SIZES
        )[:4],
        _bus_inputs,
        rtol=1e-4,
        slow=True,
    ),
    SolverCase(
        "deep_pqr",
        lambda key, rows: deep_pqr(DEEP_PQR, SAMQ.num_features, 2).fit(key, *rows),
        _samq_rows,
        draws=True,
        rtol=1e-3,
        slow=True,
    ),
]


@pytest.fixture(
    params=[pytest.param(c, marks=[pytest.mark.slow] if c.slow else []) for c in CASES],
    ids=lambda case: case.name,
)
def case(request):
    return request.param


TRACES: collections.Counter[str] = collections.Counter()  # traces of each case's jit


@functools.cache
def _jitted(case: SolverCase) -> Callable:
    """One ``jax.jit`` per case, shared by the checks (JAX keys its caches on the x64 flag
    itself); ``TRACES[case.name]`` counts its traces."""

    def traced(key, inputs):
        TRACES[case.name] += 1
        return case.fn(key, inputs)

    return jax.jit(traced)


def _inputs(case: SolverCase, seed: int, dtype) -> Any:
    """``case.make_inputs(seed, dtype)``, made once per x64 setting (its integers follow it)."""
    return _cached_inputs(case, seed, np.dtype(dtype), jax.config.jax_enable_x64)


@functools.cache
def _cached_inputs(case: SolverCase, seed: int, dtype: np.dtype, x64: bool) -> Any:
    return case.make_inputs(seed, dtype)


def _float_leaves(tree) -> list[np.ndarray]:
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)]
    return [x for x in leaves if np.issubdtype(x.dtype, np.floating)]


def assert_trees_close(a, b, rtol: float) -> None:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if np.issubdtype(x.dtype, np.floating):
            scale = max(1.0, float(np.max(np.abs(x), initial=0.0)))
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * scale)
        else:
            np.testing.assert_array_equal(x, y)


def test_jit_equals_no_jit(case):
    inputs, key = _inputs(case, 0, jnp.float32), jax.random.key(1)
    with jax.disable_jit():
        eager = case.fn(key, inputs)
    assert_trees_close(eager, _jitted(case)(key, inputs), case.rtol)


def test_vmap_over_replicates_equals_loop(case):
    replicas = [_inputs(case, seed, jnp.float32) for seed in range(REPLICATES)]
    keys = jax.random.split(jax.random.key(5), REPLICATES)
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *replicas)
    batched = jax.jit(jax.vmap(case.fn))(keys, stacked)
    one = _jitted(case)
    for i, inputs in enumerate(replicas):
        assert_trees_close(
            one(keys[i], inputs), jax.tree.map(lambda x, i=i: x[i], batched), case.rtol
        )


def test_no_retrace_across_calls(case):
    step, before = _jitted(case), TRACES[case.name]
    for seed in range(3):
        jax.block_until_ready(step(jax.random.key(seed), _inputs(case, seed, jnp.float32)))
    assert TRACES[case.name] - before <= 1  # 0 when an earlier check traced these shapes


def test_same_key_same_output_and_new_key_new_output(case):
    inputs = _inputs(case, 0, jnp.float32)
    fn = _jitted(case)
    first, again = fn(jax.random.key(3), inputs), fn(jax.random.key(3), inputs)
    chex.assert_trees_all_equal(first, again)
    if case.draws:
        other = fn(jax.random.key(4), inputs)
        assert any(
            not np.array_equal(x, y)
            for x, y in zip(_float_leaves(first), _float_leaves(other), strict=True)
        )


def test_precision_follows_the_inputs(case):
    key = jax.random.key(2)
    with jax.enable_x64(False):
        plain = _jitted(case)(key, _inputs(case, 0, jnp.float32))
    with jax.enable_x64(True):
        for dtype in (jnp.float32, jnp.float64):
            out = _jitted(case)(key, _inputs(case, 0, dtype))
            assert {x.dtype for x in _float_leaves(out)} == {np.dtype(dtype)}, case.name
            if dtype == jnp.float32:
                assert_trees_close(plain, out, case.rtol)
