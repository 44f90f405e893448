"""Registry-driven conformance suite: every policy passes the same functional checks.

jit == no-jit, vmap over replicates == a loop, the state tree is stable through ``update``,
no retrace across calls with new keys and new states, the same key gives the same output, and
(policies with an availability mask) unavailable candidates are never chosen, under ``jit`` too.
Add a policy by adding a ``PolicyCase`` to ``CASES``. Click models also compare ``predict``;
layout policies are driven through ``choose`` (``k`` requests) in place of ``sample``.

Cost. The properties do not depend on problem size, so the problems are tiny (a dozen arms or
candidate rows, ten features, update batches of eight, two training steps): the cost is
tracing and compiling, not arithmetic. Each case's policy, trained replicas and jitted
``sample``/``update`` are built once (the module-scoped ``built`` fixture) and shared by its
tests, and every test samples ``K`` rows, so each function compiles once per input signature
rather than once per test; the no-retrace check counts the traces of those shared jitted
functions instead of compiling a fresh step function. The eager (``disable_jit``) ``update``
runs once per click model (``PolicyCase.eager_update``, the Thompson case): ``update`` does
not depend on the selection rule, so the model's other rules would re-run the same eager
code. Every rule still compares its eager ``sample`` (plain and masked: the rule-specific
scoring, Thompson draws, UCB bounds, greedy, epsilon-greedy) and ``predict`` with the jitted
ones, and runs its jitted ``update`` (state tree, vmap, no retrace). The selection rules
themselves (``bandits/selection.py``) are checked against brute force in
``tests/bandits/test_selection.py``.
"""

from collections import Counter
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

K = 3  # rows (arms, candidates, layout requests) every test samples: one compile per policy
NUM_ARMS = 12  # Beta-Bernoulli arms
NUM_FEATURES = 10  # click-model features
NUM_ROWS = 12  # click-model candidate rows
BATCH = 8  # observations per update


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
    eager_update: bool = True  # False: update is another case's (same model, other rule)

    def sample(self, policy, key, state, k, available=None):
        if self.layout:
            return policy.choose(key, state, k)
        extra = () if available is None else (available,)
        if self.candidates is None:
            return policy.sample(key, state, k, *extra)
        return policy.sample(key, state, self.candidates, k, *extra)


def _bernoulli_batch(num_arms: int, size: int = BATCH):
    def make(key):
        arm_key, reward_key = jax.random.split(key)
        arms = jax.random.randint(arm_key, (size,), 0, num_arms)
        rewards = jax.random.bernoulli(reward_key, 0.3, (size,)).astype(jnp.float32)
        return arms, rewards

    return make


def _feature_batch(num_features: int, num_active: int = 3, size: int = BATCH):
    def make(key):
        id_key, click_key = jax.random.split(key)
        ids = jax.random.randint(id_key, (size, num_active), 0, num_features)
        return ids, jax.random.bernoulli(click_key, 0.3, (size,)).astype(jnp.float32)

    return make


def _layout_batch(space, size: int = BATCH):
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


_CANDIDATES = jax.random.randint(jax.random.key(99), (NUM_ROWS, 3), 0, NUM_FEATURES)
_SPACE = design.layout_space((3, 4, 2))

CASES = [
    PolicyCase(
        "beta_bernoulli",
        lambda: beta_bernoulli(1.0, 1.0),
        lambda policy: policy.init(NUM_ARMS),
        _bernoulli_batch(NUM_ARMS),
        num_rows=NUM_ARMS,
    ),
    PolicyCase(
        "beta_bernoulli_approximate",
        lambda: beta_bernoulli(2.0, 20.0, approximate=True),
        lambda policy: policy.init(NUM_ARMS),
        _bernoulli_batch(NUM_ARMS),
        num_rows=NUM_ARMS,
    ),
    *(
        PolicyCase(
            f"probit_{rule}",
            lambda rule=rule: probit_adf(
                NUM_FEATURES, exploration=rule, epsilon=0.2, forgetting=0.1
            ),
            lambda policy: policy.init(),
            _feature_batch(NUM_FEATURES),
            _CANDIDATES,
            draws_scores=rule == "thompson",
            num_rows=NUM_ROWS,
            eager_update=rule == "thompson",
        )
        for rule in RULES
    ),
    *(
        PolicyCase(
            f"logistic_{covariance}_{rule}",
            lambda rule=rule, covariance=covariance: logistic_laplace(
                NUM_FEATURES, covariance=covariance, exploration=rule, epsilon=0.2
            ),
            lambda policy: policy.init(),
            _feature_batch(NUM_FEATURES),
            _CANDIDATES,
            draws_scores=rule == "thompson",
            num_rows=NUM_ROWS,
            atol=1e-4 if covariance == "full" else 1e-6,
            eager_update=rule == "thompson",
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


class Built(NamedTuple):
    """One case's policy and jitted functions, built once and shared by its tests."""

    policy: Any
    replicas: list  # states trained from seeds 0, 1, 2 (two update batches each)
    sample: Callable  # jax.jit of case.sample (k static, optional availability mask)
    update: Callable  # jax.jit of policy.update
    traces: Counter  # how often sample and update were traced


@pytest.fixture(scope="module", params=CASES, ids=lambda case: case.name)
def case(request):
    return request.param


@pytest.fixture(scope="module")
def built(case):
    policy = case.make_policy()
    traces = Counter()

    def counted(name, fn):
        def traced(*args):
            traces[name] += 1
            return fn(*args)

        return traced

    sample = jax.jit(counted("sample", partial(case.sample, policy)), static_argnums=2)
    update = jax.jit(counted("update", policy.update))
    replicas = []
    for seed in range(3):
        state = case.init(policy)
        for step in range(2):
            state = update(state, *case.make_batch(jax.random.key(seed * 100 + step)))
        replicas.append(state)
    return Built(policy, replicas, sample, update, traces)


def assert_trees_close(a, b, atol=1e-6):
    """Integer leaves (arms, layouts) equal; float leaves (scores, states) close."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype.kind in "iub":
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=atol)


def _mask(case):
    return jnp.arange(case.num_rows) % 3 == 0  # every third row available


def test_jit_equals_no_jit(case, built):
    """Eager (``disable_jit``) sample, masked sample, update and predict equal the jitted ones."""
    policy, state = built.policy, built.replicas[0]
    key = jax.random.key(1)
    batch = case.make_batch(key)
    with jax.disable_jit():
        eager = case.sample(policy, key, state, K)
    assert_trees_close(eager, built.sample(key, state, K))
    if case.num_rows:
        with jax.disable_jit():
            eager = case.sample(policy, key, state, K, _mask(case))
        assert_trees_close(eager, built.sample(key, state, K, _mask(case)))
    if case.eager_update:
        with jax.disable_jit():
            eager_state = policy.update(state, *batch)
        chex.assert_trees_all_equal_shapes_and_dtypes(eager_state, state)
        assert_trees_close(eager_state, built.update(state, *batch), case.atol)
    if case.candidates is not None:
        with jax.disable_jit():
            eager_predict = policy.predict(state, case.candidates)
        assert_trees_close(eager_predict, jax.jit(policy.predict)(state, case.candidates))


def test_vmap_over_replicates_equals_loop(case, built):
    policy, replicas = built.policy, built.replicas
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *replicas)
    keys = jax.random.split(jax.random.key(5), len(replicas))
    batched = jax.vmap(lambda key, state: case.sample(policy, key, state, K))(keys, stacked)
    for i, state in enumerate(replicas):
        one = built.sample(keys[i], state, K)
        assert_trees_close(one, jax.tree.map(lambda x, i=i: x[i], batched))
    updates = [case.make_batch(jax.random.key(40 + i)) for i in range(len(replicas))]
    stacked_updates = jax.tree.map(lambda *xs: jnp.stack(xs), *updates)
    new = jax.vmap(policy.update)(stacked, *stacked_updates)
    for i, state in enumerate(replicas):
        one = built.update(state, *updates[i])
        assert_trees_close(one, jax.tree.map(lambda x, i=i: x[i], new))


def test_state_tree_is_stable(case, built):
    state = built.replicas[0]
    new = built.update(state, *case.make_batch(jax.random.key(9)))
    assert jax.tree.structure(new) == jax.tree.structure(state)
    chex.assert_trees_all_equal_shapes_and_dtypes(new, state)


def test_no_retrace_across_calls(case, built):
    """Jitted sample and update with new keys and the states update returns: traced once."""
    state = built.replicas[0]
    built.sample(jax.random.key(0), state, K)
    built.update(state, *case.make_batch(jax.random.key(0)))
    traced = dict(built.traces)
    for i in range(1, 4):
        state = built.update(state, *case.make_batch(jax.random.key(i)))
        built.sample(jax.random.key(i), state, K)
    assert dict(built.traces) == traced


def test_same_key_same_output_and_new_key_new_output(case, built):
    state = built.replicas[0]
    first = built.sample(jax.random.key(3), state, K)
    again = built.sample(jax.random.key(3), state, K)
    other = built.sample(jax.random.key(4), state, K)
    chex.assert_trees_all_equal(first, again)
    if case.draws_scores:
        drawn = lambda output: np.asarray(output if case.layout else output.scores)
        assert not np.array_equal(drawn(first), drawn(other))


def test_unavailable_candidates_are_never_chosen(case, built):
    """A mask of every third row: jitted choices are distinct available rows (the eager ones
    equal them: ``test_jit_equals_no_jit``); a concrete mask with fewer than ``k`` available
    rows is refused, naming ``available``."""
    if not case.num_rows:
        pytest.skip("the policy takes no availability mask")
    policy, state = built.policy, built.replicas[0]
    available = _mask(case)
    for seed in range(5):
        chosen = built.sample(jax.random.key(seed), state, K, available)
        assert np.all(np.asarray(available)[np.asarray(chosen.arms)])
        assert len(set(np.asarray(chosen.arms).tolist())) == K
    with pytest.raises(ValueError, match=f"^available: expected at least k = {K}"):
        case.sample(policy, jax.random.key(0), state, K, jnp.arange(case.num_rows) < K - 1)
