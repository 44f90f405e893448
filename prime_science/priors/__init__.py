"""Empirical-Bayes meta-priors (Nabi et al. 2022): group prior records, the closed-form
method-of-moments estimator and the weak-prior probit refit that feeds it per-weight estimates,
type-II maximum likelihood of group priors directly from logged probit events (Laplace
evidence), hierarchical models fitted by SVI and NUTS (:mod:`prime_science.priors.hierarchical`)
and one NUTS chain on any potential as a jittable function (:mod:`prime_science.priors.nuts`):
the two modules of the library that import NumPyro."""

from prime_science.priors.laplace import Type2Fit, probit_type2
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
from prime_science.priors.refit import WeightEstimates, weak_prior_refit

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
    "WeightEstimates",
    "weak_prior_refit",
    "Type2Fit",
    "probit_type2",
]
