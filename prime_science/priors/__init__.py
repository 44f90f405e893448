"""Empirical-Bayes meta-priors (SCIENCE §2.3): group prior records, the closed-form
method-of-moments estimator, and (in :mod:`prime_science.priors.hierarchical`, the only module
that imports NumPyro) hierarchical models fitted by SVI and NUTS."""

from prime_science.priors.moments import (
    GroupMoments,
    divide_out_prior,
    meta_prior,
    method_of_moments,
)
from prime_science.priors.record import (
    BetaGroupPrior,
    GaussianGroupPrior,
    beta_group_prior,
    feature_prior,
    gaussian_group_prior,
    groups_from_slices,
    item_prior,
)

__all__ = [
    "GaussianGroupPrior",
    "BetaGroupPrior",
    "gaussian_group_prior",
    "beta_group_prior",
    "feature_prior",
    "item_prior",
    "groups_from_slices",
    "GroupMoments",
    "method_of_moments",
    "meta_prior",
    "divide_out_prior",
]
