"""Prime membership dynamics: the structural model, its estimators, counterfactuals and
retention."""
