"""Dynamic discrete choice: tabular logit MDPs, soft Bellman solvers and structural estimators.

* :mod:`.mdp`: the model, the soft Bellman operator, Rust's bus engine model;
* :mod:`.data`: choice panels (:class:`~.data.ChoiceData`) and their checks;
* :mod:`.solvers`: successive approximation and Newton-Kantorovich (relative-value form,
  implicit derivatives);
* :mod:`.nfxp`: nested fixed point maximum likelihood for the bus engine model;
* :mod:`.ccp`: Hotz-Miller two-step and NPL;
* :mod:`.pqr`: tabular PQR (anchor-action inverse RL) and frequency estimators;
* :mod:`.maxent_irl`: maximum causal entropy IRL baseline (state-only linear reward);
* :mod:`.deep_pqr`: Deep PQR (P -> Q -> R with Flax NNX networks and Optax).
"""
