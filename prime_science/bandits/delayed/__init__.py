"""Delayed feedback: clicks and conversions arrive hours or days after the impression that
caused them (in Criteo's logs, Chapelle 2014: about 35% of conversions within 1 h and 50%
within 24 h, 30-day attribution window). Times are float32 hours throughout.

* :mod:`.ledger` — the pending-feedback ledger (impressions awaiting their label, keyed by
  impression id) and the training strategies that read it: wait for matured data, naive,
  censored.
* :mod:`.dfm` — the delayed feedback model (Chapelle 2014): its likelihood, E-step and joint
  fit, and the per-look likelihood ratios with which a probit ADF model looks at an
  impression at several ages (:func:`~.dfm.look_step`).
* :mod:`.otf` — the windowed statistics and estimate of OTFLinUCB (Vernade et al. 2020).
* :mod:`.distributions` — truncated exponential / log-normal delay laws for simulation, one
  calibrated to Chapelle's statistics.
"""

from prime_science.bandits.delayed.dfm import (
    DfmParams,
    dfm_conversion_probability,
    dfm_log_likelihood,
    dfm_probit_log_ratio,
    fit_dfm,
    look_step,
)
from prime_science.bandits.delayed.distributions import (
    DelayDistribution,
    calibrated_delay_mixture,
    delay_cdf,
    exponential_delays,
    sample_delays,
)
from prime_science.bandits.delayed.ledger import (
    LedgerInfo,
    LedgerState,
    LedgerView,
    TrainingBatch,
    censored,
    contains,
    expire,
    ledger_init,
    ledger_view,
    naive,
    record_impressions,
    record_labels,
    wait_for_matured,
)
from prime_science.bandits.delayed.otf import otf_estimate, otf_statistics

__all__ = [
    "LedgerInfo",
    "LedgerState",
    "LedgerView",
    "TrainingBatch",
    "ledger_init",
    "record_impressions",
    "record_labels",
    "expire",
    "contains",
    "ledger_view",
    "wait_for_matured",
    "naive",
    "censored",
    "dfm_log_likelihood",
    "dfm_conversion_probability",
    "dfm_probit_log_ratio",
    "look_step",
    "DfmParams",
    "fit_dfm",
    "otf_statistics",
    "otf_estimate",
    "DelayDistribution",
    "exponential_delays",
    "calibrated_delay_mixture",
    "delay_cdf",
    "sample_delays",
]
