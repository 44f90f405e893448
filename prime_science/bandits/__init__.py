"""Bandit policies of the callout recommender (one algorithm per module):
:mod:`.beta_bernoulli` — conjugate Thompson sampling over millions of arms."""

__all__: list[str] = []
