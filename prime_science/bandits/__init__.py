"""The callout recommender's building blocks, one algorithm per module.

* :mod:`.beta_bernoulli` — conjugate Thompson sampling over millions of independent arms.
* :mod:`.features` — item attributes and context to active feature ids.
* :mod:`.probit` — Bayesian linear probit with assumed-density filtering; Thompson, greedy,
  epsilon-greedy and UCB selection over candidates.
* :mod:`.logistic` — Laplace-approximate Bayesian logistic regression (diagonal or full
  covariance), with the same selection rules.
* :mod:`.delayed` — impression ledger, delayed-feedback strategies and delay models.
"""

__all__: list[str] = []
