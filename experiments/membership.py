"""Prime membership dynamics: recovery, identification, counterfactuals, price search, retention.

The structural model of :mod:`prime_science.membership.model` (a dynamic discrete choice of
none / monthly / annual with an 11-month annual lock; Rust 1987, with ``none`` as the anchor
action of Geng et al. 2020) is the truth. One seed:

1. **Recovery.** A panel of ``num_members x months`` member-months after a 36-month burn-in
   (:func:`~prime_science.membership.simulate.simulate_panel`) is fitted by the estimators of
   :mod:`prime_science.membership.estimate` (the transition processes known): the static logit
   (``beta = 0``, the naive model), two-step CCP (Hotz and Miller 1993), NPL (Aguirregabiria and
   Mira 2002; three pseudo-likelihood fits), PQR with its precision-weighted projection on the
   features (Geng et al. 2020) and NFXP (Rust 1987; BHHH from the NPL estimate). CCP, NPL and
   PQR start from a sieve-logit first stage (a penalised logit of the choice on a second-order
   expansion of the state; Bajari, Benkard and Levin 2007), not from cell frequencies; PQR's
   standard errors come from the delta method through the sieve's coefficients. Metrics:
   ``max_abs_z_<est>``, the largest ``|estimate - truth| / s.e.`` over the six utility
   parameters, and ``coverage_<est>``, the share of the six 95 % intervals that cover the truth.
2. **Counterfactuals.** The population today (the panel's final states) is simulated 24 months
   ahead (:func:`~prime_science.membership.counterfactual.counterfactual`, common random
   numbers) under the truth and under each estimate, with the annual price at 100 %, 110 % and
   90 %. Metric: the error of each estimator's annual share 12 months after the change against
   the truth's, in percentage points.
3. **Price search.** Discounted revenue per customer over the horizon on a grid of annual prices
   (:func:`~prime_science.membership.counterfactual.price_search`) under each model; the
   revenue-maximising price of each, and what the truth earns at it.
4. **Identification sweep** (the article's "did they renew for shipping or for video?"): for
   ``engagement_correlation`` in ``sweep_correlations`` with the content shocks on and off,
   ``sweep_replicates`` panels each fitted by CCP
   (:func:`~prime_science.membership.identification.identification_cell`): the s.d. over
   panels of ``theta_ship``, ``theta_video`` and their sum, and the empirical
   ``corr(e_ship, e_video)``.
5. **Retention and heterogeneity.** A cohort of new members (those of ``cohort_members``
   non-members who join in the first month) is followed ``12 cohort_years`` months under the
   truth, and under a 50/50 mix of two latent types
   (``intercept +- type_shift``). Yearly survivors feed the shifted-beta-geometric model
   (Fader and Hardie 2007; :func:`~prime_science.membership.retention.fit_retention`). The
   yearly renewal rate rises with tenure in every population (a member's own engagement and
   tenure grow: state dependence); with two types the aggregate rises by more than the mean
   of the two types' own rises, because the low type leaves first (sorting). The metric
   ``renewal_rise_sorting`` is that excess (year 2 against year 1).
6. **Deep PQR** (Geng et al. 2020) on the continuous variant
   (:func:`~prime_science.membership.continuous.deep_pqr_reward_error`): reward RMSE on
   held-out member-months at each of ``deep_pqr_sizes`` training sizes.

Precision: float32 (the estimators' float32 tolerances).

Measured (``quick()``, 5 seeds, mean +- s.e. over seeds, 2026-12-07, 2-core Intel Xeon): NFXP and
NPL recover every parameter (max |z| 1.47 and 1.48; 29 of the 30 intervals cover the truth),
two-step CCP 1.62 (27 of 30), PQR 2.01 (26 of 30), the static logit 609. NFXP, NPL and CCP
predict the annual share 12 months after a +10 % / -10 % annual price within 0.1-0.3 points
(truth: -7.6 / +7.4 points); PQR misses by 2.3 +- 0.7 / 1.7 +- 0.4 points (0.8-4.4 per seed:
its utility estimates are within 0.12 utils of the truth, yet the annual share is that
sensitive), the static logit by 32 / 20. The best annual price on the grid: $99 under the
truth and every dynamic estimator, the top of the grid under the static logit (36 % of revenue
lost). The shipping / video split stays learnable over the whole sweep: the common shock caps
the panels' engagement correlation near 0.88, and the engagement targets that differ by benefit
still move the two apart. Of the customers who join, 49 % are still members a year later (one
type; 74 % with two types, whose joiners are mostly the high type); sorting adds 0.07 +- 0.05 to
the rise of the yearly renewal rate from year 1 to year 2. Deep PQR's reward RMSE falls from 4.1
to 3.0 utils between 1,000 and 4,000 member-months.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from prime_science.core.experiment import Target
from prime_science.core.types import PRNGKey
from prime_science.membership import (
    continuous,
    counterfactual,
    estimate,
    identification,
    model,
    retention,
    simulate,
)

__all__ = [
    "NAME",
    "METRIC_LABELS",
    "NA_REASONS",
    "DATASETS",
    "Config",
    "Results",
    "run",
    "summarize",
    "targets",
    "plot",
]

NAME = "membership"
DATASETS: tuple[str, ...] = ()
"""Packaged data sets the experiment reads: none (simulated panels)."""
PRICE_FACTORS = (1.0, 1.1, 0.9)
"""The annual price changes of the counterfactuals: none, +10 %, -10 %."""


class Config(NamedTuple):
    """Static settings (hashable).

    Attributes:
      num_members, months, burn_in: the recovery panel (member-months after a burn-in).
      estimators: names from :data:`prime_science.membership.estimate.ESTIMATORS`.
      horizon: months simulated ahead in the counterfactuals and the price search (>= 13).
      price_grid: annual prices tried (dollars).
      sweep_correlations: the ``engagement_correlation`` values of the sweep.
      sweep_members, sweep_months, sweep_replicates: each sweep panel and panels per cell.
      cohort_members, cohort_years: non-members whose first-month joiners form the cohort;
        years followed (12 months each).
      type_shift: the latent types' intercept shift (utils), half the customers each way.
      deep_pqr_sizes: Deep PQR training sizes (free member-months); empty skips it.
    """

    num_members: int = 4_000
    months: int = 24
    burn_in: int = 36
    estimators: tuple[str, ...] = ("static", "ccp", "npl", "pqr", "nfxp")
    horizon: int = 24
    price_grid: tuple[float, ...] = (59.0, 79.0, 99.0, 119.0, 139.0, 179.0, 219.0)
    sweep_correlations: tuple[float, ...] = (0.0, 0.5, 0.95)
    sweep_members: int = 2_000
    sweep_months: int = 24
    sweep_replicates: int = 3
    cohort_members: int = 40_000
    cohort_years: int = 4
    type_shift: float = 0.5
    deep_pqr_sizes: tuple[int, ...] = (1_000, 4_000)

    @classmethod
    def quick(cls) -> Config:
        """The defaults: about 2 minutes a seed on 2 CPU cores (two seeds in parallel)."""
        return cls()

    @classmethod
    def full(cls) -> Config:
        """Larger panels, NFXP, five sweep panels per cell, three Deep PQR sizes."""
        return cls(
            num_members=20_000,
            estimators=("static", "ccp", "npl", "pqr", "nfxp"),
            sweep_members=5_000,
            sweep_replicates=5,
            cohort_members=200_000,
            price_grid=tuple(float(p) for p in range(49, 240, 10)),
            sweep_correlations=(0.0, 0.5, 0.8, 0.95, 0.99),
            deep_pqr_sizes=(1_000, 4_000, 16_000),
        )


class Results(NamedTuple):
    """One seed (``K`` estimators, models = truth then the estimators).

    Attributes:
      truth: ``float[6]`` the true utility parameters.
      estimates, standard_errors: ``float[K, 6]``.
      shares: ``float[1 + K, 3 changes, horizon, 3]`` plan shares (none / monthly / annual)
        under each model and annual price change (:data:`PRICE_FACTORS`).
      price_revenue: ``float[1 + K, G]`` discounted revenue per customer on the price grid.
      sweep_estimates: ``float[2 content on/off, C, R, 6]`` the sweep's CCP fits.
      sweep_correlation: ``float[2, C, R]`` empirical ``corr(e_ship, e_video)`` of each panel.
      survival: ``float[3, 12 years + 1]`` members of the cohort still members after each
        month (entry 0: the cohort's size): one type (the truth), the high type, the low
        type (the two-type population is the sum of the last two).
      sbg: ``float[2, 2]`` the sBG ``(alpha, beta)`` fitted to the yearly survivors of the
        one-type and the two-type populations.
      deep_pqr_rmse: ``float[D, 3]`` Deep PQR's reward RMSE per action at each size.
    """

    truth: jax.Array
    estimates: jax.Array
    standard_errors: jax.Array
    shares: jax.Array
    price_revenue: jax.Array
    sweep_estimates: jax.Array
    sweep_correlation: jax.Array
    survival: jax.Array
    sbg: jax.Array
    deep_pqr_rmse: jax.Array


def _cohort_survival(key, params, num_members, months):
    """``float[months + 1]``: counts of a cohort of new members still members without a break,
    ``months`` months after joining (entry 0: the cohort). The cohort: of ``num_members``
    customers who are not members (:func:`~prime_science.membership.simulate.initial_states`),
    those who join in the first month."""
    key_states, key_join, key_months = jax.random.split(key, 3)
    tables = simulate.tables(params)
    states = simulate.initial_states(key_states, num_members)
    states, action, _ = simulate.step(key_join, tables, states)
    joined = action != model.NONE

    def month(carry, month_key):
        states, alive = carry
        states, action, _ = simulate.step(month_key, tables, states)
        alive = alive & (action != model.NONE)
        return (states, alive), jnp.sum(alive)

    _, alive = jax.lax.scan(month, (states, joined), jax.random.split(key_months, months))
    counts = jnp.concatenate([jnp.sum(joined)[None], alive])
    return counts.astype(params.theta_ship.dtype)


def run(key: PRNGKey, config: Config) -> Results:
    """All six parts for one seed (module docstring); pure and jittable."""
    keys = jax.random.split(key, 8)
    truth = model.true_params(jnp.float32)
    panel, today = simulate.simulate_panel(
        keys[0], truth, config.num_members, config.months, burn_in=config.burn_in
    )
    fits = list(estimate.fit_panel(truth, panel, config.estimators).values())
    estimates = jnp.stack([fit.estimates for fit in fits])
    records = [truth] + [estimate.with_structural(truth, theta) for theta in estimates]
    stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *records)

    def paths(params):
        def one(factor):
            change = counterfactual.Change(annual_price_factor=factor)
            return counterfactual.counterfactual(keys[1], params, change, today, config.horizon)

        return jax.vmap(one)(jnp.asarray(PRICE_FACTORS, jnp.float32)).shares

    def revenue(params):
        grid = jnp.asarray(config.price_grid, jnp.float32)
        return counterfactual.price_search(keys[2], params, grid, today, config.horizon).revenue

    correlations = jnp.asarray(config.sweep_correlations, jnp.float32)
    content = jnp.asarray([True, False])

    def cell(correlation, shocks):
        return identification.identification_cell(
            keys[3],
            truth,
            correlation,
            shocks,
            config.sweep_members,
            config.sweep_months,
            replicates=config.sweep_replicates,
        )

    grid = (jnp.repeat(content, correlations.size), jnp.tile(correlations, 2))
    sweep = jax.lax.map(lambda args: cell(args[1], args[0]), grid)  # no batched LAPACK
    sweep = jax.tree.map(lambda x: x.reshape(2, correlations.size, *x.shape[1:]), sweep)
    months = 12 * config.cohort_years
    shift = jnp.float32(config.type_shift)
    half = config.cohort_members // 2
    homogeneous = _cohort_survival(keys[4], truth, config.cohort_members, months)
    high = _cohort_survival(
        keys[5], truth._replace(intercept=truth.intercept + shift), half, months
    )
    low = _cohort_survival(keys[6], truth._replace(intercept=truth.intercept - shift), half, months)
    survival = jnp.stack([homogeneous, high, low])
    yearly = jnp.stack([homogeneous, high + low])[:, ::12].astype(jnp.int32)
    sbg = jnp.stack(
        [retention.fit_retention("sbg", counts, config.cohort_years).params for counts in yearly]
    )
    deep = [
        continuous.deep_pqr_reward_error(keys[7], truth, size).rmse
        for size in config.deep_pqr_sizes
    ]
    return Results(
        truth=estimate.structural_vector(truth),
        estimates=estimates,
        standard_errors=jnp.stack([fit.standard_errors for fit in fits]),
        shares=jax.vmap(paths)(stacked),
        price_revenue=jax.vmap(revenue)(stacked),
        sweep_estimates=sweep.estimates,
        sweep_correlation=sweep.engagement_correlation,
        survival=survival,
        sbg=sbg,
        deep_pqr_rmse=jnp.stack(deep) if deep else jnp.zeros((0, 3), jnp.float32),
    )


def _cell_name(correlation: float, shocks: bool) -> str:
    return f"rho{correlation:g}_{'content' if shocks else 'nocontent'}"


def summarize(results: Results, config: Config) -> dict[str, float]:
    """Every metric of :data:`METRIC_LABELS` for one seed."""
    r = jax.tree.map(lambda x: np.asarray(x, np.float64), results)
    metrics = {}
    for k, name in enumerate(config.estimators):
        error = r.estimates[k] - r.truth
        metrics[f"max_abs_error_{name}"] = float(np.max(np.abs(error)))
        z = np.abs(error / r.standard_errors[k])
        metrics[f"max_abs_z_{name}"] = float(np.max(z))
        metrics[f"coverage_{name}"] = float(np.mean(z <= 1.959964))
    annual_12 = 100.0 * r.shares[:, :, 12, model.ANNUAL]  # [models, changes]
    for c, label in ((1, "up"), (2, "down")):
        metrics[f"annual_share_truth_{label}"] = float(annual_12[0, c])
        metrics[f"annual_share_change_truth_{label}"] = float(annual_12[0, c] - annual_12[0, 0])
        for k, name in enumerate(config.estimators):
            metrics[f"annual_share_error_{label}_{name}"] = float(
                abs(annual_12[k + 1, c] - annual_12[0, c])
            )
    grid = np.asarray(config.price_grid)
    truth_revenue = r.price_revenue[0]
    metrics["best_price_truth"] = float(grid[np.argmax(truth_revenue)])
    for k, name in enumerate(config.estimators):
        best = int(np.argmax(r.price_revenue[k + 1]))
        metrics[f"best_price_{name}"] = float(grid[best])
        metrics[f"revenue_loss_{name}"] = float(
            100.0 * (1.0 - truth_revenue[best] / truth_revenue.max())
        )
    for s, shocks in enumerate((True, False)):
        for c, correlation in enumerate(config.sweep_correlations):
            spread = identification.spread(r.sweep_estimates[s, c])
            cell = _cell_name(correlation, shocks)
            for i, part in enumerate(("ship", "video", "sum")):
                metrics[f"sweep_sd_{part}_{cell}"] = float(spread.sd[i])
            metrics[f"sweep_engagement_corr_{cell}"] = float(r.sweep_correlation[s, c].mean())
    yearly = r.survival[:, ::12]
    yearly = np.concatenate([yearly, yearly[1:2] + yearly[2:3]])  # + the two-type population
    with np.errstate(divide="ignore", invalid="ignore"):
        renewal = yearly[:, 1:] / yearly[:, :-1]
    rise = renewal[:, 1] - renewal[:, 0]
    for i, population in ((0, "homogeneous"), (3, "types")):
        metrics[f"renewal_year1_{population}"] = float(renewal[i, 0])
        metrics[f"renewal_rise_{population}"] = float(rise[i])
    metrics["renewal_rise_sorting"] = float(rise[3] - 0.5 * (rise[1] + rise[2]))
    for i, population in enumerate(("homogeneous", "types")):
        metrics[f"sbg_alpha_{population}"] = float(r.sbg[i, 0])
        metrics[f"sbg_beta_{population}"] = float(r.sbg[i, 1])
    for d, size in enumerate(config.deep_pqr_sizes):
        metrics[f"deep_pqr_rmse_n{size}"] = float(r.deep_pqr_rmse[d, 1:].mean())
    metrics["deep_pqr_rmse_drop"] = float("nan")
    if len(config.deep_pqr_sizes) > 1:
        metrics["deep_pqr_rmse_drop"] = float(
            r.deep_pqr_rmse[0, 1:].mean() - r.deep_pqr_rmse[-1, 1:].mean()
        )
    return metrics


_ESTIMATOR_WORDS = {
    "static": "the static logit",
    "ccp": "two-step CCP",
    "npl": "NPL",
    "pqr": "PQR's projection",
    "nfxp": "NFXP",
}


def _metric_labels(config: Config) -> dict[str, str]:
    """Every metric of :func:`summarize` under ``config`` in words with units."""
    labels = {}
    for name in config.estimators:
        words = _ESTIMATOR_WORDS[name]
        labels[f"max_abs_error_{name}"] = (
            f"largest |estimate - truth| of the six utility parameters, {words} (utils; "
            "theta_price in utils per dollar)"
        )
        labels[f"max_abs_z_{name}"] = (
            f"largest |estimate - truth| / standard error of the six utility parameters, "
            f"{words} (standard errors)"
        )
        labels[f"coverage_{name}"] = (
            f"share of the six utility parameters whose 95 % interval (estimate +- 1.96 "
            f"standard errors) covers the truth, {words}"
        )
        for label, sign in (("up", "+10 %"), ("down", "-10 %")):
            labels[f"annual_share_error_{label}_{name}"] = (
                f"|annual share predicted by {words} - true annual share| 12 months after an "
                f"annual price change of {sign} (percentage points)"
            )
        labels[f"best_price_{name}"] = (
            f"revenue-maximising annual price on the grid under {words} (dollars)"
        )
        labels[f"revenue_loss_{name}"] = (
            f"true revenue given up by charging {words}'s best annual price instead of the "
            "truth's (% of the truth's best discounted revenue per customer)"
        )
    for label, sign in (("up", "+10 %"), ("down", "-10 %")):
        labels[f"annual_share_truth_{label}"] = (
            f"true annual share 12 months after an annual price change of {sign} (%)"
        )
        labels[f"annual_share_change_truth_{label}"] = (
            f"true change of the annual share 12 months after an annual price change of {sign} "
            "(percentage points)"
        )
    labels["best_price_truth"] = "revenue-maximising annual price on the grid, truth (dollars)"
    for shocks in (True, False):
        for correlation in config.sweep_correlations:
            cell = _cell_name(correlation, shocks)
            where = (
                f"engagement common-shock weight {correlation:g}, content shocks "
                f"{'on' if shocks else 'off'}"
            )
            for part, words in (
                ("ship", "theta_ship"),
                ("video", "theta_video"),
                ("sum", "theta_ship + theta_video"),
            ):
                labels[f"sweep_sd_{part}_{cell}"] = (
                    f"s.d. over panels of the CCP estimate of {words}, {where} (utils)"
                )
            labels[f"sweep_engagement_corr_{cell}"] = (
                f"empirical correlation of shipping and video engagement, {where}"
            )
    for population, words in (("homogeneous", "one type"), ("types", "two latent types")):
        labels[f"renewal_year1_{population}"] = (
            f"share of new members still members after 12 months, {words}"
        )
        labels[f"renewal_rise_{population}"] = (
            f"yearly renewal rate in year 2 minus in year 1, new members, {words} (share points)"
        )
        labels[f"sbg_alpha_{population}"] = f"sBG alpha fitted to yearly survivors, {words}"
        labels[f"sbg_beta_{population}"] = f"sBG beta fitted to yearly survivors, {words}"
    sizes = config.deep_pqr_sizes
    labels["deep_pqr_rmse_drop"] = (
        f"Deep PQR reward RMSE at the smallest minus at the largest of {sizes} training "
        "member-months (utils; > 0: the error falls with n)"
    )
    labels["renewal_rise_sorting"] = (
        "rise of the two-type population's yearly renewal rate (year 2 minus year 1) beyond "
        "the mean of the two types' own rises: the part due to sorting (share points)"
    )
    for size in config.deep_pqr_sizes:
        labels[f"deep_pqr_rmse_n{size}"] = (
            f"Deep PQR reward RMSE on held-out member-months, mean of monthly and annual, "
            f"{size:,} training member-months (utils)"
        )
    return labels


METRIC_LABELS: dict[str, str] = {**_metric_labels(Config.full()), **_metric_labels(Config())}
"""Every metric of :func:`summarize` under ``quick()`` or ``full()`` in words with units."""
NA_REASONS: dict[str, str] = {
    **{
        key: "fewer than two sweep panels per cell: no spread"
        for key in METRIC_LABELS
        if key.startswith("sweep_sd_")
    },
    **{
        key: "every member of a cohort (or of one type) left before the last year: no renewal "
        "rate there"
        for key in ("renewal_rise_homogeneous", "renewal_rise_types", "renewal_rise_sorting")
    },
    "deep_pqr_rmse_drop": "fewer than two Deep PQR training sizes configured",
}

_SOURCE = (
    "the project's structural model of Prime membership (Rust 1987 dynamic discrete choice with "
    "the anchor action of Geng et al. 2020); the article's claims on counterfactual simulation "
    "and on identifying shipping vs video"
)
targets = [
    *(
        Target(
            f"max_abs_z_{name}",
            "<=",
            3.0,
            f"numeric: {_ESTIMATOR_WORDS[name]} recovers every utility parameter within 3 "
            "standard errors",
            "Rust (1987); Hotz and Miller (1993); Aguirregabiria and Mira (2002); Geng et al. "
            "(2020): consistent estimators",
        )
        for name in ("ccp", "npl", "nfxp", "pqr")
    ),
    *(
        Target(
            f"annual_share_error_{label}_{name}",
            "<=",
            2.0,
            f"numeric: {_ESTIMATOR_WORDS[name]} predicts the annual share 12 months after a "
            f"{sign} annual price change within 2 percentage points of the truth",
            _SOURCE,
        )
        for name in ("ccp", "npl", "nfxp", "pqr")
        for label, sign in (("up", "+10 %"), ("down", "-10 %"))
    ),
    Target(
        "annual_share_change_truth_up",
        "<",
        0.0,
        "directional: a 10 % higher annual price lowers the annual share",
        _SOURCE,
    ),
    Target(
        "renewal_rise_sorting",
        ">",
        0.0,
        "directional: with two latent types the cohort's yearly renewal rate rises with tenure "
        "by more than each type's own does (sorting: the low type leaves first)",
        "Fader and Hardie (2007): sorting of heterogeneous customers",
    ),
    Target(
        "deep_pqr_rmse_drop",
        ">",
        0.0,
        "directional: Deep PQR's reward error falls as the training member-months grow",
        "Geng et al. (2020), Deep PQR: consistency of the recovered rewards",
    ),
]


def _sweep_curves(results: Results, config: Config) -> np.ndarray:
    """``[seeds, 2 content, C, 3 parts]`` s.d. over the sweep panels of ship, video, sum."""
    estimates = np.asarray(results.sweep_estimates, np.float64)
    ship = estimates[..., identification.SHIP]
    video = estimates[..., identification.VIDEO]
    parts = np.stack([ship, video, ship + video], axis=-1)  # [seeds, 2, C, R, 3]
    return (
        parts.std(axis=3, ddof=1) if parts.shape[3] > 1 else np.full(parts.shape[:3] + (3,), np.nan)
    )


def plot(results: Results, config: Config, out_dir: Path) -> list[Path]:
    """Recovery, the identification sweep, counterfactual share paths, price search curves and
    cohort survival (means over seeds)."""
    out_dir = Path(out_dir)
    paths = []
    names = config.estimators

    figure = Figure(figsize=(9.0, 4.0), layout="constrained")
    axes = figure.subplots()
    truth = np.asarray(results.truth)[0]
    estimates = np.asarray(results.estimates, np.float64)
    errors_ = np.asarray(results.standard_errors, np.float64)
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        x = np.arange(len(model.STRUCTURAL)) + (k - len(names) / 2 + 0.5) * width
        se = np.where(np.isfinite(errors_[:, k]), errors_[:, k], 0.0).mean(0)
        axes.errorbar(
            x, (estimates[:, k] - truth).mean(0), yerr=2 * se, fmt="o", capsize=3, label=name
        )
    axes.axhline(0.0, color="black", lw=0.8)
    axes.set_xticks(np.arange(len(model.STRUCTURAL)), model.STRUCTURAL)
    axes.set(
        ylabel="estimate - truth (utils; ± 2 s.e.)", title="Recovery of the utility parameters"
    )
    axes.legend()
    paths.append(out_dir / "recovery.png")
    figure.savefig(paths[-1], dpi=120)

    figure = Figure(figsize=(9.0, 4.0), layout="constrained")
    sweep = _sweep_curves(results, config)
    for s, (axes, shocks) in enumerate(
        zip(figure.subplots(1, 2, sharey=True), ("on", "off"), strict=True)
    ):
        for i, part in enumerate(("theta_ship", "theta_video", "theta_ship + theta_video")):
            axes.plot(config.sweep_correlations, sweep[:, s, :, i].mean(0), "o-", label=part)
        axes.set(
            xlabel="common-shock weight of shipping and video engagement",
            title=f"content shocks {shocks}",
        )
    figure.axes[0].set(ylabel="s.d. of the estimate over panels (utils)")
    figure.axes[0].legend()
    figure.suptitle("Can the data tell shipping from video? Small s.d. = learnable")
    paths.append(out_dir / "identification_sweep.png")
    figure.savefig(paths[-1], dpi=120)

    figure = Figure(figsize=(9.0, 4.0), layout="constrained")
    shares = 100.0 * np.asarray(results.shares, np.float64)[..., model.ANNUAL].mean(0)
    months = np.arange(config.horizon)
    for c, (axes, words) in enumerate(
        zip(figure.subplots(1, 2, sharey=True), ("+10 %", "-10 %"), strict=True)
    ):
        for m, name in enumerate(("truth", *names)):
            style = dict(color="black", lw=2.5) if m == 0 else {}
            axes.plot(months, shares[m, c + 1], label=name, **style)
        axes.axvline(12, color="grey", ls=":")
        axes.set(xlabel="months after the change", title=f"annual price {words}")
    figure.axes[0].set(ylabel="annual share of customers (%)")
    figure.axes[0].legend()
    paths.append(out_dir / "counterfactual_shares.png")
    figure.savefig(paths[-1], dpi=120)

    figure = Figure(figsize=(7.2, 4.0), layout="constrained")
    axes = figure.subplots()
    revenue = np.asarray(results.price_revenue, np.float64).mean(0)
    for m, name in enumerate(("truth", *names)):
        style = dict(color="black", lw=2.5) if m == 0 else {}
        axes.plot(config.price_grid, revenue[m], "o-", label=name, **style)
    axes.set(
        xlabel="annual price (dollars)",
        ylabel=f"discounted revenue per customer, {config.horizon} months (dollars)",
        title="Price search: each model's revenue curve",
    )
    axes.legend()
    paths.append(out_dir / "price_search.png")
    figure.savefig(paths[-1], dpi=120)

    figure = Figure(figsize=(7.2, 4.0), layout="constrained")
    axes = figure.subplots()
    survival = np.asarray(results.survival, np.float64)
    survival = np.stack([survival[:, 0], survival[:, 1] + survival[:, 2]], axis=1)
    survival = survival / survival[..., :1]
    sbg = np.asarray(results.sbg, np.float64).mean(0)
    years = np.arange(config.cohort_years + 1)
    for i, words in enumerate(("one type", "two latent types (intercept ± shift)")):
        mean = survival[:, i].mean(0)
        line = axes.plot(np.arange(mean.size) / 12.0, mean, label=f"simulated, {words}")[0]
        fitted = np.asarray(retention.sbg_survival(sbg[i, 0], sbg[i, 1], config.cohort_years))
        axes.plot(years, fitted, "o--", color=line.get_color(), label=f"sBG fit, {words}")
    axes.set(
        xlabel="years since joining",
        ylabel="share of the cohort still members",
        title=f"Cohort survival of new members ({survival.shape[0]} seed(s), mean)",
    )
    axes.legend()
    paths.append(out_dir / "cohort_survival.png")
    figure.savefig(paths[-1], dpi=120)
    return paths
