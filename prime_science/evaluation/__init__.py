"""Evaluation: regret against an oracle, off-policy estimators of a policy's value from logged
bandit feedback (``ope``) and a logged-bandit generator with a known policy value
(``synthetic``)."""

from prime_science.evaluation.ope import (
    ESTIMATORS,
    Interval,
    LoggedData,
    bootstrap_intervals,
    estimate_all,
    policy_value,
    relative_error,
)
from prime_science.evaluation.regret import cumulative_regret, slate_value, topk_oracle_value

__all__ = [
    "ESTIMATORS",
    "Interval",
    "LoggedData",
    "bootstrap_intervals",
    "cumulative_regret",
    "estimate_all",
    "policy_value",
    "relative_error",
    "slate_value",
    "topk_oracle_value",
]
