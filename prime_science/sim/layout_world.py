"""Simulated layout worlds: a probit truth with pairwise interactions (Hill et al. 2017, KDD).

Truth. With ``W1``, ``W2`` entries i.i.d. ``N(0, 1)`` (the MVT2 blocks of
:mod:`prime_science.layouts.design`), a layout's success probability is::

    p(A) = Phi((W0 + alpha1 sum_i W1_i(A_i) + alpha2 sum_{j<k} W2_jk(A_j, A_k)) / beta),

the reward model of the paper as transcribed by an independent replication (``alpha1 = 1``,
``alpha2 = 2`` sets the interaction strength; no context, ``alpha_c = 0``).

Calibration (to the paper's histogram of the 512 success probabilities: range about
0.045 - 0.24, mode about 0.11 - 0.12, right-skewed). ``beta`` and ``W0`` are set from two
probit-scale numbers, a centre ``c`` and a spread ``tau``::

    beta = sqrt(alpha1^2 D + alpha2^2 D (D - 1) / 2) / tau,
    W0   = beta c - mean over layouts of (alpha1 sum W1 + alpha2 sum W2),

so ``(s(A) - W0) / beta`` has standard deviation ``tau`` across layouts and worlds (the
numerator is a sum of ``D + D (D - 1) / 2`` independent normals with those scales) and the
layouts' mean probit is exactly ``c`` in every world. ``c = -1.17``, ``tau = 0.17`` came from a
grid search (``c`` in -1.20 .. -1.15, ``tau`` in 0.15 .. 0.22, 100 numpy worlds of 8 x 8 x 8
per cell, alpha = (1, 2)) for mean min / max closest to 0.045 / 0.24 with the histogram mode
(0.01-wide bins) in 0.11 - 0.12. That cell gave: mean min 0.048, mean max 0.250, mean mode
0.115 (sd 0.009 across worlds), mean 0.124 and standard deviation 0.034 across layouts
(this project's reading of the paper's histogram suggests 0.035 - 0.04).
``tests/layouts/test_layout_world.py`` checks it over a few worlds.

The 48-layout world of the paper's live test is the same construction over ``(2, 2, 3, 2, 2)``
with the same ``c`` and ``tau`` (the paper gives no spread for it): :meth:`LayoutWorldConfig.live`.

The truth lives in the MVT2 weight table of the world's space (``W / beta`` with ``W0`` at id
0), so ``p(A) = Phi(design.score(space, world.weights, A))`` and a learner's MVT2 features are
the truth's own features.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from prime_science.core import errors
from prime_science.core.types import PRNGKey
from prime_science.layouts import design

__all__ = [
    "PROBIT_CENTRE",
    "PROBIT_SPREAD",
    "LayoutWorldConfig",
    "LayoutWorld",
    "make_layout_world",
    "success_probabilities",
]

PROBIT_CENTRE = -1.17
"""``c``: the layouts' mean probit (module docstring)."""
PROBIT_SPREAD = 0.17
"""``tau``: the standard deviation of the layouts' probits (module docstring)."""


class LayoutWorldConfig(NamedTuple):
    """Static settings of a world (hashable).

    Attributes:
      num_variants: ``(N_1, ..., N_D)``.
      alpha1: scale of the first-order weights.
      alpha2: scale of the pairwise weights (interaction strength).
      probit_centre: ``c``, the layouts' mean probit.
      probit_spread: ``tau > 0``, the layouts' probit standard deviation (in expectation).
    """

    num_variants: tuple[int, ...] = (8, 8, 8)
    alpha1: float = 1.0
    alpha2: float = 2.0
    probit_centre: float = PROBIT_CENTRE
    probit_spread: float = PROBIT_SPREAD

    @classmethod
    def live(cls, **changes: Any) -> LayoutWorldConfig:
        """The 48-layout message of the live test: components of 2, 2, 3, 2, 2 variants."""
        return cls(num_variants=(2, 2, 3, 2, 2), **changes)

    @property
    def space(self) -> design.LayoutSpace:
        """The MVT2 space (no context) whose weight table holds the truth."""
        return design.layout_space(self.num_variants, 0, "mvt2")

    @property
    def noise(self) -> float:
        """``beta = sqrt(alpha1^2 D + alpha2^2 D (D - 1) / 2) / tau``."""
        d = len(self.num_variants)
        variance = self.alpha1**2 * d + self.alpha2**2 * d * (d - 1) / 2
        return math.sqrt(variance) / self.probit_spread


class LayoutWorld(NamedTuple):
    """One world.

    Attributes:
      weights: ``float32[M]``, the truth ``W / beta`` in the MVT2 table of ``config.space``.
      probabilities: ``float32[prod N_i]``, ``p(A)`` of every layout in the row-major order of
        :func:`prime_science.layouts.design.all_layouts`.
    """

    weights: jax.Array
    probabilities: jax.Array


def _check_config(config: Any) -> LayoutWorldConfig:
    if not isinstance(config, LayoutWorldConfig):
        errors.fail("config", "a LayoutWorldConfig", type(config).__name__)
    design.layout_space(config.num_variants)  # raises naming num_variants
    for name in ("alpha1", "alpha2", "probit_centre"):
        if not np.isfinite(getattr(config, name)):
            errors.fail(f"config.{name}", "a finite number", getattr(config, name))
    if not (np.isfinite(config.probit_spread) and config.probit_spread > 0):
        errors.fail("config.probit_spread", "a finite number > 0", config.probit_spread)
    if config.alpha1 == 0 and config.alpha2 == 0:
        errors.fail("config.alpha2", "alpha1 or alpha2 nonzero", (config.alpha1, config.alpha2))
    return config


def make_layout_world(key: PRNGKey, config: LayoutWorldConfig) -> LayoutWorld:
    """Draw ``W1, W2 ~ N(0, 1)``, scale, centre and divide by ``beta`` (module docstring).

    The space must be small enough to enumerate (the probabilities of all layouts are kept).
    Raises ``InvalidArgumentError`` naming ``key`` (not one PRNG key) or the config field.
    """
    errors.check_key("key", key)
    config = _check_config(config)
    space = config.space
    sizes = sum(config.num_variants)
    normals = jax.random.normal(key, (space.num_features,))
    scales = np.full(space.num_features, config.alpha2, np.float32)
    scales[0] = 0.0
    scales[1 : 1 + sizes] = config.alpha1
    raw = normals * scales
    layouts = design.all_layouts(space)
    raw_scores = design.score(space, raw, layouts)
    beta = config.noise
    weights = (raw / beta).at[0].set(config.probit_centre - jnp.mean(raw_scores) / beta)
    return LayoutWorld(weights, ndtr(design.score(space, weights, layouts)))


def success_probabilities(world: LayoutWorld, config: LayoutWorldConfig, layouts: Any) -> jax.Array:
    """``p(A)`` for ``layouts: int[..., D]``."""
    return ndtr(design.score(config.space, world.weights, layouts))
