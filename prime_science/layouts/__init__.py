"""The layout optimiser (Hill et al. 2017): choose a message layout without trying them all.

* :mod:`.design` — the layout space and its feature map (MVT1, MVT2, MVT2c), full and
  incremental scores.
* :mod:`.search` — exact enumeration (the oracle) and hill climbing with random restarts.
* :mod:`.policy` — Thompson sampling over a probit ADF posterior + search, and the baselines
  (N^D-MAB, D-MABs, uniform).
"""

__all__: list[str] = []
