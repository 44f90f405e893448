"""Property-based checks: any finite input to the Beta sampler and to the beta-Bernoulli and
probit updates gives finite output or an ``InvalidArgumentError``, and every call returns.

Shapes are fixed and the jitted kernels are reused, so hypothesis's examples recompile
nothing; each test runs in a few seconds and has a hard time limit (pytest-timeout): a
sampler that loops for ever fails the test instead of hanging the suite. Floats come from
the whole float64 (or float32) range, plus the edges that matter here: zeros, subnormals,
the sampler's shape domain ``[1e-36, 1e38]`` and the float32 maximum.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.core import random as R
from prime_science.core.errors import InvalidArgumentError

KEY = jax.random.key(0)
NUM_ARMS = 8
EDGES = [0.0, -0.0, -1.0, 1e-45, 1e-40, 1e-36, 1e-30, 1.0, 2.999, 3.0, 1e7, 1e30, 1e38,
         1.1e38, 3e38, 3.4028235e38, 1e39, 1e300]  # fmt: skip
FINITE = st.one_of(
    st.sampled_from(EDGES + [-x for x in EDGES]),
    st.floats(allow_nan=False, allow_infinity=False),
)
ANY_FLOAT32 = st.one_of(
    st.sampled_from(np.float32(EDGES[:-2]).tolist() + [np.nan, np.inf, -np.inf]),
    st.floats(width=32),
)
QUICK = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def finite_array(size, elements=FINITE):
    return hnp.arrays(np.float64, size, elements=elements)


def mostly(valid, size, dtype=np.float64, elements=FINITE):
    """Arrays whose elements all come from ``valid`` half of the time, any finite otherwise
    (per-element mixing would make an all-valid array rare)."""
    arrays = lambda elements: hnp.arrays(dtype, size, elements=elements)
    return st.one_of(arrays(valid), arrays(elements))


def in_domain(shapes) -> np.ndarray:
    """The sampler's domain, compared in float32 as the kernel compares."""
    with np.errstate(over="ignore"):
        values = np.asarray(shapes).astype(np.float32)
    return (values >= np.float32(R.SHAPE_MIN)) & (values <= np.float32(R.SHAPE_MAX))


_jit_logits = jax.jit(R.beta_logits)
_jit_top_k = jax.jit(R.beta_top_k, static_argnums=4)


@pytest.mark.timeout(60)
@QUICK
@given(alpha=finite_array(NUM_ARMS), beta=finite_array(NUM_ARMS))
def test_beta_logits_finite_or_named_error(alpha, beta):
    """Eager calls: finite logits for shapes in the domain, a named error otherwise."""
    valid = in_domain(alpha) & in_domain(beta)
    try:
        logits = np.asarray(R.beta_logits(KEY, alpha, beta))
    except InvalidArgumentError as error:
        assert not valid.all()
        name = "alpha" if not in_domain(alpha).all() else "beta"
        assert str(error).startswith(f"{name}: expected shapes in [SHAPE_MIN, SHAPE_MAX]")
    else:
        assert valid.all()
        assert logits.shape == (NUM_ARMS,) and np.all(np.isfinite(logits))


@pytest.mark.timeout(60)
@QUICK
@given(
    alpha=hnp.arrays(np.float32, NUM_ARMS, elements=ANY_FLOAT32),
    beta=hnp.arrays(np.float32, NUM_ARMS, elements=ANY_FLOAT32),
    active=hnp.arrays(bool, NUM_ARMS),
)
def test_jitted_sampler_returns_on_any_input(alpha, beta, active):
    """Under jit nothing is checked, and any float32 input (NaN, inf, negative, huge) still
    returns: NaN logits exactly for the arms outside the domain, finite ones elsewhere; the
    top-k never selects an arm outside the domain and fills missing slots with ``-1``."""
    valid = in_domain(alpha) & in_domain(beta)
    logits = np.asarray(_jit_logits(KEY, alpha, beta))
    assert np.array_equal(np.isnan(logits), ~valid)
    assert np.all(np.isfinite(logits[valid]))
    k = 3
    top, ids = (np.asarray(x) for x in _jit_top_k(KEY, alpha, beta, active, k))
    drawable = np.flatnonzero(valid & active)
    chosen = ids[ids >= 0]
    assert len(chosen) == min(k, drawable.size)
    assert set(chosen.tolist()) <= set(drawable.tolist())
    assert np.all(np.isfinite(top[ids >= 0])) and np.all(top[ids < 0] == -np.inf)


_policy = beta_bernoulli()
_ARMS = np.array([0, 1, 1, 5])


@pytest.mark.timeout(60)
@QUICK
@given(
    counts=hnp.arrays(np.float64, (2, NUM_ARMS), elements=st.floats(R.SHAPE_MIN, R.SHAPE_MAX)),
    rewards=mostly(st.floats(0.0, 1.0), _ARMS.size),
    weights=mostly(st.one_of(st.sampled_from([0.0, 1e-45, 1e37, 1e38]), st.floats(0.0)), 4),
)
def test_beta_bernoulli_update_finite_or_named_error(counts, rewards, weights):
    """From any state inside the domain, an update gives counts that stay inside it (finite,
    ``<= 1e38``) or a named error; the state then samples finite scores."""
    state = _policy.init(NUM_ARMS)._replace(
        alpha=jnp.asarray(counts[0], jnp.float32), beta=jnp.asarray(counts[1], jnp.float32)
    )
    try:
        new = _policy.update(state, _ARMS, rewards, weights)
    except InvalidArgumentError as error:
        assert str(error).split(":")[0] in ("rewards", "weights")
        return
    alpha, beta = np.asarray(new.alpha), np.asarray(new.beta)
    assert np.all(in_domain(alpha) & in_domain(beta))
    selection = _policy.sample(KEY, new, 2)
    assert np.all(np.asarray(selection.arms) >= 0)
    scores = np.asarray(selection.scores)
    assert np.all(np.isfinite(scores) & (scores >= 0) & (scores <= 1))


_probit = probit_adf(6)
_EVENTS = np.array([[0, 1, 2], [2, 3, -1], [4, 5, 0]], np.int32)
FLOAT32_FINITE = st.one_of(
    st.sampled_from([0.0, -1.0, 1e-45, 1e-38, 1e30, 3e38, -3e38]),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
)
FLOAT32_POSITIVE = st.one_of(
    st.sampled_from([1e-45, 1e-38, 1e-30, 1.0, 1e30, 3e38]),
    st.floats(float(np.float32(1e-45)), float(np.float32(3e38)), width=32),
)


@pytest.mark.timeout(60)
@QUICK
@given(
    mean=hnp.arrays(np.float32, 6, elements=FLOAT32_FINITE),
    variance=mostly(FLOAT32_POSITIVE, 6, np.float32, FLOAT32_FINITE),
    clicks=mostly(st.sampled_from([0.0, 1.0]), 3),
)
def test_probit_update_finite_or_named_error(mean, variance, clicks):
    """Any finite state (negative or zero variances, huge means) and clicks: a finite
    posterior with variances > 0 and predictions in [0, 1], or a named error."""
    state = ProbitState(jnp.asarray(mean), jnp.asarray(variance))
    try:
        new = _probit.update(state, _EVENTS, clicks)
    except InvalidArgumentError as error:
        assert str(error).split(":")[0] in ("clicks", "state.variance", "state")
        return
    assert np.all(np.isfinite(np.asarray(new.mean)))
    new_variance = np.asarray(new.variance)
    assert np.all(np.isfinite(new_variance) & (new_variance > 0))
    prediction = np.asarray(_probit.predict(new, _EVENTS))
    assert np.all((prediction >= 0) & (prediction <= 1))
