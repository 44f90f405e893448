"""The callout recommender's building blocks, one algorithm per module.

* :mod:`.selection` — the selection rules (Thompson, greedy, epsilon-greedy, UCB, uniform)
  over one request's scores with an availability mask, shared by every policy.
* :mod:`.scoring` — linear scores over lists of feature ids, the Thompson top-k kernel (sharded
  over candidates) and the click models' shared boundary checks.
* :mod:`.beta_bernoulli` — conjugate Thompson sampling over millions of independent arms.
* :mod:`.baselines` — greedy (posterior mean) and uniform selection over a Beta–Bernoulli state.
* :mod:`.features` — item attributes and context to active feature ids.
* :mod:`.probit` — Bayesian linear probit with assumed-density filtering, selecting candidates
  under any rule of :mod:`.selection`.
* :mod:`.logistic` — Laplace-approximate Bayesian logistic regression (diagonal or full
  covariance), with the same rules.
* :mod:`.delayed` — the pending-feedback ledger and its training strategies, the delayed
  feedback model (likelihood, fit, per-look probit ADF steps), OTF, delay distributions.
"""

__all__: list[str] = []
