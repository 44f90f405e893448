"""IRL with an anchor action (Geng et al. 2020): PQR's exactness, then PQR vs NFXP vs MaxEnt IRL.

Part 1 (exact: Geng et al. 2020's identification result, checked to rounding), recomputed for
every seed in float64 (and float32 for the float32 tolerance):

* identification: a random MDP (``num_states x num_actions``, ``beta = discount``,
  ``r ~ N(0, 1)`` with anchor column 0 set to 0, ``P`` rows ``~ Dirichlet(0.5)``, drawn from the
  seed), its exact logit policy, then :func:`~prime_science.choice.pqr.tabular_pqr` with anchor
  0 and ``r_A = 0``: ``max |r^ - r|`` in float64 and with the model solved and inverted in
  float32;
* anchor shift: anchor reward ``anchor_shift`` instead of 0: ``max |r^_delta - r^ - delta|`` and
  ``max |log pi(r^_delta) - log pi|`` (the policy implied by the shifted reward);
* Su-Judd bus (Su and Judd 2012's design of Rust 1987's model: 175 bins, ``beta = 0.975``),
  exact ``P`` and ``pi``, anchor = replace
  with reward 0: ``max_x |r^(x, keep) - (RC - 0.001 theta11 x)|`` (bins ``x = 0 .. 174``; the
  model's own keep-minus-replace utility, :func:`~prime_science.choice.mdp.bus_utilities`).

Part 2 (bus, sample size). One Su-Judd panel of ``max(bus_num_buses) x bus_num_months`` per
seed (:mod:`prime_science.sim.bus_engine`); the smaller panels are its first buses (nested,
0/1 masks of the one panel, run one after the other by ``lax.map`` so that one compiled
function serves every size; NFXP gets the sub-panel repeated to the full length, which
multiplies its log-likelihood by a constant and leaves the MLE unchanged).
Every method uses NFXP's first stage for the transitions: ``theta3^`` = increment frequencies,
``P^`` = the banded bus transitions with ``theta3^``. The quantity compared is the keep-minus-
replace reward ``d(x) = r(x, keep) - r(x, replace)``, true ``RC - 0.001 theta11 x``; the error
is the RMSE of ``d^(x) - d(x)`` over the bins the panel visits (unweighted):

* ``pqr_frequency``: PQR (anchor replace, ``r_A = 0``, so ``d^ = r^(x, keep)``) on the
  smoothed frequency policy (``pseudo_count`` pseudo-observations per state,
  :mod:`~prime_science.choice.pqr`);
* ``pqr_logit``: PQR on a logit P-step: ``logit pi(replace | x)`` a polynomial of degree
  ``logit_degree`` in ``x / (S - 1)``, fitted by Newton's method on the choice counts
  (ridge ``1e-6``);
* ``pqr_linear``: a linear-in-x reward head on ``pqr_logit``: the least-squares line through
  ``r^(x, keep)`` weighted by the visits of ``x`` (a linear reward head);
* ``nfxp``: :func:`~prime_science.choice.nfxp.estimate_bus`, ``d^ = RC^ - 0.001 theta11^ x``.
  BHHH starts at the ``pqr_linear`` line (``RC_0 =`` intercept, ``theta11_0 = -1000 x``
  slope, clipped to ``[1, 30] x [0.1, 10]``): a two-step start that saves iterations (the MLE
  does not depend on it where BHHH converges; ``bus_nfxp_converged`` reports convergence);
* ``maxent``: :func:`~prime_science.choice.maxent_irl.maxent_irl` with features
  ``(1, 0.001 x)``: a state-only reward, so its own ``d^`` is identically 0 (``maxent_raw``;
  its RMSE is the RMS of the truth). For a fair comparison its fitted policy is put in the
  anchor normalisation (replace reward 0) by PQR: ``maxent`` is the keep reward of the unique
  reward with replace reward 0 that gives the same policy as the MaxEnt fit.

Part 3 (tabular, sample size; action-dependent rewards). The random MDP of part 1; ``n``
i.i.d. transitions (``s`` uniform, ``a ~ pi(. | s)``, ``s' ~ P``; nested prefixes of one draw of
``max(tabular_sample_sizes)``); frequency ``pi^`` and ``P^`` (``pseudo_count``); ``pqr``: PQR on
them; ``maxent``: MaxEnt IRL with one-hot state features (the most flexible state-only reward)
on the same ``P^``, normalised by PQR as above. Error: RMSE of ``r^ - r`` over the non-anchor
actions and all states.

All parts run in float64: ``Config.precision = "float64"``, so the runner traces ``run`` with
x64 enabled (call ``run`` inside ``jax.enable_x64(True)`` outside the runner). A vmapped ``run``
computes its seeds one after the other (``jax.custom_batching.sequential_vmap``): a vmapped
MaxEnt fit (its ``eigh`` inside a batched ``while_loop``) did not return on XLA:CPU in this
jax version.

Expectations: part 1's errors are at rounding level; PQR's error falls with the sample size;
MaxEnt (Ziebart et al. 2008) cannot represent action-dependent rewards, so its error stays large
(a soft expectation, by construction); NFXP (correctly specified, parametric) is the most
efficient on the bus.

Why PQR is hard on the bus (anchor coverage): with replace as the anchor,
``Q_A`` is a constant set by ``log pi(replace | x)`` at the bins a replacement leads to
(``x = 0 .. 4``), where the true replacement probability is about ``1e-5`` and no replacement
is ever observed. With ``r_A = 0``, ``r^(x, keep) = log pi(keep | x) - log pi(replace | x) +
beta (E_{x'|x, keep} - E_{x'|0, keep})[log pi(replace | x')]``: the frequency policy's smoothed
``log pi^(replace | x)`` (about ``log (0.5 / n(x))`` where no replacement is seen, against a
true ``-11.7`` at ``x = 0``) biases every reward by several units and shrinks only like
``log n``; the logit P-step extrapolates the low-mileage replacement probability from the
high-mileage replacements (degree 2: the true logit is concave in ``x``, a quadratic fits it
within 0.07 over bins 0 .. 119; degree 3 was unstable on 5-25 buses).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from experiments._common import standard_error
from prime_science.choice import mdp as mdp_lib
from prime_science.choice import nfxp
from prime_science.choice.data import ChoiceData
from prime_science.choice.maxent_irl import choice_counts, maxent_irl
from prime_science.choice.pqr import frequency_log_policy, frequency_transitions, tabular_pqr
from prime_science.choice.solvers import linear_solve, solve_relative
from prime_science.core.errors import fail
from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.sim.bus_engine import BusEngineDesign, draw_shocks, simulate_from_shocks

__all__ = [
    "NAME",
    "BUS_METHODS",
    "TABULAR_METHODS",
    "BUS_METHOD_LABELS",
    "TABULAR_METHOD_LABELS",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "Exact",
    "Results",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "irl"
BUS_METHODS = ("pqr_frequency", "pqr_logit", "pqr_linear", "nfxp", "maxent", "maxent_raw")
TABULAR_METHODS = ("pqr", "maxent")
BUS_METHOD_LABELS = {
    "pqr_frequency": "PQR, frequency policy",
    "pqr_logit": "PQR, logit policy of degree 2",
    "pqr_linear": "PQR, logit policy, linear reward head",
    "nfxp": "NFXP (parametric maximum likelihood)",
    "maxent": "MaxEnt IRL, anchor-normalised",
    "maxent_raw": "MaxEnt IRL, raw (state-only reward)",
}
"""Each bus method in words (the logit degree of the default config)."""
TABULAR_METHOD_LABELS = {
    "pqr": "PQR, frequency policy and transitions",
    "maxent": "MaxEnt IRL (one-hot states), anchor-normalised",
}
"""Each method on the random MDP in words."""
DATASETS: tuple[str, ...] = ()
"""Packaged data sets the experiment reads: none (simulated data)."""
NA_REASONS: dict[str, str] = {}
"""No metric of this experiment can be undefined."""


class Config(NamedTuple):
    """Static settings (hashable).

    Attributes:
      num_states, num_actions, discount: the random MDP of parts 1 and 3.
      anchor_shift: ``delta`` of the anchor-shift check.
      bus_num_buses: panel sizes of part 2 (buses; nested; each divides the largest).
      bus_num_months: months per bus.
      bus_num_states, bus_discount: the Su-Judd design (175 bins, 0.975).
      pseudo_count: ``lambda`` of the frequency estimators.
      logit_degree: degree of the logit P-step polynomial.
      nfxp_tol, nfxp_max_iters: BHHH stops when ``g^T H^{-1} g < nfxp_tol`` or after
        ``nfxp_max_iters`` iterations.
      tabular_sample_sizes: sample sizes of part 3 (nested).
      precision: ``"float64"``: the runner enables x64 for this experiment.
    """

    num_states: int = 50
    num_actions: int = 3
    discount: float = 0.9
    anchor_shift: float = 1.5
    bus_num_buses: tuple[int, ...] = (5, 10, 25, 50)
    bus_num_months: int = 120
    bus_num_states: int = 175
    bus_discount: float = 0.975
    pseudo_count: float = 1.0
    logit_degree: int = 2
    nfxp_tol: float = 1e-8
    nfxp_max_iters: int = 50
    tabular_sample_sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    precision: str = "float64"

    @classmethod
    def quick(cls) -> Config:
        """5, 10, 25 and 50 buses x 120 months; 1k, 10k, 100k tabular transitions."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Adds 200-bus panels and 1M tabular transitions."""
        return cls(
            bus_num_buses=(5, 10, 25, 50, 200),
            tabular_sample_sizes=(1_000, 10_000, 100_000, 1_000_000),
        )

    @property
    def design(self) -> BusEngineDesign:
        return BusEngineDesign(
            num_states=self.bus_num_states,
            discount=self.bus_discount,
            num_buses=max(self.bus_num_buses),
            num_months=self.bus_num_months,
        )


class Exact(NamedTuple):
    """Part 1 of one seed (max abs errors).

    Attributes:
      random_mdp_float64, random_mdp_float32: ``max |r^ - r|`` on the random MDP.
      anchor_shift: ``max |r^_delta - r^ - delta|``.
      anchor_shift_policy: ``max |log pi(r^_delta) - log pi|``.
      su_judd_keep: ``max_x |r^(x, keep) - (RC - 0.001 theta11 x)|``.
      su_judd_replace: ``max_x |r^(x, replace)|`` (the anchor reward is returned as given).
    """

    random_mdp_float64: jax.Array
    random_mdp_float32: jax.Array
    anchor_shift: jax.Array
    anchor_shift_policy: jax.Array
    su_judd_keep: jax.Array
    su_judd_replace: jax.Array


class Results(NamedTuple):
    """Everything ``run`` returns for one seed.

    Attributes:
      exact: part 1.
      bus_rmse: ``{method: float[len(bus_num_buses)]}`` part 2 RMSE per panel size.
      bus_keep_reward: ``{method: float[bus_num_states]}`` ``d^(x)`` on the largest panel.
      bus_visits: ``float[bus_num_states]`` visits of each bin in the largest panel.
      bus_nfxp_converged: ``bool[len(bus_num_buses)]``.
      bus_maxent_slope: ``float[len(bus_num_buses)]`` MaxEnt's coefficient of ``0.001 x``.
      tabular_rmse: ``{method: float[len(tabular_sample_sizes)]}`` part 3.
    """

    exact: Exact
    bus_rmse: dict[str, jax.Array]
    bus_keep_reward: dict[str, jax.Array]
    bus_visits: jax.Array
    bus_nfxp_converged: jax.Array
    bus_maxent_slope: jax.Array
    tabular_rmse: dict[str, jax.Array]


def _random_mdp(key, config: Config, dtype) -> mdp_lib.TabularMDP:
    """The random MDP of part 1 (drawn in float64 and cast, so that both precisions share the
    draw)."""
    key_reward, key_transitions = jax.random.split(key)
    shape = (config.num_states, config.num_actions)
    reward = jax.random.normal(key_reward, shape, jnp.float64).at[:, 0].set(0.0)
    concentration = jnp.full(config.num_states, 0.5, jnp.float64)
    transitions = jax.random.dirichlet(key_transitions, concentration, shape[::-1], jnp.float64)
    return mdp_lib.TabularMDP(
        reward.astype(dtype),
        transitions.astype(dtype),
        jnp.asarray(config.discount, dtype),
        jnp.asarray(1.0, dtype),
    )


def _log_policy(model: mdp_lib.TabularMDP) -> jax.Array:
    relative_value, _ = solve_relative(model)
    return mdp_lib.log_choice_probabilities(model, relative_value)


def _bus_model(config: Config, increment_probs) -> mdp_lib.TabularMDP:
    design = config.design
    return mdp_lib.bus_engine_mdp(
        jnp.asarray(design.replacement_cost, jnp.float64),
        jnp.asarray(design.theta11, jnp.float64),
        increment_probs,
        design.num_states,
        design.discount,
    )


def _exact(key, config: Config) -> Exact:
    """Part 1 (module docstring)."""
    model = _random_mdp(key, config, jnp.float64)
    log_policy = _log_policy(model)
    base = tabular_pqr(log_policy, model.transitions, model.discount)
    model32 = _random_mdp(key, config, jnp.float32)
    base32 = tabular_pqr(_log_policy(model32), model32.transitions, model32.discount)
    shifted = tabular_pqr(log_policy, model.transitions, model.discount, 0, config.anchor_shift)
    implied = _log_policy(model._replace(rewards=shifted.reward))

    design = config.design
    bus = _bus_model(config, jnp.asarray(design.increment_probs, jnp.float64))
    bus_reward = tabular_pqr(
        _log_policy(bus), bus.transitions, bus.discount, mdp_lib.REPLACE
    ).reward
    return Exact(
        random_mdp_float64=jnp.max(jnp.abs(base.reward - model.rewards)),
        random_mdp_float32=jnp.max(jnp.abs(base32.reward.astype(jnp.float64) - model32.rewards)),
        anchor_shift=jnp.max(jnp.abs(shifted.reward - base.reward - config.anchor_shift)),
        anchor_shift_policy=jnp.max(jnp.abs(implied - log_policy)),
        su_judd_keep=jnp.max(jnp.abs(bus_reward[:, mdp_lib.KEEP] - _true_difference(config))),
        su_judd_replace=jnp.max(jnp.abs(bus_reward[:, mdp_lib.REPLACE])),
    )


def _true_difference(config: Config) -> jax.Array:
    """``float64[S]``: ``u(x, keep) - u(x, replace) = RC - 0.001 theta11 x``."""
    design = config.design
    utilities = mdp_lib.bus_utilities(
        jnp.asarray(design.replacement_cost, jnp.float64),
        jnp.asarray(design.theta11, jnp.float64),
        design.num_states,
    )
    return utilities[:, mdp_lib.KEEP] - utilities[:, mdp_lib.REPLACE]


def _logit_log_policy(counts: jax.Array, degree: int, num_newton_iters: int = 30) -> jax.Array:
    """``float[S, 2]``: the logit P-step, ``logit pi(replace | x) = B(x) beta`` with
    ``B(x) = (1, z, .., z^degree)``, ``z = x / (S - 1)``, by Newton's method on the counts
    (ridge ``1e-6``)."""
    num_states = counts.shape[0]
    z = jnp.arange(num_states, dtype=counts.dtype) / (num_states - 1)
    basis = z[:, None] ** jnp.arange(degree + 1)
    visits, replacements = counts.sum(1), counts[:, mdp_lib.REPLACE]
    ridge = 1e-6 * jnp.eye(degree + 1, dtype=counts.dtype)

    def newton(_, beta):
        prob = jax.nn.sigmoid(basis @ beta)
        gradient = basis.T @ (replacements - visits * prob) - ridge @ beta
        hessian = (basis * (visits * prob * (1 - prob))[:, None]).T @ basis + ridge
        return beta + linear_solve(hessian, gradient)

    beta = jax.lax.fori_loop(0, num_newton_iters, newton, jnp.zeros(degree + 1, counts.dtype))
    eta = basis @ beta
    return jnp.stack([jax.nn.log_sigmoid(-eta), jax.nn.log_sigmoid(eta)], -1)


def _rmse(error: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(jnp.where(mask, error**2, 0.0)) / jnp.sum(mask))


def _bus_panel(
    data: ChoiceData, mask: jax.Array, tiled: ChoiceData, config: Config
) -> dict[str, jax.Array]:
    """Part 2 for one panel, the rows of ``data`` where ``mask`` is 1 (and ``tiled``: those
    rows repeated to the full length, for NFXP: repeating a panel ``k`` times multiplies its
    log-likelihood by ``k`` and leaves the MLE unchanged); ``{method: d^ [S]}``, visits, NFXP
    convergence, MaxEnt's slope."""
    design = config.design
    num_states = design.num_states
    num_increments = len(design.increment_probs)
    increments = jnp.where(mask > 0, data.increment, -1)
    increment_probs = nfxp.transition_mle(increments, num_increments, jnp.float64)
    transitions = _bus_model(config, increment_probs).transitions
    counts = choice_counts(data.state, data.decision, num_states, 2, jnp.float64, mask)
    visits = counts.sum(1)

    def pqr_keep(log_policy):
        reward = tabular_pqr(log_policy, transitions, design.discount, mdp_lib.REPLACE).reward
        return reward[:, mdp_lib.KEEP]

    estimates = {}
    frequency = frequency_log_policy(
        data.state, data.decision, num_states, 2, config.pseudo_count, jnp.float64, mask
    )
    estimates["pqr_frequency"] = pqr_keep(frequency)
    estimates["pqr_logit"] = pqr_keep(_logit_log_policy(counts, config.logit_degree))

    x = jnp.arange(num_states, dtype=jnp.float64)
    design_matrix = jnp.stack([jnp.ones_like(x), x], -1)
    weighted = design_matrix * visits[:, None]
    line = linear_solve(weighted.T @ design_matrix, weighted.T @ estimates["pqr_logit"])
    estimates["pqr_linear"] = design_matrix @ line

    start = jnp.stack([jnp.clip(line[0], 1.0, 30.0), jnp.clip(-1000.0 * line[1], 0.1, 10.0)])
    fit = nfxp.estimate_bus(
        tiled,
        num_states=num_states,
        discount=design.discount,
        num_increments=num_increments,
        initial_params=start,
        tol=config.nfxp_tol,
        max_iters=config.nfxp_max_iters,
    )
    estimates["nfxp"] = fit.params[0] - 0.001 * fit.params[1] * x

    features = jnp.stack([jnp.ones_like(x), 0.001 * x], -1)
    maxent = maxent_irl(features, transitions, design.discount, counts)
    estimates["maxent"] = pqr_keep(maxent.log_policy)
    estimates["maxent_raw"] = jnp.zeros_like(x)
    return {
        "estimates": estimates,
        "visits": visits,
        "nfxp_converged": fit.info.converged,
        "maxent_slope": maxent.params[1],
    }


def _check_sizes(config: Config) -> None:
    largest = max(config.bus_num_buses)
    if any(largest % size for size in config.bus_num_buses):
        fail(
            "config.bus_num_buses",
            f"panel sizes that divide the largest ({largest})",
            config.bus_num_buses,
        )


def _bus(key, config: Config):
    """Part 2: the nested panels (module docstring), vmapped over the sizes (masks of the
    largest panel, so that one compiled function serves every size)."""
    design = config.design
    data = simulate_from_shocks(draw_shocks(key, design), design)
    rows = data.state.shape[0]
    sizes = np.asarray(config.bus_num_buses) * design.num_months
    masks = jnp.asarray(np.arange(rows)[None, :] < sizes[:, None], jnp.float64)
    tiled_rows = np.stack([np.tile(np.arange(size), rows // size) for size in sizes])
    tiled = ChoiceData(*(x[tiled_rows] for x in data))
    panels = jax.lax.map(lambda inputs: _bus_panel(data, *inputs, config), (masks, tiled))
    truth = _true_difference(config)
    visited = panels["visits"] > 0
    rmse = {
        method: jax.vmap(_rmse)(estimate - truth, visited)
        for method, estimate in panels["estimates"].items()
    }
    largest = {method: estimate[-1] for method, estimate in panels["estimates"].items()}
    return (
        rmse,
        largest,
        panels["visits"][-1],
        panels["nfxp_converged"],
        panels["maxent_slope"],
    )


def _tabular(key_model, key_data, config: Config) -> dict[str, jax.Array]:
    """Part 3 (module docstring): the random MDP of ``key_model`` (part 1's), samples from
    ``key_data``, the sample sizes one after the other (0/1 weights on one draw)."""
    model = _random_mdp(key_model, config, jnp.float64)
    log_policy = _log_policy(model)
    num_states, num_actions = config.num_states, config.num_actions
    key_states, key_actions, key_next = jax.random.split(key_data, 3)
    size = max(config.tabular_sample_sizes)
    states = jax.random.randint(key_states, (size,), 0, num_states)
    actions = jax.random.categorical(key_actions, log_policy[states])
    next_states = jax.random.categorical(key_next, jnp.log(model.transitions[actions, states]))
    features = jnp.eye(num_states, dtype=jnp.float64)
    non_anchor = jnp.zeros((num_states, num_actions), bool).at[:, 1:].set(True)
    sizes = np.asarray(config.tabular_sample_sizes)
    masks = jnp.asarray(np.arange(size)[None, :] < sizes[:, None], jnp.float64)

    def one(mask):
        frequency = frequency_log_policy(
            states, actions, num_states, num_actions, config.pseudo_count, jnp.float64, mask
        )
        transitions = frequency_transitions(
            states,
            actions,
            next_states,
            num_states,
            num_actions,
            config.pseudo_count,
            dtype=jnp.float64,
            weights=mask,
        )
        pqr_reward = tabular_pqr(frequency, transitions, model.discount).reward
        counts = choice_counts(states, actions, num_states, num_actions, jnp.float64, mask)
        maxent = maxent_irl(features, transitions, model.discount, counts)
        maxent_reward = tabular_pqr(maxent.log_policy, transitions, model.discount).reward
        return {
            "pqr": _rmse(pqr_reward - model.rewards, non_anchor),
            "maxent": _rmse(maxent_reward - model.rewards, non_anchor),
        }

    return jax.lax.map(one, masks)


def _one_seed(key_data: jax.Array, config: Config) -> Results:
    key = jax.random.wrap_key_data(key_data)
    key_exact, key_bus, key_samples = jax.random.split(key, 3)
    exact = _exact(key_exact, config)
    bus_rmse, keep_reward, visits, converged, slopes = _bus(key_bus, config)
    tabular = _tabular(key_exact, key_samples, config)  # part 1's MDP, fresh samples
    return Results(exact, bus_rmse, keep_reward, visits, converged, slopes, tabular)


def run(key: PRNGKey, config: Config) -> Results:
    """All three parts for one seed (module docstring), in float64 (trace it inside
    ``jax.enable_x64(True)``, as the runner does); a vmapped ``run`` computes its seeds one after
    the other."""
    _check_sizes(config)
    one_seed = jax.custom_batching.sequential_vmap(functools.partial(_one_seed, config=config))
    return one_seed(jax.random.key_data(key))


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Per seed: ``exact_<field>`` (part 1 errors); ``bus_rmse_<method>_<B>buses`` and
    ``bus_nfxp_converged_<B>buses`` (part 2); ``tabular_rmse_<method>_n<N>`` (part 3); and the
    comparisons the targets read: ``bus_pqr_logit_rmse_ratio`` and ``tabular_pqr_rmse_ratio``
    (RMSE at the largest sample over the smallest), ``bus_pqr_minus_maxent_rmse`` (pqr_logit)
    and ``tabular_pqr_minus_maxent_rmse`` at the largest sample, ``bus_pqr_linear_minus_nfxp_rmse``
    at the largest panel, ``bus_maxent_slope`` there."""
    metrics = {f"exact_{name}": float(value) for name, value in results.exact._asdict().items()}
    for method in BUS_METHODS:
        for num_buses, value in zip(config.bus_num_buses, results.bus_rmse[method], strict=True):
            metrics[f"bus_rmse_{method}_{num_buses}buses"] = float(value)
    for num_buses, value in zip(config.bus_num_buses, results.bus_nfxp_converged, strict=True):
        metrics[f"bus_nfxp_converged_{num_buses}buses"] = float(value)
    for method in TABULAR_METHODS:
        for n, value in zip(config.tabular_sample_sizes, results.tabular_rmse[method], strict=True):
            metrics[f"tabular_rmse_{method}_n{n}"] = float(value)
    bus, tabular = results.bus_rmse, results.tabular_rmse
    metrics["bus_pqr_logit_rmse_ratio"] = float(bus["pqr_logit"][-1] / bus["pqr_logit"][0])
    metrics["bus_pqr_frequency_rmse_ratio"] = float(
        bus["pqr_frequency"][-1] / bus["pqr_frequency"][0]
    )
    metrics["tabular_pqr_rmse_ratio"] = float(tabular["pqr"][-1] / tabular["pqr"][0])
    metrics["bus_pqr_minus_maxent_rmse"] = float(bus["pqr_logit"][-1] - bus["maxent"][-1])
    metrics["tabular_pqr_minus_maxent_rmse"] = float(tabular["pqr"][-1] - tabular["maxent"][-1])
    metrics["bus_pqr_linear_minus_nfxp_rmse"] = float(bus["pqr_linear"][-1] - bus["nfxp"][-1])
    metrics["bus_maxent_slope"] = float(results.bus_maxent_slope[-1])
    return metrics


def _metric_labels(config: Config) -> dict[str, str]:
    """Every metric of :func:`summarize` under ``config`` in words (rewards in utility units)."""
    exact = "exact policy and transitions"
    labels = {
        "exact_random_mdp_float64": f"largest reward error of PQR, {exact}, random MDP, float64",
        "exact_random_mdp_float32": f"largest reward error of PQR, {exact}, random MDP, float32",
        "exact_anchor_shift": "largest |r_delta - r - delta| after adding delta to the anchor "
        "reward",
        "exact_anchor_shift_policy": "largest change of log pi implied by the shifted reward",
        "exact_su_judd_keep": "largest |r(x, keep) - (RC - 0.001 theta11 x)| of PQR, "
        f"{exact}, Su-Judd bus",
        "exact_su_judd_replace": "largest |r(x, replace)| of PQR, Su-Judd bus (the anchor "
        "reward, given as 0)",
    }
    difference = "RMSE of the keep-minus-replace reward over visited mileage bins"
    for buses in config.bus_num_buses:
        panel = f"{buses} buses x {config.bus_num_months} months"
        for method, label in BUS_METHOD_LABELS.items():
            labels[f"bus_rmse_{method}_{buses}buses"] = f"{difference}, {label}, {panel}"
        labels[f"bus_nfxp_converged_{buses}buses"] = f"NFXP (BHHH) converged (1 = yes), {panel}"
    for n in config.tabular_sample_sizes:
        for method, label in TABULAR_METHOD_LABELS.items():
            labels[f"tabular_rmse_{method}_n{n}"] = (
                f"RMSE of the recovered reward over states and non-anchor actions, {label}, "
                f"random MDP, {n:,} transitions"
            )
    largest = "at the largest bus panel"
    return labels | {
        "bus_pqr_logit_rmse_ratio": "reward RMSE of PQR (logit policy), largest over smallest "
        "bus panel (ratio)",
        "bus_pqr_frequency_rmse_ratio": "reward RMSE of PQR (frequency policy), largest over "
        "smallest bus panel (ratio)",
        "tabular_pqr_rmse_ratio": "reward RMSE of PQR on the random MDP, largest over smallest "
        "sample (ratio)",
        "bus_pqr_minus_maxent_rmse": f"{difference}, PQR (logit policy) minus MaxEnt IRL, "
        f"{largest}",
        "tabular_pqr_minus_maxent_rmse": "reward RMSE on the random MDP, PQR minus MaxEnt IRL, "
        "at the largest sample",
        "bus_pqr_linear_minus_nfxp_rmse": f"{difference}, PQR with a linear reward head minus "
        f"NFXP, {largest}",
        "bus_maxent_slope": f"MaxEnt IRL's coefficient of 0.001 x (state-only reward), {largest}",
    }


METRIC_LABELS: dict[str, str] = _metric_labels(Config.quick()) | _metric_labels(Config.full())
"""Every metric of :func:`summarize` in words (``full()`` adds a panel and a sample size)."""
_CONSISTENT = (
    "Geng et al. (2020, ICML): PQR's reward error is bounded with estimated policy and "
    "transitions, so it falls as the sample grows; a directional expectation"
)
_EXACT = (
    "Geng et al. (2020, ICML), Deep PQR: with known policy and transitions the anchor action's "
    "reward identifies every reward ({}); exact, tolerance set by this project"
)
targets = [
    Target(
        "exact_random_mdp_float64",
        "<",
        1e-8,
        "numeric: PQR with exact pi and P recovers every reward of a random 50 x 3 MDP "
        "(beta = 0.9) within 1e-8 in float64",
        _EXACT.format("unique recovery"),
    ),
    Target(
        "exact_random_mdp_float32",
        "<",
        1e-4,
        "numeric: the same within 1e-4 with the model solved and inverted in float32",
        _EXACT.format("unique recovery"),
    ),
    Target(
        "exact_anchor_shift",
        "<",
        1e-8,
        "numeric: anchor reward + delta shifts every recovered reward by delta (within 1e-8)",
        _EXACT.format("a shifted anchor reward shifts every reward by the same constant"),
    ),
    Target(
        "exact_anchor_shift_policy",
        "<",
        1e-8,
        "numeric: the policy implied by the shifted reward is unchanged (log pi within 1e-8)",
        _EXACT.format("a shifted anchor reward shifts every reward by the same constant"),
    ),
    Target(
        "exact_su_judd_keep",
        "<",
        1e-6,
        "numeric: Su-Judd bus, anchor = replace with reward 0: r(x, keep) = RC - 0.001 theta11 x "
        "for all 175 bins within 1e-6",
        _EXACT.format("Rust (1987) bus in Su and Judd (2012)'s design: keep-minus-replace utility"),
    ),
    Target(
        "bus_pqr_logit_rmse_ratio",
        "<",
        1.0,
        "directional: PQR's keep-minus-replace reward RMSE (logit P-step) falls from the "
        "smallest to the largest bus panel",
        _CONSISTENT,
    ),
    Target(
        "tabular_pqr_rmse_ratio",
        "<",
        1.0,
        "directional: PQR's reward RMSE (frequency pi and P) on the random MDP falls from the "
        "smallest to the largest sample",
        _CONSISTENT,
    ),
    Target(
        "tabular_pqr_minus_maxent_rmse",
        "<",
        0.0,
        "soft, directional: on action-dependent rewards PQR's reward RMSE is below MaxEnt IRL's "
        "(state-only reward; compared in the anchor normalisation) at the largest sample",
        "Geng et al. (2020, ICML) report PQR ahead of MaxEnt-IRL-style baselines (Ziebart et "
        "al. 2008) on reward error; their numbers are not reproduced here: a soft target, "
        "expected by construction (MaxEnt's reward is state-only)",
    ),
    Target(
        "bus_pqr_minus_maxent_rmse",
        "<",
        0.0,
        "soft, directional: on the bus (replacement cost: an action-dependent reward) PQR's "
        "keep-minus-replace RMSE is below MaxEnt IRL's at the largest panel",
        "Geng et al. (2020, ICML) report PQR ahead of MaxEnt-IRL-style baselines (Ziebart et "
        "al. 2008) on reward error; their numbers are not reproduced here: a soft target, "
        "expected by construction (MaxEnt's reward is state-only)",
    ),
]


_MARKERS = ("o", "s", "^", "D", "v", "P")
_DASHES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (1, 1)))


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Reward RMSE vs sample size per method (mean +- s.e. over seeds), bus and tabular; the
    recovered keep-minus-replace reward of seed 0's largest panel."""
    out_dir = Path(out_dir)
    seeds = np.asarray(results.exact.random_mdp_float64).shape[0]
    figure = Figure(figsize=(10.0, 4.0), layout="constrained")
    axes = figure.subplots(1, 2)
    panels = (
        (
            axes[0],
            config.bus_num_buses,
            results.bus_rmse,
            f"buses (x {config.bus_num_months} months)",
            "Su-Judd bus: keep-minus-replace reward",
            BUS_METHOD_LABELS,
        ),
        (
            axes[1],
            config.tabular_sample_sizes,
            results.tabular_rmse,
            "transitions",
            f"random MDP, {config.num_states} states x {config.num_actions} actions",
            TABULAR_METHOD_LABELS,
        ),
    )
    for ax, sizes, rmse, xlabel, title, labels in panels:
        for index, (method, values) in enumerate(rmse.items()):
            values = np.asarray(values, np.float64)
            # side by side on the log axis, each its own marker and dash: no curve hides another
            offset = 1.04 ** (index - (len(rmse) - 1) / 2)
            ax.errorbar(
                np.asarray(sizes) * offset,
                values.mean(0),
                yerr=standard_error(values),
                label=labels[method],
                capsize=3,
                marker=_MARKERS[index],
                linestyle=_DASHES[index],
                markerfacecolor="none",
            )
        ax.set(
            xscale="log",
            yscale="log",
            xlabel=xlabel,
            ylabel="reward RMSE (utility units)",
            title=f"{title}, {seeds} seeds (± s.e.)",
        )
        ax.set_xticks(list(sizes), [f"{size:,}" for size in sizes])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    rmse_path = out_dir / "reward_rmse.png"
    figure.savefig(rmse_path, dpi=120)

    figure = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = figure.subplots()
    x = np.arange(config.bus_num_states)
    visited = np.asarray(results.bus_visits)[0] > 0
    truth = np.asarray(_true_difference(config))
    ax.plot(x, truth, "k-", linewidth=2.5, label="truth: RC - 0.001 theta11 x")
    for index, method in enumerate(BUS_METHODS):
        estimate = np.asarray(results.bus_keep_reward[method], np.float64)[0]
        # hollow markers of decreasing size over dashed lines: coinciding estimates stay visible
        ax.plot(
            x[visited],
            estimate[visited],
            marker=_MARKERS[index],
            markersize=7 - index,
            markevery=max(1, int(visited.sum()) // 25),
            markerfacecolor="none",
            linestyle=_DASHES[index],
            linewidth=1,
            label=BUS_METHOD_LABELS[method],
        )
    ax.set(
        xlabel="mileage bin x",
        ylabel="r(x, keep) - r(x, replace) (utility units)",
        title=f"seed 0, {max(config.bus_num_buses)} buses (visited mileage bins)",
        ylim=(min(-5.0, float(truth.min()) - 5.0), float(truth.max()) + 10.0),
    )
    ax.legend(fontsize=8)
    curve_path = out_dir / "keep_reward.png"
    figure.savefig(curve_path, dpi=120)
    return [rmse_path, curve_path]
