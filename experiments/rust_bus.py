"""Rust (1987) bus engine replacement: NFXP replication of Table IX and a Su-Judd Monte Carlo.

Part 1 (deterministic): Rust's Table IX, ``beta = 0.9999``, 90 bins of 5,000 miles, linear cost
``c(x) = 0.001 theta11 x``, on group 4 and on groups 1-4 of the original data
(:mod:`prime_science.datasets.rust_bus`, with the conventions of
``prime_science/datasets/data/rust_bus/PROVENANCE.md``).
Estimation by :func:`prime_science.choice.nfxp.estimate_bus`: ``theta3`` = increment
frequencies, ``(RC, theta11)`` by BHHH over the choice likelihood with the Newton-Kantorovich
inner loop; standard errors from the outer product of the full-likelihood scores. The data do
not depend on the seed, so this part is computed once per ``Config`` when ``run`` is traced
(eagerly, in float64, under ``jax.ensure_compile_time_eval``; the data are read there, outside
``jit``) and enters the traced function as constants: every seed reports the same numbers.

Published values (PROVENANCE.md; Rust 1987 Table IX):

==========  =======  =======  ==============  =========
sample      RC       theta11  theta3 (0, 1)   LL
==========  =======  =======  ==============  =========
group 4     10.075   2.293    .3919, .5953    -3304.155
groups 1-4  9.7558   2.6275   .3489, .6394    -6055.25
==========  =======  =======  ==============  =========

Targets: RC and theta11 within 0.5%, theta3 within 0.001, LL within 0.1%. Known gap: our
groups 1-4 increment counts have one 2-bin jump fewer than Rust's (PROVENANCE.md), worth about
5 log-likelihood points (0.08%).

Part 2 (uses the key): Su and Judd (2012)'s Monte Carlo (:mod:`prime_science.sim.bus_engine`):
175 bins, ``beta = 0.975``, true ``(RC, theta11) = (11.7257, 2.4569)``, ``mc_num_datasets``
panels of ``mc_num_buses x mc_num_months`` per seed, each estimated by NFXP (``theta3``
estimated too; BHHH to ``g^T H^{-1} g < mc_tol``, the inner fixed point on the banded model) and
by NPL (``mc_npl_iters`` policy iterations after the Hotz-Miller step), all in one jitted call
(``lax.map`` over the panels, ``vmap`` over chunks of ``mc_batch_size``).
Per seed and estimator: mean, s.d. and RMSE of the estimates, the relative bias
``|mean / truth - 1|`` and ``|z| = |mean - truth| / (s.d. / sqrt(n))``; and the largest
``|NPL - NFXP|`` over panels (NPL's fixed point is the MLE, Aguirregabiria and Mira 2002).

Measured (``full()``, one seed, 250 panels): the NFXP means sit above the truth by about 4%
(RC) and 5% (theta11), about 4 Monte Carlo standard errors: a finite-sample bias of the MLE at
50 buses x 120 months (NPL gives the same numbers). It is not a simulation error: with 500
buses per panel (100 panels, a check run by hand) the means are within 0.1 standard errors of
the truth. The targets therefore allow a 10% relative bias rather than testing for none.

Why the 250-panel call used to take over 10 minutes: every inner Newton step, and every tangent
of the BHHH scores, factorised a dense ``175 x 175`` matrix (a 175-step loop of rank-one updates
of ``[250, 175, 175]`` arrays under ``vmap``), many times per BHHH step. The banded model
(:class:`prime_science.choice.mdp.BandedMDP`) makes each of those an ``O(S J)`` back
substitution (4 panels: 48 s dense, 2.3 s banded). A vmapped BHHH loop also runs in lock step
until its slowest panel stops: one panel of 250 needs 126 BHHH iterations (its buses reach the
top mileage bin; BHHH converges linearly there), the mean is 14, and at BHHH tolerance 1e-10
about 10% of panels stalled at the inner solver's accuracy and ran to the cap. With
``mc_tol = 1e-8`` the 250 panels take ~38 s as one ``vmap`` and ~2 s as a ``lax.map`` over
single panels on 2 CPU cores (``mc_batch_size = 1``; ``mc_max_iters`` caps the loop and the
iterations are reported).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from prime_science.choice import ccp, nfxp
from prime_science.choice.data import ChoiceData
from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.datasets import rust_bus
from prime_science.sim.bus_engine import BusEngineDesign, draw_shocks, simulate_from_shocks

__all__ = [
    "NAME",
    "PUBLISHED",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "Replication",
    "Results",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "rust_bus"
DATASETS: tuple[str, ...] = ("rust_bus",)
"""Packaged data sets the experiment reads (:mod:`prime_science.datasets`)."""

PUBLISHED: dict[tuple[int, ...], dict[str, float]] = {
    (4,): {"rc": 10.075, "theta11": 2.293, "theta3_0": 0.3919, "theta3_1": 0.5953, "ll": -3304.155},
    (1, 2, 3, 4): {
        "rc": 9.7558,
        "theta11": 2.6275,
        "theta3_0": 0.3489,
        "theta3_1": 0.6394,
        "ll": -6055.25,
    },
}
"""Rust (1987) Table IX, ``beta = 0.9999`` (via PROVENANCE.md), by sample (tuple of groups)."""


class Config(NamedTuple):
    """Static settings.

    Attributes:
      samples: the group selections of part 1.
      num_bins, bin_size, discount: Table IX's discretisation and discount.
      initial_params: BHHH start ``(RC, theta11)`` (part 1 and part 2).
      mc_num_datasets: simulated panels per seed (part 2; 0 skips it).
      mc_num_buses, mc_num_months, mc_num_states, mc_discount: the Su-Judd design.
      mc_tol: BHHH tolerance on ``g^T H^{-1} g`` in part 2 (1e-10 stalls at the inner
        solver's accuracy on some panels; 1e-8 changes the estimates by ~1e-5).
      mc_max_iters: BHHH iterations in part 2.
      mc_npl_iters: NPL policy iterations in part 2.
      mc_batch_size: panels per ``vmap`` inside the ``lax.map`` over panels (1: one panel at a
        time, fastest on CPU, where a vmapped BHHH loop runs in lock step to its slowest
        panel; larger suits accelerators).
      precision: ``"float64"``: the runner enables x64 for this experiment (NFXP at
        ``beta = 0.9999`` needs it).
    """

    samples: tuple[tuple[int, ...], ...] = ((4,), (1, 2, 3, 4))
    num_bins: int = 90
    bin_size: float = 5_000.0
    discount: float = 0.9999
    initial_params: tuple[float, float] = (5.0, 1.0)
    mc_num_datasets: int = 2
    mc_num_buses: int = 50
    mc_num_months: int = 120
    mc_num_states: int = 175
    mc_discount: float = 0.975
    mc_tol: float = 1e-8
    mc_max_iters: int = 200
    mc_npl_iters: int = 20
    mc_batch_size: int = 1
    precision: str = "float64"

    @classmethod
    def quick(cls) -> Config:
        """Table IX, plus 5 Monte Carlo panels per seed."""
        return cls(mc_num_datasets=5)

    @classmethod
    def full(cls) -> Config:
        """Table IX, plus Su and Judd's 250 Monte Carlo panels per seed (run with one seed)."""
        return cls(mc_num_datasets=250)

    @property
    def design(self) -> BusEngineDesign:
        return BusEngineDesign(
            num_states=self.mc_num_states,
            discount=self.mc_discount,
            num_buses=self.mc_num_buses,
            num_months=self.mc_num_months,
        )


class Replication(NamedTuple):
    """Part 1 for one sample (float64).

    Attributes:
      params: ``[2]`` ``(RC, theta11)``.
      increment_probs: ``[3]`` ``theta3``.
      log_likelihood, choice_log_likelihood: full and choice-part log-likelihoods.
      standard_errors: ``[4]`` for ``(RC, theta11, theta3_0, theta3_1)``.
      converged: whether BHHH met its tolerance.
      num_iters: BHHH iterations.
    """

    params: jax.Array
    increment_probs: jax.Array
    log_likelihood: jax.Array
    choice_log_likelihood: jax.Array
    standard_errors: jax.Array
    converged: jax.Array
    num_iters: jax.Array


class Results(NamedTuple):
    """Everything ``run`` returns for one seed.

    Attributes:
      replication: one :class:`Replication` per sample of ``config.samples``.
      mc_params: ``float[D, 2]`` Monte Carlo NFXP estimates of ``(RC, theta11)``.
      mc_increment_probs: ``float[D, J]`` the estimated ``theta3``.
      mc_converged: ``bool[D]`` BHHH convergence.
      mc_num_iters: ``int32[D]`` BHHH iterations.
      mc_npl_params: ``float[D, 2]`` NPL estimates of ``(RC, theta11)``.
      mc_npl_step: ``float[D]`` NPL's last ``max |theta_k - theta_{k-1}|``.
    """

    replication: tuple[Replication, ...]
    mc_params: jax.Array
    mc_increment_probs: jax.Array
    mc_converged: jax.Array
    mc_num_iters: jax.Array
    mc_npl_params: jax.Array
    mc_npl_step: jax.Array


def _choice_data(groups: tuple[int, ...], num_bins: int, bin_size: float) -> ChoiceData:
    data = rust_bus.discretise(rust_bus.load_rust_bus(groups), num_bins, bin_size)
    return ChoiceData(data.state, data.decision, data.increment)


def table_ix_estimator(config: Config, num_increments: int):
    """The jitted NFXP estimate of part 1, in JAX's default float (float64 inside
    ``jax.enable_x64``, as the experiment needs)."""
    return jax.jit(
        functools.partial(
            nfxp.estimate_bus,
            num_states=config.num_bins,
            discount=config.discount,
            num_increments=num_increments,
            initial_params=config.initial_params,
        )
    )


def table_ix_data(groups: tuple[int, ...], config: Config) -> tuple[ChoiceData, int]:
    """``(panel, J)`` for one sample of part 1."""
    data = _choice_data(groups, config.num_bins, config.bin_size)
    return data, int(np.max(data.increment)) + 1


@functools.lru_cache(maxsize=8)
def _replicate(config: Config, dtype: np.dtype) -> tuple[Replication, ...]:
    """Part 1, computed eagerly (once per config and float ``dtype``, JAX's default float of the
    caller: float64 under the runner)."""
    fits = []
    with jax.ensure_compile_time_eval():
        for groups in config.samples:
            data, num_increments = table_ix_data(groups, config)
            estimate = table_ix_estimator(config, num_increments)
            fit = jax.device_get(estimate(jax.tree.map(jnp.asarray, data)))
            fits.append(
                Replication(
                    params=fit.params,
                    increment_probs=fit.increment_probs,
                    log_likelihood=fit.log_likelihood,
                    choice_log_likelihood=fit.choice_log_likelihood,
                    standard_errors=fit.standard_errors,
                    converged=fit.info.converged,
                    num_iters=fit.info.num_iters,
                )
            )
    return tuple(fits)


@functools.lru_cache(maxsize=8)
def monte_carlo_fn(config: Config):
    """The jitted Monte Carlo: key data ``uint32[N, 2]`` -> N NFXP and NPL fits, one call,
    ``lax.map`` over the panels in ``vmap``-ed chunks of ``mc_batch_size``, in JAX's default
    float (float64 inside ``jax.enable_x64``, as the experiment needs); returns
    ``(nfxp params, theta3, converged, BHHH iterations, NPL params, NPL step)``."""
    design = config.design

    def one(key_data):
        shocks = draw_shocks(jax.random.wrap_key_data(key_data), design)
        data = simulate_from_shocks(shocks, design)
        sizes = dict(
            num_states=design.num_states,
            discount=design.discount,
            num_increments=len(design.increment_probs),
            initial_params=config.initial_params,
        )
        fit = nfxp.estimate_bus(data, tol=config.mc_tol, max_iters=config.mc_max_iters, **sizes)
        npl = ccp.estimate_bus_ccp(data, num_npl_iters=config.mc_npl_iters, **sizes)
        return (
            fit.params,
            fit.increment_probs,
            fit.info.converged,
            fit.info.num_iters,
            npl.params,
            npl.npl_step,
        )

    return jax.jit(lambda keys: jax.lax.map(one, keys, batch_size=config.mc_batch_size))


def run(key: PRNGKey, config: Config) -> Results:
    """Part 1 (constants, see the module docstring) and part 2 (simulated with ``key``), in
    float64: ``Config.precision = "float64"`` makes the runner trace it inside
    ``jax.enable_x64(True)`` (do the same when calling it directly)."""
    replication = jax.tree.map(jnp.asarray, _replicate(config, jnp.result_type(float)))
    key_data = jax.random.key_data(jax.random.split(key, config.mc_num_datasets))
    params, probs, converged, iters, npl_params, npl_step = monte_carlo_fn(config)(key_data)
    return Results(
        replication, params, probs, converged, iters.astype(jnp.int32), npl_params, npl_step
    )


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Per sample ``s`` (``group4``, ``groups1to4``): ``{s}_rc``, ``{s}_theta11``,
    ``{s}_theta3_j``, ``{s}_ll``, ``{s}_choice_ll``, ``{s}_se_*``, ``{s}_converged`` and,
    where Rust published the sample, ``{s}_rc_rel_error``, ``{s}_theta11_rel_error``,
    ``{s}_theta3_abs_error`` (the larger of ``theta3_0``, ``theta3_1``), ``{s}_ll_rel_error``.
    Monte Carlo: ``mc_{rc,theta11}_{mean,sd,rmse,rel_bias,abs_z}`` (NFXP), the same with
    ``mc_npl_`` (NPL), ``mc_npl_nfxp_max_abs_diff`` (largest ``|NPL - NFXP|`` over panels and
    both parameters), ``mc_npl_max_step``, ``mc_converged_share``, ``mc_max_iters`` and
    ``mc_mean_iters`` (BHHH)."""
    metrics: dict[str, float] = {}
    for groups, fit in zip(config.samples, results.replication, strict=True):
        name = rust_bus.sample_name(groups)
        rc, theta11 = (float(v) for v in np.asarray(fit.params))
        probs = np.asarray(fit.increment_probs, np.float64)
        metrics |= {f"{name}_rc": rc, f"{name}_theta11": theta11}
        metrics |= {f"{name}_theta3_{j}": float(p) for j, p in enumerate(probs)}
        metrics[f"{name}_ll"] = float(fit.log_likelihood)
        metrics[f"{name}_choice_ll"] = float(fit.choice_log_likelihood)
        se_names = ["rc", "theta11"] + [f"theta3_{j}" for j in range(probs.size - 1)]
        for se_name, se in zip(se_names, np.asarray(fit.standard_errors), strict=True):
            metrics[f"{name}_se_{se_name}"] = float(se)
        metrics[f"{name}_converged"] = float(fit.converged)
        if groups in PUBLISHED:
            ref = PUBLISHED[groups]
            metrics[f"{name}_rc_rel_error"] = abs(rc / ref["rc"] - 1.0)
            metrics[f"{name}_theta11_rel_error"] = abs(theta11 / ref["theta11"] - 1.0)
            metrics[f"{name}_theta3_abs_error"] = max(
                abs(probs[0] - ref["theta3_0"]), abs(probs[1] - ref["theta3_1"])
            )
            metrics[f"{name}_ll_rel_error"] = abs(metrics[f"{name}_ll"] / ref["ll"] - 1.0)
    estimates = np.asarray(results.mc_params, np.float64)
    if estimates.shape[0]:
        design = config.design
        npl = np.asarray(results.mc_npl_params, np.float64)
        for prefix, fits in (("mc", estimates), ("mc_npl", npl)):
            for column, (name, truth) in enumerate(
                (("rc", design.replacement_cost), ("theta11", design.theta11))
            ):
                values = fits[:, column]
                sd = float(values.std(ddof=1)) if values.size > 1 else math.nan
                metrics[f"{prefix}_{name}_mean"] = float(values.mean())
                metrics[f"{prefix}_{name}_sd"] = sd
                metrics[f"{prefix}_{name}_rmse"] = float(np.sqrt(np.mean((values - truth) ** 2)))
                metrics[f"{prefix}_{name}_rel_bias"] = abs(values.mean() / truth - 1.0)
                metrics[f"{prefix}_{name}_abs_z"] = abs(values.mean() - truth) / (
                    sd / math.sqrt(values.size)
                )
        metrics["mc_npl_nfxp_max_abs_diff"] = float(np.max(np.abs(npl - estimates)))
        metrics["mc_npl_max_step"] = float(np.max(np.asarray(results.mc_npl_step)))
        metrics["mc_converged_share"] = float(np.mean(results.mc_converged))
        iters = np.asarray(results.mc_num_iters)
        metrics["mc_max_iters"] = float(np.max(iters))
        metrics["mc_mean_iters"] = float(np.mean(iters))
    return metrics


_NFXP = "NFXP (nested fixed point)"
_NPL = "NPL (nested pseudo-likelihood)"
_SAMPLE_LABELS = {"group4": "group 4", "groups1to4": "groups 1-4"}
_PARAMETER_LABELS = {"rc": "replacement cost RC", "theta11": "maintenance cost theta11"}


def _table_ix_labels(name: str, groups: tuple[int, ...]) -> dict[str, str]:
    """The part-1 metrics of one sample in words, with Rust's published values."""
    sample, published = _SAMPLE_LABELS[name], PUBLISHED[groups]

    def rust(key: str) -> str:
        return f" (Rust 1987 Table IX: {published[key]:g})" if key in published else ""

    labels = {f"{name}_{p}": f"{text}, {sample}{rust(p)}" for p, text in _PARAMETER_LABELS.items()}
    for j in range(3):  # both samples have monthly increments of 0, 1 and 2 bins
        labels[f"{name}_theta3_{j}"] = (
            f"probability theta3_{j} of a {j}-bin monthly mileage increment, {sample}"
            f"{rust(f'theta3_{j}')}"
        )
    for p in ("rc", "theta11", "theta3_0", "theta3_1"):
        labels[f"{name}_se_{p}"] = f"standard error of {p}, {sample}"
    return labels | {
        f"{name}_ll": f"log-likelihood (choices and mileage transitions), {sample}{rust('ll')}",
        f"{name}_choice_ll": f"log-likelihood of the replacement choices alone, {sample}",
        f"{name}_converged": f"BHHH converged (1 = yes), {sample}",
        f"{name}_rc_rel_error": f"relative error of RC against Rust (1987) Table IX, {sample}",
        f"{name}_theta11_rel_error": "relative error of theta11 against Rust (1987) Table IX, "
        f"{sample}",
        f"{name}_theta3_abs_error": "largest absolute error of theta3_0 and theta3_1 against "
        f"Rust (1987) Table IX, {sample}",
        f"{name}_ll_rel_error": "relative error of the log-likelihood against Rust (1987) "
        f"Table IX, {sample}",
    }


def _monte_carlo_labels() -> dict[str, str]:
    """The part-2 metrics in words."""
    labels = {}
    for prefix, method in (("mc", "NFXP"), ("mc_npl", "NPL")):
        for p, text in _PARAMETER_LABELS.items():
            what = f"{method} estimates of {text} over the simulated panels"
            labels |= {
                f"{prefix}_{p}_mean": f"mean of the {what}",
                f"{prefix}_{p}_sd": f"s.d. of the {what}",
                f"{prefix}_{p}_rmse": f"root mean square error of the {what}",
                f"{prefix}_{p}_rel_bias": f"relative bias |mean / truth - 1| of the {what}",
                f"{prefix}_{p}_abs_z": f"|mean - truth| in Monte Carlo standard errors, {what}",
            }
    return labels | {
        "mc_npl_nfxp_max_abs_diff": "largest |NPL - NFXP| over the panels and (RC, theta11)",
        "mc_npl_max_step": "largest final NPL step max |theta_k - theta_k-1| over the panels",
        "mc_converged_share": "share of the panels whose NFXP (BHHH) fit converged",
        "mc_max_iters": "most BHHH iterations of a panel",
        "mc_mean_iters": "mean BHHH iterations per panel",
    }


METRIC_LABELS: dict[str, str] = {
    **_table_ix_labels("group4", (4,)),
    **_table_ix_labels("groups1to4", (1, 2, 3, 4)),
    **_monte_carlo_labels(),
}
"""Every metric of :func:`summarize` in words (the built-in samples, Monte Carlo on)."""
NA_REASONS: dict[str, str] = {
    f"{prefix}_{p}_{stat}": "undefined with a single simulated panel per seed (no s.d.)"
    for prefix in ("mc", "mc_npl")
    for p in _PARAMETER_LABELS
    for stat in ("sd", "abs_z")
}
"""Why a metric can be NaN (not with the built-in configs)."""
_TABLE_IX = (
    "Rust (1987, Econometrica) Table IX, as transcribed in "
    "prime_science/datasets/data/rust_bus/PROVENANCE.md; tolerances set by this project"
)
targets = [
    *(
        Target(
            f"{sample}_{metric}",
            "<",
            value,
            f"numeric: {what} on {sample}, beta = 0.9999, 90 bins, vs Rust's published value",
            _TABLE_IX,
        )
        for sample in ("group4", "groups1to4")
        for metric, value, what in (
            ("rc_rel_error", 0.005, "RC within 0.5%"),
            ("theta11_rel_error", 0.005, "theta11 within 0.5%"),
            ("theta3_abs_error", 0.001, "theta3 within 0.001"),
            ("ll_rel_error", 0.001, "log-likelihood within 0.1%"),
        )
    ),
    *(
        Target(
            f"mc_{name}_rel_bias",
            "<",
            0.1,
            f"numeric (our tolerance): the Monte Carlo mean of {name} is within 10% of the truth "
            f"{truth} (finite-sample MLE bias plus Monte Carlo error; the bias in standard "
            "errors is reported beside it)",
            "Su and Judd (2012, Econometrica), Monte Carlo design of the Rust bus: RC = 11.7257, "
            "theta11 = 2.4569, beta = 0.975, 50 buses x 120 months; the 10% tolerance is this "
            "project's",
        )
        for name, truth in (("rc", 11.7257), ("theta11", 2.4569))
    ),
    Target(
        "mc_npl_nfxp_max_abs_diff",
        "<",
        1e-3,
        "numeric: on every simulated panel NPL (Hotz-Miller step plus policy iterations) reaches "
        "NFXP's maximum likelihood estimate of (RC, theta11) within 1e-3 (NPL's fixed point is "
        "the MLE)",
        "Aguirregabiria and Mira (2002, Econometrica): the fixed point of nested "
        "pseudo-likelihood (NPL) iterations is the maximum likelihood estimate",
    ),
    Target(
        "mc_converged_share",
        ">=",
        1.0,
        "numeric: every Monte Carlo BHHH fit meets its tolerance (the config's mc_tol) within "
        "its iteration cap (mc_max_iters)",
        "implementation check of prime_science/choice/nfxp.py (no paper)",
    ),
]


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Measured vs published (RC, theta11) with 95% intervals; Monte Carlo histograms."""
    out_dir = Path(out_dir)
    paths = []
    figure = Figure(figsize=(8.0, 3.6), layout="constrained")
    axes = figure.subplots(1, 2)
    for column, (key, label) in enumerate(_PARAMETER_LABELS.items()):
        for row, (groups, fit) in enumerate(zip(config.samples, results.replication, strict=True)):
            value = float(np.asarray(fit.params)[0, column])
            se = float(np.asarray(fit.standard_errors)[0, column])
            axes[column].errorbar(
                value,
                row,
                xerr=1.96 * se,
                fmt="o",
                color="C0",
                capsize=3,
                label="NFXP (95% interval)" if row == 0 else None,
            )
            if groups in PUBLISHED:
                axes[column].plot(
                    PUBLISHED[groups][key],
                    row,
                    "x",
                    color="C3",
                    markersize=9,
                    label="Rust (1987) Table IX" if row == 0 else None,
                )
        names = [rust_bus.sample_name(g) for g in config.samples]
        axes[column].set_yticks(range(len(names)), [_SAMPLE_LABELS.get(n, n) for n in names])
        axes[column].set(xlabel=label)
        axes[column].legend(fontsize=8)
    figure.suptitle(
        f"NFXP vs Rust (1987) Table IX: {config.num_bins} mileage bins, beta = {config.discount:g}"
    )
    path = out_dir / "table_ix.png"
    figure.savefig(path, dpi=120)
    paths.append(path)

    estimates = np.asarray(results.mc_params, np.float64).reshape(-1, 2)
    npl = np.asarray(results.mc_npl_params, np.float64).reshape(-1, 2)
    if estimates.shape[0]:
        design = config.design
        truths = (design.replacement_cost, design.theta11)
        figure = Figure(figsize=(12.0, 3.6), layout="constrained")
        axes = figure.subplots(1, 3)
        bins = min(30, max(5, estimates.shape[0] // 5))
        for column, label in enumerate(_PARAMETER_LABELS.values()):
            axes[column].hist(estimates[:, column], bins=bins, alpha=0.7, label=_NFXP)
            axes[column].hist(npl[:, column], bins=bins, histtype="step", color="k", label=_NPL)
            axes[column].axvline(truths[column], color="C3", label="true value")
            axes[column].axvline(
                estimates[:, column].mean(), color="C0", ls="--", label="NFXP mean"
            )
            axes[column].set(xlabel=label, ylabel="panels")
            axes[column].legend(fontsize=7)
        axes[2].scatter(estimates[:, 0], estimates[:, 1], s=8, label=_NFXP)
        axes[2].scatter(npl[:, 0], npl[:, 1], s=20, facecolors="none", edgecolors="k", label=_NPL)
        axes[2].plot(*truths, "x", color="C3", markersize=10, label="true value")
        axes[2].set(xlabel="replacement cost RC", ylabel="maintenance cost theta11")
        figure.suptitle(
            f"{estimates.shape[0]} simulated panels, Su and Judd (2012) design, "
            f"beta = {config.mc_discount:g}"
        )
        axes[2].legend(fontsize=7)
        path = out_dir / "monte_carlo.png"
        figure.savefig(path, dpi=120)
        paths.append(path)
    return paths
