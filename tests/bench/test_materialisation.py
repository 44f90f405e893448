"""No hot kernel materialises its full request x candidate (x feature) tensor.

XLA's compiled memory analysis gives the scratch bytes a compiled kernel allocates besides its
inputs and outputs. Batched Thompson sampling over ``B`` requests and ``N`` candidates (or
arms) is blocked over the candidate axis: its scratch must stay far below the bytes of one
``float32[B, N]`` score matrix (let alone ``[B, N, features]``) and must not grow with ``B``
(the click models) or with ``N`` (the Beta sampler).
Compilation only: nothing runs. (Per-candidate rows, such as the gathered weights of each
candidate's features, are O(N) and allowed; what must not appear is O(B N).)
"""

import jax
import jax.numpy as jnp
import pytest

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.bandits.logistic import logistic_laplace
from prime_science.bandits.probit import probit_adf

pytestmark = pytest.mark.slow  # compiles at sizes of 1e5-1e6 candidates: ~16 s of CPU

FLOAT32 = 4
NUM_FEATURES = 300
IDS_PER_CANDIDATE = 8


def _scratch_bytes(fn, *args) -> int:
    return jax.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def _click_model_scratch(factory, num_requests: int, num_candidates: int) -> int:
    policy = factory(NUM_FEATURES)
    state = policy.init()
    ids = jnp.zeros((num_candidates, IDS_PER_CANDIDATE), jnp.int32)
    return _scratch_bytes(
        lambda key, s, c: policy.sample_batch(key, s, c, 5, num_requests),
        jax.random.key(0),
        state,
        ids,
    )


@pytest.mark.parametrize("factory", [probit_adf, logistic_laplace], ids=["probit", "logistic"])
def test_click_model_scoring_is_blocked(factory):
    """Scratch holds per-candidate rows (gathered weights) but nothing per request x candidate:
    it does not grow with the number of requests and stays under a quarter of one score
    matrix."""
    candidates, few, many = 1 << 16, 16, 64
    scratch_few = _click_model_scratch(factory, few, candidates)
    scratch_many = _click_model_scratch(factory, many, candidates)
    full_scores = many * candidates * FLOAT32
    assert scratch_many < full_scores / 4, (scratch_many, full_scores)
    assert scratch_many < 1.5 * scratch_few, (scratch_few, scratch_many)


def test_beta_bernoulli_batch_sampling_is_blocked():
    requests = 16
    policy = beta_bernoulli()
    scratch = {}
    for arms in (1 << 20, 1 << 22):
        state = policy.init(arms)
        scratch[arms] = _scratch_bytes(
            lambda key, s: policy.sample_batch(key, s, 1, requests), jax.random.key(0), state
        )
    full_draws = requests * (1 << 22) * FLOAT32
    assert scratch[1 << 22] < full_draws / 16, (scratch, full_draws)
    assert scratch[1 << 22] < 1.5 * scratch[1 << 20], scratch
