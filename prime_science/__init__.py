"""prime_science: a JAX research framework for the science behind a subscription programme.

Seed systems (see README.md; each module's docstring cites the papers it follows): the callout
recommender (Thompson sampling over Bayesian click models, :mod:`prime_science.bandits`),
empirical-Bayes meta-priors, the layout optimiser and membership dynamics. The foundation
lives in :mod:`prime_science.core`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
