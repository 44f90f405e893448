"""The throughput suites the ``bench`` command knows, by name, with their default sizes.

``prime-science bench --suite NAME`` runs one entry of :data:`SUITES`, ``--suite all`` every
entry in this order. A new suite is a module beside this one that builds a
:class:`~prime_science.bench.driver.Suite` (see :mod:`prime_science.bench.hill_climb` for a
small one) plus one entry here.

Three benchmarks are not driver suites, since they time whole fits rather than requests
(``membership_counterfactual`` is the driver suite of the membership package's request, a year
of a population under an offering):
:mod:`prime_science.bench.bellman` (batched soft-Bellman solves against numpy and QuantEcon),
:mod:`prime_science.bench.meta_prior_fit` (empirical-Bayes meta-prior fits) and
:mod:`prime_science.bench.membership` (a 1e6-customer x 36-month forward simulation and a batch
of membership-model Bellman solves, each against numpy); the scripts ``benchmarks/bellman.py``,
``benchmarks/meta_prior_fit.py`` and ``benchmarks/membership.py`` run them and write their
files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from prime_science.bench import (
    beta_bernoulli_sample,
    hill_climb,
    membership_counterfactual,
    ope,
    probit_scoring,
)
from prime_science.bench.driver import Suite

__all__ = ["DEFAULT_BATCHES", "SUITES", "SuiteEntry"]

DEFAULT_BATCHES = (1, 256)
"""Default request counts ``B`` of a suite that does not set its own."""


class SuiteEntry(NamedTuple):
    """A suite as the ``bench`` command runs it.

    Attributes:
      build: ``(factory=None) -> Suite``; ``factory`` swaps in another policy factory (tests
        pass a cheap stand-in with the kernel's API).
      cpu_sizes: the default sizes ``N`` on the CPU.
      accelerator_sizes: the default sizes ``N`` on an accelerator or with ``--gpu``.
      batches: the default request counts ``B``.
      counts_items: whether ``N`` counts items (arms, candidates), so that ``--quick``'s sizes
        and ``--sizes`` apply to the suite under ``--suite all``; ``hill_climb``'s ``N`` counts
        components (``10^N`` layouts), which ``--sizes 1e6`` must not reach unasked.
    """

    build: Callable[..., Suite]
    cpu_sizes: tuple[int, ...]
    accelerator_sizes: tuple[int, ...]
    batches: tuple[int, ...] = DEFAULT_BATCHES
    counts_items: bool = True

    def sizes(self, accelerator: bool) -> tuple[int, ...]:
        """The default sizes ``N`` on an accelerator (``True``) or on the CPU."""
        return self.accelerator_sizes if accelerator else self.cpu_sizes


SUITES: dict[str, SuiteEntry] = {
    beta_bernoulli_sample.NAME: SuiteEntry(
        beta_bernoulli_sample.beta_bernoulli_suite,
        beta_bernoulli_sample.CPU_SIZES,
        beta_bernoulli_sample.ACCELERATOR_SIZES,
    ),
    probit_scoring.NAME: SuiteEntry(
        probit_scoring.probit_scoring_suite,
        probit_scoring.CPU_SIZES,
        probit_scoring.ACCELERATOR_SIZES,
    ),
    hill_climb.NAME: SuiteEntry(
        hill_climb.hill_climb_suite,
        cpu_sizes=(10,),  # N = components, 10 variants each: 10^10 layouts
        accelerator_sizes=(10,),
        batches=(1, 1024),
        counts_items=False,
    ),
    ope.NAME: SuiteEntry(
        ope.ope_suite,
        ope.CPU_SIZES,  # N = logged rows, B = bootstrap resamples
        ope.ACCELERATOR_SIZES,
        batches=ope.BATCHES,
    ),
    membership_counterfactual.NAME: SuiteEntry(
        membership_counterfactual.membership_counterfactual_suite,
        membership_counterfactual.CPU_SIZES,  # N = customers, B = offerings
        membership_counterfactual.ACCELERATOR_SIZES,
        batches=membership_counterfactual.BATCHES,
    ),
}
"""The suites by name, in the order ``--suite all`` runs them."""
