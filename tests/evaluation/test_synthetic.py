"""The synthetic logged-bandit generator (against brute force) and the estimators' statistical
properties on it (Monte Carlo over seeds, vmapped).

Failure budget. Every statistical check uses fixed keys, so it is deterministic; its tolerance
is 4 Monte Carlo standard errors (two-sided normal tail 6e-5 per check) unless stated, and the
module makes about a dozen such checks: a correct implementation fails one with probability
below 1e-3 when keys change.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.evaluation.ope import LoggedData, estimate_all
from prime_science.evaluation.synthetic import (
    SyntheticBandit,
    sample_logged_data,
    softmax_policy,
    synthetic_bandit,
    true_policy_value,
)

SIGMAS = 4.0


def _world(seed=0, **options):
    return synthetic_bandit(jax.random.key(seed), 3, 6, 2, **options)


def _greedy_target(bandit, inverse_temperature=3.0):
    return softmax_policy(jax.scipy.special.logit(bandit.click_probs), inverse_temperature)


def _replicates(fn, seed, num_replicates):
    keys = jax.random.split(jax.random.key(seed), num_replicates)
    return jax.device_get(jax.jit(jax.vmap(fn))(keys))


def _mean_and_se(values):
    return values.mean(), values.std(ddof=1) / np.sqrt(values.size)


def test_world_is_well_formed():
    bandit = _world()
    np.testing.assert_allclose(bandit.context_probs.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(bandit.behaviour.sum(axis=1), 1.0, rtol=1e-6)
    assert np.all((bandit.click_probs > 0) & (bandit.click_probs < 1))
    # clicks fall with the slot (position_effect > 0), for every user and item
    assert np.all(np.diff(np.asarray(bandit.click_probs), axis=2) < 0)
    uniform = _world(behaviour_temperature=0.0)
    np.testing.assert_allclose(uniform.behaviour, 1 / 6, rtol=1e-6)


def test_true_policy_value_is_the_brute_force_sum():
    bandit = _world()
    target = _greedy_target(bandit)
    p, q, pi = (
        np.asarray(x, np.float64) for x in (bandit.context_probs, bandit.click_probs, target)
    )
    brute = sum(
        p[x] * 0.5 * pi[x, a, k] * q[x, a, k] for x in range(3) for a in range(6) for k in range(2)
    )
    np.testing.assert_allclose(true_policy_value(bandit, target), brute, rtol=1e-6)


def test_log_frequencies_match_the_model():
    """Empirical P(x, a, k) and P(r = 1 | x, a, k) against p(x) pi_b(a | x, k) / K and q."""
    bandit = _world(1)
    n = 200_000
    log = sample_logged_data(jax.random.key(2), bandit, n)
    data, context = jax.device_get(log)
    assert data.action.dtype == np.int32 and data.position.dtype == np.int32
    np.testing.assert_array_equal(
        data.pscore, np.asarray(bandit.behaviour)[context, data.action, data.position]
    )
    cells = (context * 6 + data.action) * 2 + data.position
    freq = np.bincount(cells, minlength=36) / n
    prob = np.asarray(bandit.context_probs)[:, None, None] * np.asarray(bandit.behaviour) / 2
    prob = prob.ravel()
    assert np.all(np.abs(freq - prob) <= SIGMAS * np.sqrt(prob * (1 - prob) / n) + 1e-12)
    clicks = np.bincount(cells, weights=data.reward, minlength=36)
    counts = np.bincount(cells, minlength=36)
    q = np.asarray(bandit.click_probs).ravel()
    seen = counts > 0
    se = np.sqrt(q[seen] * (1 - q[seen]) / counts[seen])
    assert np.all(np.abs(clicks[seen] / counts[seen] - q[seen]) <= SIGMAS * se + 1e-12)


def test_generator_checks_its_arguments():
    with pytest.raises(InvalidArgumentError, match="num_actions"):
        synthetic_bandit(jax.random.key(0), 3, 0, 2)
    with pytest.raises(InvalidArgumentError, match="behaviour_temperature"):
        synthetic_bandit(jax.random.key(0), 3, 4, 2, behaviour_temperature=-1.0)
    with pytest.raises(InvalidArgumentError, match="action_dist"):
        true_policy_value(_world(), jnp.ones((3, 6, 3)) / 6)
    with pytest.raises(InvalidArgumentError, match="num_rows"):
        sample_logged_data(jax.random.key(0), _world(), 0)


def _estimates(bandit, target, model, num_rows, noise_free=False):
    """``key -> estimates`` of ``target`` from one log of ``num_rows`` rows."""

    def estimate(key):
        data, context = sample_logged_data(key, bandit, num_rows)
        if noise_free:
            data = data._replace(reward=bandit.click_probs[context, data.action, data.position])
        out = estimate_all(data, target[context], model[context])
        row_value = jnp.sum(target * bandit.click_probs, axis=1)[context, data.position]
        return out | {"conditional_value": jnp.mean(row_value)}

    return estimate


@pytest.mark.slow
def test_ipw_and_dr_unbiased_and_dm_biased_with_a_wrong_model():
    """Exact propensities: IPW and DR (even with a wrong reward model) are unbiased; DM with
    that model is not."""
    bandit = _world()
    target = _greedy_target(bandit)
    wrong_model = jnp.clip(bandit.click_probs + 0.15, 0, 1)
    truth = float(true_policy_value(bandit, target))
    out = _replicates(_estimates(bandit, target, wrong_model, 200), 0, 4096)
    for name in ("ipw", "dr", "sndr"):
        mean, se = _mean_and_se(out[name])
        assert abs(mean - truth) < SIGMAS * se, (name, mean, truth, se)
    mean, se = _mean_and_se(out["dm"])
    assert abs(mean - truth) > 20 * se  # DM inherits the model's +0.15 shift


def test_ipw_and_snipw_are_the_on_policy_mean_when_target_is_behaviour():
    """pi_e = pi_b makes every weight 1: IPW = SNIPW = mean(r) exactly, and for any model
    DR = SNDR = mean(r) + mean(q^(x_i, pi_b, k_i) - q^(x_i, a_i, k_i))."""
    bandit = _world()
    data, context = sample_logged_data(jax.random.key(5), bandit, 1000)
    model = jnp.asarray(np.random.default_rng(0).uniform(size=(3, 6, 2)), jnp.float32)
    out = estimate_all(data, bandit.behaviour[context], model[context])
    mean_reward = float(jnp.mean(data.reward))
    np.testing.assert_allclose(out["ipw"], mean_reward, rtol=1e-5)
    np.testing.assert_allclose(out["snipw"], mean_reward, rtol=1e-5)
    direct = jnp.sum(bandit.behaviour * model, axis=1)[context, data.position]
    factual = model[context, data.action, data.position]
    expected = mean_reward + float(jnp.mean(direct - factual))
    np.testing.assert_allclose(out["dr"], expected, rtol=1e-5)
    np.testing.assert_allclose(out["sndr"], expected, rtol=1e-5)


def test_dr_with_the_true_model_and_noise_free_rewards_is_dm_exactly():
    """q^ = q and r_i = q(x_i, a_i, k_i): every residual is 0, so DR = SNDR = Switch-DR =
    DR-OS = DM = V_n, the value of pi_e averaged over the logged (x_i, k_i)."""
    bandit = _world()
    target = _greedy_target(bandit)
    out = _estimates(bandit, target, bandit.click_probs, 500, noise_free=True)(jax.random.key(1))
    for name in ("dr", "sndr", "switch_dr", "dr_os", "dm"):
        np.testing.assert_allclose(out[name], out["conditional_value"], rtol=1e-5, err_msg=name)


@pytest.mark.slow
def test_dr_error_with_the_true_model_is_the_correction_noise():
    """With q^ = q the DR error splits into the sampling of (x_i, k_i), which DM shares and is
    removed by subtracting V_n, plus the correction mean_i w_i (r_i - q_i): mean zero, variance

        E_{x, k}[ sum_a pi_e(a | x, k)^2 / pi_b(a | x, k) q (1 - q) ] / n   (closed form).

    The sample variance of 4096 replicates has relative standard error about sqrt(2 / 4096) =
    2.2% (a little more with the weights' kurtosis); the tolerance is 12%."""
    bandit = _world()
    target = _greedy_target(bandit)
    n = 200
    out = _replicates(_estimates(bandit, target, bandit.click_probs, n), 1, 4096)
    error = out["dr"] - out["conditional_value"]
    mean, se = _mean_and_se(error)
    assert abs(mean) < SIGMAS * se
    np.testing.assert_allclose(out["dm"], out["conditional_value"], rtol=1e-5)
    q, pi_b, pi_e = (
        np.asarray(x, np.float64) for x in (bandit.click_probs, bandit.behaviour, target)
    )
    per_cell = (pi_e**2 / pi_b * q * (1 - q)).sum(axis=1).mean(axis=1)  # [C]
    variance = float(np.asarray(bandit.context_probs) @ per_cell) / n
    np.testing.assert_allclose(error.var(ddof=1), variance, rtol=0.12)


@pytest.mark.slow
def test_ipw_standard_deviation_halves_when_rows_quadruple():
    """sd(IPW) = sd(w r) / sqrt(n): n -> 4n halves it. Each sd from 4096 replicates has relative
    standard error ~1.1-1.5%, so the ratio is 2 +- ~4%; the tolerance is 0.15."""
    bandit = _world()
    target = _greedy_target(bandit)
    sds = [
        _replicates(_estimates(bandit, target, bandit.click_probs, n), 2, 4096)["ipw"].std(ddof=1)
        for n in (100, 400)
    ]
    assert abs(sds[0] / sds[1] - 2.0) < 0.15, sds


@pytest.mark.slow
def test_snipw_bias_shrinks_as_one_over_n():
    """SNIPW = sum w r / sum w is biased by (V Var(w) - Cov(w q, w)) / n + O(1/n^2) (delta
    method). The bias is measured with noise-free rewards r_i = q(x_i, a_i, k_i): SNIPW is
    linear in the rewards, so this leaves its mean (hence its bias) unchanged and removes the
    click noise. One user type, uniform behaviour over 10 items, pi_e greedy on q.

    Checks: bias(50) / bias(200) = 4 within 25% (the ratio's standard error is ~9%: 200 rows,
    2^16 replicates), and 200 bias(200) equals the first-order constant within 4 standard
    errors plus 10% (the O(1/n) remainder)."""
    bandit = synthetic_bandit(jax.random.key(0), 1, 10, 2, behaviour_temperature=0.0)
    target = _greedy_target(bandit, 2.0)
    truth = float(true_policy_value(bandit, target))

    def snipw(num_rows):
        def estimate(key):
            data, context = sample_logged_data(key, bandit, num_rows)
            data = data._replace(reward=bandit.click_probs[context, data.action, data.position])
            return estimate_all(data, target, estimators=("snipw",))["snipw"]

        return estimate

    biases = {}
    for n in (50, 200):
        mean, se = _mean_and_se(_replicates(snipw(n), 3, 2**16))
        biases[n] = (mean - truth, se)
    ratio = biases[50][0] / biases[200][0]
    assert 3.0 < ratio < 5.0, (ratio, biases)
    row_prob = np.asarray(bandit.behaviour[0]) / 2
    w = np.asarray(target[0] / bandit.behaviour[0], np.float64)
    q = np.asarray(bandit.click_probs[0], np.float64)
    var_w = (row_prob * w**2).sum() - 1
    cov = (row_prob * w**2 * q).sum() - truth
    first_order = truth * var_w - cov
    bias_200, se_200 = biases[200]
    assert abs(200 * bias_200 - first_order) < 200 * SIGMAS * se_200 + 0.1 * abs(first_order)


@pytest.mark.slow
def test_position_blind_weights_are_wrong_when_position_matters():
    """pi_e shows, in slot k, what pi_b shows in slot K - 1 - k: the same items overall, in other
    slots. Clicks fall with the slot and pi_b's tastes differ by slot, so V(pi_e) != V(pi_b).
    The position-aware estimators find V(pi_e); a position-blind IPW (pi_e and pi_b averaged
    over slots, as if the slot did not exist) sees weights of exactly 1 and returns V(pi_b)."""
    bandit = synthetic_bandit(jax.random.key(0), 3, 6, 3, position_effect=1.0, behaviour_noise=1.5)
    target = bandit.behaviour[:, :, ::-1]
    truth = float(true_policy_value(bandit, target))
    behaviour_value = float(true_policy_value(bandit, bandit.behaviour))
    blind_target = jnp.broadcast_to(target.mean(axis=2, keepdims=True), target.shape)
    blind_behaviour = bandit.behaviour.mean(axis=2)

    def estimate(key):
        data, context = sample_logged_data(key, bandit, 500)
        aware = estimate_all(data, target[context], bandit.click_probs[context])
        blind_data = data._replace(pscore=blind_behaviour[context, data.action])
        blind = estimate_all(blind_data, blind_target[context], estimators=("ipw",))
        return {"ipw": aware["ipw"], "dr": aware["dr"], "blind_ipw": blind["ipw"]}

    out = _replicates(estimate, 4, 2000)
    for name in ("ipw", "dr"):
        mean, se = _mean_and_se(out[name])
        assert abs(mean - truth) < SIGMAS * se, name
    mean, se = _mean_and_se(out["blind_ipw"])
    assert abs(mean - behaviour_value) < SIGMAS * se
    assert abs(mean - truth) > 10 * se


def test_synthetic_bandit_is_a_plain_record():
    bandit = _world()
    assert isinstance(bandit, SyntheticBandit)
    leaves = jax.tree.leaves(bandit)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    assert isinstance(sample_logged_data(jax.random.key(0), bandit, 3).data, LoggedData)
