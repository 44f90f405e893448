"""Registry-driven conformance suite: every policy passes the same functional checks.

jit == no-jit, vmap over replicates == a loop, the state tree is stable through ``update``,
no retrace across calls with new keys and new states, the same key gives the same output, and
(policies with an availability mask) unavailable candidates are never chosen, under ``jit`` too.
Add a policy by adding a ``PolicyCase`` to ``CASES``. Click models also compare ``predict``;
layout policies are driven through ``choose`` (``k`` requests) in place of ``sample``.
"""

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.bandits.logistic import logistic_laplace
from prime_science.bandits.probit import probit_adf
from prime_science.bandits.selection import RULES
from prime_science.layouts import design
from prime_science.layouts import policy as layout_policy


class PolicyCase(NamedTuple):
    name: str
    make_policy: Callable[[], Any]
    init: Callable[[Any], Any]  # policy -> initial state
    make_batch: Callable[[jax.Array], tuple]  # key -> update arguments after the state
    candidates: Any = None  # extra argument of sample before k (click models)
    draws_scores: bool = True  # scores are random draws (Thompson); False for greedy / UCB
    layout: bool = False  # a layout policy: choose(key, state, k) instead of sample
    num_rows: int = 0  # rows an availability mask covers (0: the policy takes no mask)
    atol: float = 1e-6  # eager vs jit: a dense float32 Cholesky (full logistic) rounds more

    def sample(self, policy, key, state, k, available=None):
        if self.layout:
            return policy.choose(key, state, k)
        extra = () if available is None else (available,)
        if self.candidates is None:
            return policy.sample(key, state, k, *extra)
        return policy.sample(key, state, self.candidates, k, *extra)


def _bernoulli_batch(num_arms: int, size: int = 64):
    def make(key):
        arm_key, reward_key = jax.random.split(key)
        arms = jax.random.randint(arm_key, (size,), 0, num_arms)
        rewards = jax.random.bernoulli(reward_key, 0.3, (size,)).astype(jnp.float32)
        return arms, rewards

    return make


def _feature_batch(num_features: int, num_active: int = 4, size: int = 64):
    def make(key):
        id_key, click_key = jax.random.split(key)
        ids = jax.random.randint(id_key, (size, num_active), 0, num_features)
        return ids, jax.random.bernoulli(click_key, 0.3, (size,)).astype(jnp.float32)

    return make


def _layout_batch(space, size: int = 32):
    def make(key):
        keys = jax.random.split(key, space.num_components + 1)
        layouts = jnp.stack(
            [
                jax.random.randint(k, (size,), 0, n)
                for k, n in zip(keys, space.num_variants, strict=False)
            ],
            axis=1,
        )
        return layouts, jax.random.bernoulli(keys[-1], 0.3, (size,)).astype(jnp.float32)

    return make


_CANDIDATES = jax.random.randint(jax.random.key(99), (200, 4), 0, 50)
_SPACE = design.layout_space((3, 4, 2))

CASES = [
    PolicyCase(
        "beta_bernoulli",
        lambda: beta_bernoulli(1.0, 1.0),
        lambda policy: policy.init(300),
        _bernoulli_batch(300),
        num_rows=300,
    ),
    PolicyCase(
        "beta_bernoulli_approximate",
        lambda: beta_bernoulli(2.0, 20.0, approximate=True),
        lambda policy: policy.init(300),
        _bernoulli_batch(300),
        num_rows=300,
    ),
    *(
        PolicyCase(
            f"probit_{rule}",
            lambda rule=rule: probit_adf(50, exploration=rule, epsilon=0.2, forgetting=0.1),
            lambda policy: policy.init(),
            _feature_batch(50),
            _CANDIDATES,
            draws_scores=rule == "thompson",
            num_rows=200,
        )
        for rule in RULES
    ),
    *(
        PolicyCase(
            f"logistic_{covariance}_{rule}",
            lambda rule=rule, covariance=covariance: logistic_laplace(
                50, covariance=covariance, exploration=rule, epsilon=0.2
            ),
            lambda policy: policy.init(),
            _feature_batch(50, size=16),
            _CANDIDATES,
            draws_scores=rule == "thompson",
            num_rows=200,
            atol=1e-4 if covariance == "full" else 1e-6,
        )
        for covariance in ("diagonal", "full")
        for rule in RULES
    ),
    *(
        PolicyCase(
            f"layout_{name}",
            make,
            lambda policy: policy.init(),
            _layout_batch(_SPACE),
            layout=True,
        )
        for name, make in (
            ("mvt_hill_climb", lambda: layout_policy.mvt_thompson(_SPACE, restarts=2, steps=2)),
            (
                "mvt_exhaustive",
                lambda: layout_policy.mvt_thompson(_SPACE, search_method="exhaustive"),
            ),
            ("nd_mab", lambda: layout_policy.layout_mab(_SPACE)),
            ("d_mabs", lambda: layout_policy.component_mabs(_SPACE)),
            ("uniform", lambda: layout_policy.uniform_layouts(_SPACE)),
        )
    ),
]


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request):
    return request.param


def trained_state(case, seed=0, steps=3):
    policy = case.make_policy()
    state = case.init(policy)
    for step in range(steps):
        state = policy.update(state, *case.make_batch(jax.random.key(seed * 100 + step)))
    return policy, state


def assert_trees_close(a, b, atol=1e-6):
    """Integer leaves (arms, layouts) equal; float leaves (scores, states) close."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind in "iub":
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=atol)


def test_jit_equals_no_jit(case):
    policy, state = trained_state(case)
    key = jax.random.key(1)
    with jax.disable_jit():
        eager = case.sample(policy, key, state, 4)
        eager_state = policy.update(state, *case.make_batch(key))
    jitted = jax.jit(partial(case.sample, policy), static_argnums=2)(key, state, 4)
    jitted_state = jax.jit(policy.update)(state, *case.make_batch(key))
    assert_trees_close(eager, jitted)
    assert_trees_close(eager_state, jitted_state, case.atol)
    if case.candidates is not None:
        with jax.disable_jit():
            eager_predict = policy.predict(state, case.candidates)
        assert_trees_close(eager_predict, jax.jit(policy.predict)(state, case.candidates))


def test_vmap_over_replicates_equals_loop(case):
    replicas = [trained_state(case, seed=s)[1] for s in range(3)]
    policy = case.make_policy()
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *replicas)
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.vmap(lambda key, state: case.sample(policy, key, state, 2))(keys, stacked)
    for i, state in enumerate(replicas):
        one = case.sample(policy, keys[i], state, 2)
        assert_trees_close(one, jax.tree.map(lambda x, i=i: x[i], batched))
    updates = [case.make_batch(jax.random.key(40 + i)) for i in range(3)]
    stacked_updates = jax.tree.map(lambda *xs: jnp.stack(xs), *updates)
    new = jax.vmap(policy.update)(stacked, *stacked_updates)
    for i, state in enumerate(replicas):
        one = policy.update(state, *updates[i])
        assert_trees_close(one, jax.tree.map(lambda x, i=i: x[i], new))


def test_state_tree_is_stable(case):
    policy, state = trained_state(case)
    new = policy.update(state, *case.make_batch(jax.random.key(9)))
    assert jax.tree.structure(new) == jax.tree.structure(state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new, state)


def test_no_retrace_across_calls(case):
    policy, state = trained_state(case)
    chex.clear_trace_counter()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(key, state):
        batch_key, sample_key = jax.random.split(key)
        selection = case.sample(policy, sample_key, state, 3)
        return policy.update(state, *case.make_batch(batch_key)), selection

    for i in range(4):
        state, _ = step(jax.random.key(i), state)


def test_same_key_same_output_and_new_key_new_output(case):
    policy, state = trained_state(case)
    first = case.sample(policy, jax.random.key(3), state, 5)
    again = case.sample(policy, jax.random.key(3), state, 5)
    other = case.sample(policy, jax.random.key(4), state, 5)
    chex.assert_trees_all_equal(first, again)
    if case.draws_scores:
        drawn = lambda output: np.asarray(output if case.layout else output.scores)
        assert not np.array_equal(drawn(first), drawn(other))


def test_unavailable_candidates_are_never_chosen(case):
    """A mask of every third row: eager and jitted choices are available rows only, and equal;
    a concrete mask with fewer than ``k`` available rows is refused, naming ``available``."""
    if not case.num_rows:
        pytest.skip("the policy takes no availability mask")
    policy, state = trained_state(case)
    available = jnp.arange(case.num_rows) % 3 == 0
    sample = jax.jit(partial(case.sample, policy), static_argnums=2)
    for seed in range(5):
        key = jax.random.key(seed)
        chosen = sample(key, state, 6, available)
        assert np.all(np.asarray(available)[np.asarray(chosen.arms)])
        assert len(set(np.asarray(chosen.arms).tolist())) == 6
        assert_trees_close(chosen, case.sample(policy, key, state, 6, available))
    with pytest.raises(ValueError, match="^available: expected at least k = 3"):
        case.sample(policy, jax.random.key(0), state, 3, jnp.arange(case.num_rows) < 2)
