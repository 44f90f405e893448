"""The ``membership_counterfactual`` suite: a year of a member population under ``B`` offerings.

Workload (:func:`counterfactual_workload`). ``N`` customers drawn by
:func:`~prime_science.membership.simulate.initial_states` (non-members at tenure 0, usual
content, regular prices, low engagement, 40 % rural) and the structural model of
:mod:`prime_science.membership.model` at its true parameters (5 engagement levels, 11-month
annual lock), float32. An offering is the annual price times a factor; the ``B`` offerings of a
request are the factors ``linspace(0.8, 1.2, B)`` (``1.0`` alone when ``B = 1``), each model
solved once before the clock starts (:func:`~prime_science.membership.simulate.tables`, mapped
over the offerings with ``lax.map``; the solves have their own benchmark,
``benchmarks/membership.py``), as a price search would hold them.

One request = one offering: :data:`MONTHS` (12) months of
:func:`~prime_science.membership.simulate.step` for all ``N`` customers, keeping per month only
the plan shares and the mean payment (:func:`prime_science.bench.membership.forward_simulation`).
Per customer-month that is five uniforms, five inverse-CDF draws from gathered table rows and a
handful of integer updates; the state (six int32 per customer, 24 bytes) is read and written
once a month, so the memory floor of a request is about ``2 x 24 x N x 12`` bytes.

Kernels, per ``(N, B)``:

* ``ours``: the ``B`` offerings' simulations as one ``jax.vmap`` of the month scan over the
  stacked tables (the same customers and keys under every offering: common random numbers, as
  a counterfactual comparison wants), jitted.
* ``numpy``: :func:`prime_science.bench.membership.numpy_forward_simulation` (the same month in
  vectorised numpy over all customers, a Python loop over months) for one offering; ``B``
  offerings are ``B`` requests in a Python loop (the suites' convention).

Timing, budgets and files: :mod:`prime_science.bench.driver`. Sizes: ``N`` in 1e5, 1e6 on the
CPU by default (1e7 too on an accelerator).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from prime_science.bench.driver import Suite
from prime_science.bench.membership import forward_simulation, numpy_forward_simulation
from prime_science.core.errors import fail
from prime_science.membership import model, simulate

__all__ = [
    "ACCELERATOR_SIZES",
    "BATCHES",
    "CPU_SIZES",
    "MONTHS",
    "NAME",
    "counterfactual_workload",
    "membership_counterfactual_suite",
    "offering_factors",
    "offering_tables",
]

NAME = "membership_counterfactual"
MONTHS = 12
CPU_SIZES = (100_000, 1_000_000)
ACCELERATOR_SIZES = (*CPU_SIZES, 10_000_000)
BATCHES = (1, 8)
STATE_BYTES = 6 * 4  # six int32 fields per customer
NUMPY_BYTES_PER_CUSTOMER = STATE_BYTES + 5 * 4 + 3 * 4 * 4  # states, uniforms, gathered rows


def offering_factors(batch: int) -> np.ndarray:
    """The annual-price factors of ``batch`` offerings: ``linspace(0.8, 1.2, batch)``, or
    ``[1.0]`` for one."""
    if isinstance(batch, bool) or not isinstance(batch, int | np.integer) or batch < 1:
        fail("batch", "a positive integer", repr(batch))
    return np.linspace(0.8, 1.2, batch) if batch > 1 else np.ones(1)


def offering_tables(factors: np.ndarray) -> simulate.ModelTables:
    """:class:`~prime_science.membership.simulate.ModelTables` with a leading offering axis:
    the true model with its annual price times each factor, solved (``lax.map``, float32)."""
    params = model.true_params()

    def one(factor):
        annual = params.annual_price * factor
        return simulate.tables(params._replace(annual_price=annual))

    factors = jnp.asarray(factors, jnp.float32)
    return jax.block_until_ready(jax.jit(lambda f: jax.lax.map(one, f))(factors))


@functools.cache
def _plain_tables() -> simulate.ModelTables:
    """The offering at today's prices (factor 1.0), solved once, as numpy arrays."""
    return jax.tree.map(lambda x: np.asarray(x[0]), offering_tables(np.ones(1)))


def counterfactual_workload(num_customers: int, seed: int) -> simulate.MemberStates:
    """``num_customers`` starting customers (int32 fields) from
    :func:`~prime_science.membership.simulate.initial_states`."""
    integer = isinstance(num_customers, int | np.integer) and not isinstance(num_customers, bool)
    if not integer or num_customers < 1:
        fail("num_customers", "a positive integer", repr(num_customers))
    states = simulate.initial_states(jax.random.key(seed), int(num_customers))
    return simulate.MemberStates(*(np.asarray(x) for x in states))


def _inputs(num_customers: int, seed: int) -> tuple[Any, dict[str, Any]]:
    start = time.perf_counter()
    states = counterfactual_workload(num_customers, seed)
    info = {
        "generate_seconds": time.perf_counter() - start,
        "months": MONTHS,
        "levels": 5,
        "rural_share": float(np.mean(states.segment)),
    }
    return states, info


def membership_counterfactual_suite(factory: Callable[..., Any] | None = None) -> Suite:
    """The ``membership_counterfactual`` suite (module docstring); ``N`` counts customers,
    ``B`` offerings.

    Args:
      factory: unused (the suites' builders share the signature ``(factory=None)``).
    """
    del factory

    def plan(config):
        rows = [("ours", n, b) for n in config.sizes for b in config.batches]
        return rows + [("numpy", n, b) for n in config.sizes for b in config.batches]

    def to_device(states):
        return jax.block_until_ready(simulate.MemberStates(*(jnp.asarray(x) for x in states)))

    def jax_callable(kernel, batch, states):
        tables = offering_tables(offering_factors(batch))  # solved here, before the clock

        def request(key, tables, states):
            return jax.vmap(lambda t: forward_simulation(key, t, states, MONTHS))(tables)

        return request, (tables, states)

    def numpy_request(states, rng):
        tables = _plain_tables()
        return lambda: numpy_forward_simulation(rng, tables, states, MONTHS)

    def numpy_memory(num_customers):
        return (
            NUMPY_BYTES_PER_CUSTOMER * num_customers,
            "formula: int32 states + float32 uniforms + gathered table rows per customer",
        )

    return Suite(
        name=NAME,
        unit="customers",
        floor=None,
        plan=plan,
        make_inputs=_inputs,
        to_device=to_device,
        to_numpy=lambda states: states,
        jax_callable=jax_callable,
        numpy_request=numpy_request,
        numpy_memory=numpy_memory,
        bytes_per_item=STATE_BYTES,
        host_bytes_per_item=2 * STATE_BYTES,
        methods={
            "rate_unit": "customers (each simulated for 12 months)",
            "months": MONTHS,
            "workload": "counterfactual_workload(N, seed): N customers from "
            "membership.simulate.initial_states; the true model (5 engagement levels, "
            "11-month lock), float32; B offerings = annual price x linspace(0.8, 1.2, B), "
            "each solved before the clock",
            "ours": "jax.vmap over the B offerings of a 12-month lax.scan of "
            "membership.simulate.step (shares and mean payment kept per month), jitted; "
            "the same customers and keys under every offering",
            "numpy": "bench.membership.numpy_forward_simulation: the same month in vectorised "
            "numpy over all N customers, a Python loop over the 12 months; one offering per "
            "request, B requests in a Python loop",
            "floor": "the state (24 bytes a customer) read and written once a month: "
            "2 x 24 x N x 12 bytes per request",
            "speedup_vs_numpy": "numpy median / row median, same N and B",
        },
    )
