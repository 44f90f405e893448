"""The callout recommender's building blocks, one algorithm per module.

* :mod:`.beta_bernoulli` — conjugate Thompson sampling over millions of independent arms.
* :mod:`.features` — item attributes and context to active feature ids.
* :mod:`.probit` — Bayesian linear probit with assumed-density filtering; Thompson, greedy,
  epsilon-greedy and UCB selection over candidates.
* :mod:`.logistic` — Laplace-approximate Bayesian logistic regression (diagonal or full
  covariance), with the same selection rules.
* :mod:`.delayed` — the pending-feedback ledger and its training strategies, the delayed
  feedback model (likelihood, fit, per-look probit ADF steps), OTF, delay distributions.
"""

__all__: list[str] = []
