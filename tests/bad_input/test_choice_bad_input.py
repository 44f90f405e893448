"""Bad input to the public entry points of prime_science.choice and the bus simulators
(sim.bus_engine, sim.samq_bus): every case raises InvalidArgumentError whose message starts with
the argument's name, and leaves the caller's numpy inputs unchanged. Plus the documented results
that are not errors (discount 0 is a static logit; a solver traced at discount 1 does not claim
convergence).

Inputs are small (a 5-state MDP, a 10-row bus panel), so the file runs in seconds."""

import re
from typing import Any, NamedTuple

import jax
import numpy as np
import pytest

from prime_science.choice import ccp, maxent_irl, nfxp, pqr, solvers
from prime_science.choice import mdp as mdp_lib
from prime_science.choice.ascent import halving_ascent
from prime_science.choice.data import ChoiceData
from prime_science.choice.deep_pqr import DeepPQRConfig, deep_pqr
from prime_science.core.errors import InvalidArgumentError
from prime_science.sim import bus_engine, samq_bus

NUM_STATES, NUM_ACTIONS, NUM_INCREMENTS = 5, 2, 3
KEY = jax.random.key(0)


def _rewards():
    return np.random.default_rng(0).normal(size=(NUM_STATES, NUM_ACTIONS))


def _transitions():
    rng = np.random.default_rng(1)
    return rng.dirichlet(np.ones(NUM_STATES), size=(NUM_ACTIONS, NUM_STATES))


def _probs():
    return np.array([0.3, 0.5, 0.2])


def _tabular(**change):
    fields = dict(
        rewards=_rewards(), transitions=_transitions(), discount=np.float64(0.9), scale=1.0
    )
    fields.update(change)
    return mdp_lib.TabularMDP(**fields)


def _banded(**change):
    fields = dict(
        rewards=_rewards(),
        increment_probs=np.broadcast_to(_probs(), (NUM_ACTIONS, NUM_STATES, 3)).copy(),
        resets=np.array([[False] * NUM_STATES, [True] * NUM_STATES]),
        discount=np.float64(0.9),
        scale=1.0,
    )
    fields.update(change)
    return mdp_lib.BandedMDP(**fields)


def _data(**change):
    """10 bus-months of two buses (increment -1 in each bus's last month)."""
    fields = dict(
        state=np.array([0, 1, 2, 4, 0, 0, 2, 3, 4, 4], np.int32),
        decision=np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 0], np.int32),
        increment=np.array([1, 1, 2, 0, -1, 2, 1, 1, 0, -1], np.int32),
    )
    fields.update(change)
    return ChoiceData(**fields)


def _set(x, index, value):
    x = x.copy()
    x[index] = value
    return x


def _log_policy():
    return np.log(np.full((NUM_STATES, NUM_ACTIONS), 1.0 / NUM_ACTIONS))


def _features():
    return np.stack([np.ones(NUM_STATES), np.arange(NUM_STATES, dtype=float)], -1)


def _counts():
    return np.ones((NUM_STATES, NUM_ACTIONS))


SMALL_DEEP = DeepPQRConfig(hidden=4, batch_size=10, max_epochs=2, max_q_epochs=2)
DEEP = deep_pqr(SMALL_DEEP, 3, 2)


def _rows(n=40):
    rng = np.random.default_rng(2)
    states = rng.normal(size=(n, 3)).astype(np.float32)
    actions = (np.arange(n) % 2).astype(np.int32)
    return states, actions, rng.normal(size=(n, 3)).astype(np.float32)


SAMQ = samq_bus.SamqBusConfig(grid_step=0.5, grid_max=5.0, quadrature_nodes=4, iterations=5)
SAMQ_TABLE = samq_bus.soft_q_table(SAMQ)
BUS = bus_engine.BusEngineDesign(num_states=NUM_STATES, num_buses=2, num_months=5)


class Case(NamedTuple):
    id: str
    fn: Any
    args: tuple = ()
    kwargs: dict = {}
    name: str = ""  # the argument the message must start with


def case(id, fn, *args, name, **kwargs):
    return Case(id, fn, args, kwargs, name)


def estimate(data=None, **change):
    options = dict(num_states=NUM_STATES, discount=0.9, num_increments=NUM_INCREMENTS)
    options.update(change)
    return (_data() if data is None else data,), options


CASES = [
    # --- mdp: constructors ---
    case("make_mdp-discount-1", mdp_lib.make_mdp, _rewards(), _transitions(), 1.0, name="discount"),
    case(
        "make_mdp-discount-neg", mdp_lib.make_mdp, _rewards(), _transitions(), -0.5, name="discount"
    ),
    case(
        "make_mdp-discount-nan",
        mdp_lib.make_mdp,
        _rewards(),
        _transitions(),
        np.nan,
        name="discount",
    ),
    case(
        "make_mdp-rewards-nan",
        mdp_lib.make_mdp,
        _set(_rewards(), (1, 1), np.nan),
        _transitions(),
        0.9,
        name="rewards",
    ),
    case(
        "make_mdp-transitions-negative",
        mdp_lib.make_mdp,
        _rewards(),
        _set(_transitions(), (0, 0), [-0.5, 1.5, 0.0, 0.0, 0.0]),
        0.9,
        name="transitions",
    ),
    case(
        "make_mdp-transitions-rowsum",
        mdp_lib.make_mdp,
        _rewards(),
        _transitions() * 1.01,
        0.9,
        name="transitions",
    ),
    case("make_mdp-scale-0", mdp_lib.make_mdp, _rewards(), _transitions(), 0.9, 0.0, name="scale"),
    case(
        "make_banded_mdp-discount",
        mdp_lib.make_banded_mdp,
        _rewards(),
        _probs(),
        [False, True],
        1.01,
        name="discount",
    ),
    case(
        "make_banded_mdp-rowsum",
        mdp_lib.make_banded_mdp,
        _rewards(),
        _probs() * 0.9,
        [False, True],
        0.9,
        name="increment_probs",
    ),
    case(
        "bus_engine_mdp-discount-1.01",
        mdp_lib.bus_engine_mdp,
        9.0,
        2.0,
        _probs(),
        NUM_STATES,
        1.01,
        name="discount",
    ),
    case(
        "bus_engine_mdp-discount-1",
        mdp_lib.bus_engine_mdp,
        9.0,
        2.0,
        _probs(),
        NUM_STATES,
        1.0,
        name="discount",
    ),
    case(
        "bus_engine_mdp-discount-neg",
        mdp_lib.bus_engine_mdp,
        9.0,
        2.0,
        _probs(),
        NUM_STATES,
        -0.5,
        banded=True,
        name="discount",
    ),
    case(
        "bus_engine_mdp-probs-negative",
        mdp_lib.bus_engine_mdp,
        9.0,
        2.0,
        np.array([-0.2, 1.0, 0.2]),
        NUM_STATES,
        0.9,
        name="increment_probs",
    ),
    case(
        "bus_engine_mdp-probs-rowsum",
        mdp_lib.bus_engine_mdp,
        9.0,
        2.0,
        _probs() * 0.9,
        NUM_STATES,
        0.9,
        banded=True,
        name="increment_probs",
    ),
    case(
        "bus_engine_mdp-num_states-0",
        mdp_lib.bus_engine_mdp,
        9.0,
        2.0,
        _probs(),
        0,
        0.9,
        name="num_states",
    ),
    case(
        "bus_engine_mdp-rc-nan",
        mdp_lib.bus_engine_mdp,
        np.nan,
        2.0,
        _probs(),
        NUM_STATES,
        0.9,
        name="replacement_cost",
    ),
    case(
        "banded_transition-rank",
        mdp_lib.banded_transition,
        np.full((2, 2), 0.5),
        NUM_STATES,
        name="increment_probs",
    ),
    case("bus_utilities-num_states-float", mdp_lib.bus_utilities, 9.0, 2.0, 2.5, name="num_states"),
    case(
        "expected_next_values-shape",
        mdp_lib.expected_next_values,
        _tabular(),
        np.zeros(4),
        name="value",
    ),
    # --- solvers ---
    case(
        "successive-discount-1",
        solvers.successive_approximation,
        _tabular(discount=np.float64(1.0)),
        name="discount",
    ),
    case(
        "newton-transitions-negative",
        solvers.newton_kantorovich,
        _tabular(transitions=_set(_transitions(), (1, 2), [1.2, -0.2, 0, 0, 0])),
        name="transitions",
    ),
    case(
        "solve_relative-rowsum",
        solvers.solve_relative,
        _tabular(transitions=_transitions() * 0.5),
        name="transitions",
    ),
    case(
        "solve_relative-rewards-inf",
        solvers.solve_relative,
        _tabular(rewards=_set(_rewards(), (0, 0), np.inf)),
        name="rewards",
    ),
    case("solve_relative-tol-0", solvers.solve_relative, _tabular(), tol=0.0, name="tol"),
    case(
        "solve_relative-max_iters-0",
        solvers.solve_relative,
        _tabular(),
        max_iters=0,
        name="max_iters",
    ),
    case(
        "solve_relative-initial-nan",
        solvers.solve_relative,
        _tabular(),
        initial_value=np.full(NUM_STATES, np.nan),
        name="initial_value",
    ),
    case(
        "solve_relative-banded-discount",
        solvers.solve_relative,
        _banded(discount=np.float64(1.0)),
        name="discount",
    ),
    case(
        "newton_solve-discount",
        solvers.newton_solve,
        _tabular(discount=np.float64(1.5)),
        np.zeros(NUM_STATES),
        np.ones(NUM_STATES),
        name="discount",
    ),
    case(
        "newton_solve-value-shape",
        solvers.newton_solve,
        _tabular(),
        np.zeros(3),
        np.ones(NUM_STATES),
        name="relative_value",
    ),
    case(
        "policy_solve-probs-shape",
        solvers.policy_solve,
        _banded(),
        np.full((NUM_STATES, 3), 0.3),
        np.ones(NUM_STATES),
        name="probs",
    ),
    case(
        "linear_solve-not-square", solvers.linear_solve, np.ones((3, 2)), np.ones(3), name="matrix"
    ),
    # --- nfxp ---
    case(
        "estimate_bus-discount-1.01",
        nfxp.estimate_bus,
        *estimate(discount=1.01)[0],
        **estimate(discount=1.01)[1],
        name="discount",
    ),
    case(
        "estimate_bus-discount-1",
        nfxp.estimate_bus,
        *estimate(discount=1)[0],
        **estimate(discount=1)[1],
        name="discount",
    ),
    case(
        "estimate_bus-discount-neg",
        nfxp.estimate_bus,
        *estimate(discount=-0.5)[0],
        **estimate(discount=-0.5)[1],
        name="discount",
    ),
    case(
        "estimate_bus-discount-nan",
        nfxp.estimate_bus,
        *estimate(discount=np.nan)[0],
        **estimate(discount=np.nan)[1],
        name="discount",
    ),
    case(
        "estimate_bus-num_increments-small",
        nfxp.estimate_bus,
        *estimate(num_increments=2)[0],
        **estimate(num_increments=2)[1],
        name="num_increments",
    ),
    case(
        "estimate_bus-state-too-large",
        nfxp.estimate_bus,
        *estimate(_data(state=_set(_data().state, 3, NUM_STATES)))[0],
        **estimate()[1],
        name="data.state",
    ),
    case(
        "estimate_bus-state-negative",
        nfxp.estimate_bus,
        *estimate(_data(state=_set(_data().state, 0, -1)))[0],
        **estimate()[1],
        name="data.state",
    ),
    case(
        "estimate_bus-decision-2",
        nfxp.estimate_bus,
        *estimate(_data(decision=_set(_data().decision, 2, 2)))[0],
        **estimate()[1],
        name="data.decision",
    ),
    case(
        "estimate_bus-increment-below-minus-1",
        nfxp.estimate_bus,
        *estimate(_data(increment=_set(_data().increment, 4, -2)))[0],
        **estimate()[1],
        name="data.increment",
    ),
    case(
        "estimate_bus-no-observed-increment",
        nfxp.estimate_bus,
        *estimate(_data(increment=np.full(10, -1, np.int32)))[0],
        **estimate()[1],
        name="data.increment",
    ),
    case(
        "estimate_bus-empty",
        nfxp.estimate_bus,
        *estimate(ChoiceData(*(np.zeros(0, np.int32),) * 3))[0],
        **estimate()[1],
        name="data",
    ),
    case(
        "estimate_bus-length-mismatch",
        nfxp.estimate_bus,
        *estimate(_data(decision=_data().decision[:9]))[0],
        **estimate()[1],
        name="data.decision",
    ),
    case(
        "estimate_bus-float-state",
        nfxp.estimate_bus,
        *estimate(_data(state=_data().state.astype(float)))[0],
        **estimate()[1],
        name="data.state",
    ),
    case(
        "estimate_bus-tuple-data", nfxp.estimate_bus, tuple(_data()), **estimate()[1], name="data"
    ),
    case(
        "estimate_bus-num_states-0",
        nfxp.estimate_bus,
        *estimate(num_states=0)[0],
        **estimate(num_states=0)[1],
        name="num_states",
    ),
    case(
        "estimate_bus-max_iters-0",
        nfxp.estimate_bus,
        *estimate(max_iters=0)[0],
        **estimate(max_iters=0)[1],
        name="max_iters",
    ),
    case(
        "estimate_bus-tol-nan",
        nfxp.estimate_bus,
        *estimate(tol=np.nan)[0],
        **estimate(tol=np.nan)[1],
        name="tol",
    ),
    case(
        "estimate_bus-initial-nan",
        nfxp.estimate_bus,
        *estimate(initial_params=np.array([np.nan, 1.0]))[0],
        **estimate(initial_params=np.array([np.nan, 1.0]))[1],
        name="initial_params",
    ),
    case(
        "transition_mle-num_increments-small",
        nfxp.transition_mle,
        _data().increment,
        2,
        name="num_increments",
    ),
    case(
        "transition_log_likelihood-increment-range",
        nfxp.transition_log_likelihood,
        np.array([0.5, 0.5]),
        _data().increment,
        name="increment_probs",
    ),
    case(
        "bus_log_likelihood-params-shape",
        nfxp.bus_log_likelihood,
        np.ones(3),
        _probs(),
        _data(),
        NUM_STATES,
        0.9,
        name="params",
    ),
    case(
        "choice_log_likelihood-discount-1",
        nfxp.choice_log_likelihood,
        np.ones(2),
        _probs(),
        _data(),
        NUM_STATES,
        1.0,
        name="discount",
    ),
    case(
        "bus_log_choice_table-probs",
        nfxp.bus_log_choice_table,
        np.ones(2),
        _probs() * 2,
        NUM_STATES,
        0.9,
        name="increment_probs",
    ),
    # --- ccp ---
    case(
        "ccp-discount-1",
        ccp.estimate_bus_ccp,
        *estimate(discount=1)[0],
        **estimate(discount=1)[1],
        name="discount",
    ),
    case(
        "ccp-discount-neg",
        ccp.estimate_bus_ccp,
        *estimate(discount=-0.5)[0],
        **estimate(discount=-0.5)[1],
        name="discount",
    ),
    case(
        "ccp-decision-2",
        ccp.estimate_bus_ccp,
        *estimate(_data(decision=_set(_data().decision, 0, 2)))[0],
        **estimate()[1],
        name="data.decision",
    ),
    case(
        "ccp-num_npl_iters-neg",
        ccp.estimate_bus_ccp,
        *estimate(num_npl_iters=-1)[0],
        **estimate(num_npl_iters=-1)[1],
        name="num_npl_iters",
    ),
    case(
        "ccp-num_newton_iters-0",
        ccp.estimate_bus_ccp,
        *estimate(num_newton_iters=0)[0],
        **estimate(num_newton_iters=0)[1],
        name="num_newton_iters",
    ),
    case(
        "ccp-empty",
        ccp.estimate_bus_ccp,
        *estimate(ChoiceData(*(np.zeros(0, np.int32),) * 3))[0],
        **estimate()[1],
        name="data",
    ),
    case(
        "ccp-num_increments-small",
        ccp.estimate_bus_ccp,
        *estimate(num_increments=1)[0],
        **estimate(num_increments=1)[1],
        name="num_increments",
    ),
    case(
        "frequency_ccp-state-range",
        ccp.frequency_ccp,
        _data(state=_set(_data().state, 1, 7)),
        NUM_STATES,
        name="data.state",
    ),
    # --- pqr ---
    case(
        "tabular_pqr-discount-1",
        pqr.tabular_pqr,
        _log_policy(),
        _transitions(),
        1.0,
        name="discount",
    ),
    case(
        "tabular_pqr-max_iters-0",
        pqr.tabular_pqr,
        _log_policy(),
        _transitions(),
        0.9,
        method="successive",
        max_iters=0,
        name="max_iters",
    ),
    case(
        "tabular_pqr-tol-neg",
        pqr.tabular_pqr,
        _log_policy(),
        _transitions(),
        0.9,
        tol=-1.0,
        name="tol",
    ),
    case(
        "tabular_pqr-log_policy-nan",
        pqr.tabular_pqr,
        _set(_log_policy(), (2, 0), np.nan),
        _transitions(),
        0.9,
        name="log_policy",
    ),
    case(
        "frequency_log_policy-num_actions-0",
        pqr.frequency_log_policy,
        _data().state,
        _data().decision,
        NUM_STATES,
        0,
        name="num_actions",
    ),
    case(
        "frequency_transitions-next-range",
        pqr.frequency_transitions,
        _data().state,
        _data().decision,
        _set(_data().state, 0, NUM_STATES),
        NUM_STATES,
        2,
        name="next_states",
    ),
    # --- maxent_irl ---
    case(
        "maxent-discount-1",
        maxent_irl.maxent_irl,
        _features(),
        _transitions(),
        1.0,
        _counts(),
        name="discount",
    ),
    case(
        "maxent-transitions-rowsum",
        maxent_irl.maxent_irl,
        _features(),
        _transitions() * 1.1,
        0.9,
        _counts(),
        name="transitions",
    ),
    case(
        "maxent-counts-negative",
        maxent_irl.maxent_irl,
        _features(),
        _transitions(),
        0.9,
        _set(_counts(), (0, 0), -1.0),
        name="counts",
    ),
    case(
        "maxent-counts-empty",
        maxent_irl.maxent_irl,
        _features(),
        _transitions(),
        0.9,
        np.zeros((NUM_STATES, NUM_ACTIONS)),
        name="counts",
    ),
    case(
        "maxent-features-nan",
        maxent_irl.maxent_irl,
        _set(_features(), (0, 1), np.nan),
        _transitions(),
        0.9,
        _counts(),
        name="features",
    ),
    case(
        "maxent-max_iters-0",
        maxent_irl.maxent_irl,
        _features(),
        _transitions(),
        0.9,
        _counts(),
        max_iters=0,
        name="max_iters",
    ),
    case(
        "maxent-initial-shape",
        maxent_irl.maxent_irl,
        _features(),
        _transitions(),
        0.9,
        _counts(),
        initial_params=np.zeros(3),
        name="initial_params",
    ),
    case(
        "choice_counts-weights-negative",
        maxent_irl.choice_counts,
        _data().state,
        _data().decision,
        NUM_STATES,
        2,
        weights=_set(np.ones(10), 4, -1.0),
        name="weights",
    ),
    case(
        "maxent_log_policy-transitions-negative",
        maxent_irl.maxent_log_policy,
        np.zeros(2),
        _features(),
        _set(_transitions(), (0, 1), [1.5, -0.5, 0, 0, 0]),
        0.9,
        name="transitions",
    ),
    case(
        "maxent_log_likelihood-discount",
        maxent_irl.maxent_log_likelihood,
        np.zeros(2),
        _features(),
        _transitions(),
        -0.1,
        _counts(),
        name="discount",
    ),
    # --- ascent ---
    case(
        "halving_ascent-max_iters-0",
        halving_ascent,
        None,
        None,
        np.zeros(2),
        None,
        tol=1e-6,
        max_iters=0,
        max_halvings=3,
        name="max_iters",
    ),
    # --- deep_pqr ---
    case("deep_pqr-fit-int-key", DEEP.fit, 0, *_rows(), name="key"),
    case("deep_pqr-prepare-int-key", DEEP.prepare, 0, *_rows(), name="key"),
    case("deep_pqr-fit-policy-int-key", DEEP.fit_policy, 0, None, name="key"),
    case("deep_pqr-fit-anchor-q-int-key", DEEP.fit_anchor_q, 0, None, None, name="key"),
    case("deep_pqr-fit-reward-int-key", DEEP.fit_reward, 0, None, None, None, name="key"),
    case("deep_pqr-fit-key-batch", DEEP.fit, jax.random.split(KEY, 2), *_rows(), name="key"),
    case(
        "deep_pqr-learning-rate-0",
        deep_pqr,
        SMALL_DEEP._replace(learning_rate=0.0),
        3,
        2,
        name="config.learning_rate",
    ),
    case(
        "deep_pqr-discount-nan",
        deep_pqr,
        SMALL_DEEP._replace(discount=float("nan")),
        3,
        2,
        name="config.discount",
    ),
    case(
        "deep_pqr-reward-states-shape",
        DEEP.reward,
        None,
        np.zeros((4, 2), np.float32),
        name="states",
    ),
    # --- sim.bus_engine ---
    case("draw_shocks-int-key", bus_engine.draw_shocks, 0, BUS, name="key"),
    case("simulate_bus_panel-int-key", bus_engine.simulate_bus_panel, 0, BUS, name="key"),
    case(
        "simulate_bus_panel-discount-1",
        bus_engine.simulate_bus_panel,
        KEY,
        BUS._replace(discount=1.0),
        name="design.discount",
    ),
    case(
        "draw_shocks-probs-negative",
        bus_engine.draw_shocks,
        KEY,
        BUS._replace(increment_probs=(1.2, -0.2)),
        name="design.increment_probs",
    ),
    case(
        "simulate_bus_panel-num_buses-0",
        bus_engine.simulate_bus_panel,
        KEY,
        BUS._replace(num_buses=0),
        name="design.num_buses",
    ),
    case(
        "simulate_from_shocks-shape",
        bus_engine.simulate_from_shocks,
        bus_engine.BusShocks(np.zeros((5, 3), np.float32), np.zeros((5, 3), np.int32)),
        BUS,
        name="shocks.uniforms",
    ),
    case(
        "simulate_from_shocks-increment-range",
        bus_engine.simulate_from_shocks,
        bus_engine.BusShocks(np.zeros((5, 2), np.float32), np.full((5, 2), 5, np.int32)),
        BUS,
        name="shocks.increments",
    ),
    # --- sim.samq_bus ---
    case("samq-reset-int-key", samq_bus.reset, 0, SAMQ, name="key"),
    case("samq-step-int-key", samq_bus.step, 0, np.zeros(3, np.float32), 1, SAMQ, name="key"),
    case("samq-simulate-int-key", samq_bus.simulate, 0, SAMQ_TABLE, SAMQ, 2, 3, name="key"),
    case("samq-step-action-2", samq_bus.step, KEY, np.zeros(3, np.float32), 2, SAMQ, name="action"),
    case(
        "samq-step-state-shape", samq_bus.step, KEY, np.zeros(2, np.float32), 1, SAMQ, name="state"
    ),
    case(
        "samq-soft_q_table-discount-1",
        samq_bus.soft_q_table,
        SAMQ._replace(discount=1.0),
        name="config.discount",
    ),
    case(
        "samq-soft_q_table-grid_step-0",
        samq_bus.soft_q_table,
        SAMQ._replace(grid_step=0.0),
        name="config.grid_step",
    ),
    case(
        "samq-log_policy-states-shape",
        samq_bus.log_policy,
        SAMQ_TABLE,
        np.zeros((4, 2), np.float32),
        SAMQ,
        name="states",
    ),
    case("samq-rewards-states-shape", samq_bus.rewards, np.zeros((4, 5)), SAMQ, name="states"),
    case("samq-simulate-table", samq_bus.simulate, KEY, (1, 2), SAMQ, 2, 3, name="table"),
]


def _numpy_leaves(tree):
    leaves = jax.tree.leaves((tree,), is_leaf=lambda x: isinstance(x, np.ndarray))
    return [x for x in leaves if isinstance(x, np.ndarray)]


def test_case_ids_are_unique_and_enough():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 50


@pytest.mark.parametrize("bad", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_named_error_and_leaves_inputs_unchanged(bad):
    inputs = (bad.args, bad.kwargs)
    before = [x.copy() for x in _numpy_leaves(inputs)]
    with pytest.raises(InvalidArgumentError, match=f"^{re.escape(bad.name)}: expected "):
        bad.fn(*bad.args, **bad.kwargs)
    after = _numpy_leaves(inputs)
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(new, old)
        assert new.dtype == old.dtype


@pytest.mark.slow
def test_discount_zero_is_the_static_logit():
    """Documented: discount 0 is allowed (Q = u); NFXP fits the static logit and the solver's
    V is T(0) = log sum_a exp(u)."""
    with jax.enable_x64(True):
        value, info = solvers.newton_kantorovich(_tabular(discount=np.float64(0.0)))
        expected = np.log(np.exp(_rewards()).sum(1))
        np.testing.assert_allclose(value, expected, rtol=1e-12)
        assert bool(info.converged)
        mixed = _data(decision=np.array([0, 0, 1, 0, 0, 0, 0, 0, 1, 0], np.int32))
        fit = jax.jit(
            lambda d: nfxp.estimate_bus(
                d, num_states=NUM_STATES, discount=0.0, num_increments=NUM_INCREMENTS
            )
        )(mixed)
    assert bool(fit.info.converged)
    assert np.all(np.isfinite(np.asarray(fit.params)))


@pytest.mark.parametrize(
    "solve", [solvers.successive_approximation, solvers.newton_kantorovich], ids=["sa", "nk"]
)
def test_traced_discount_one_is_not_reported_converged(solve):
    """Inside jit nothing is checked; at beta = 1 the relative iteration settles but
    V = W + g / (1 - beta) is infinite, and the solver must not claim convergence."""
    value, info = jax.jit(lambda m: solve(m, max_iters=200))(_tabular(discount=np.float32(1.0)))
    assert not np.all(np.isfinite(np.asarray(value)))
    assert not bool(info.converged)
