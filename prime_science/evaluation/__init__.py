"""Evaluation: regret against an oracle (and, later, calibration and off-policy estimators)."""

from prime_science.evaluation.regret import cumulative_regret, slate_value, topk_oracle_value

__all__ = ["cumulative_regret", "slate_value", "topk_oracle_value"]
