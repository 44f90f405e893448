"""Off-policy estimators against a numpy oracle written from the definitions, the bootstrap
against the analytic standard error, and the named errors for bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from prime_science.core.errors import InvalidArgumentError
from prime_science.evaluation import ope as ope_module
from prime_science.evaluation.ope import (
    ESTIMATORS,
    LoggedData,
    bootstrap_intervals,
    estimate_all,
    policy_value,
    relative_error,
)

NUM_ROWS, NUM_ACTIONS, NUM_POSITIONS = 400, 5, 3


def _problem(seed=0, num_rows=NUM_ROWS, context_free=False):
    rng = np.random.default_rng(seed)
    leading = 1 if context_free else num_rows
    dist = rng.dirichlet(np.ones(NUM_ACTIONS), size=(leading, NUM_POSITIONS))
    dist = dist.transpose(0, 2, 1).astype(np.float32)
    model = rng.uniform(size=(leading, NUM_ACTIONS, NUM_POSITIONS)).astype(np.float32)
    data = LoggedData(
        action=rng.integers(0, NUM_ACTIONS, num_rows).astype(np.int32),
        position=rng.integers(0, NUM_POSITIONS, num_rows).astype(np.int32),
        reward=(rng.uniform(size=num_rows) < 0.3).astype(np.float32),
        pscore=rng.uniform(0.05, 0.6, num_rows).astype(np.float32),
    )
    return data, dist, model


def _numpy_oracle(data, dist, model, tau, lam):
    """Every estimator straight from its definition, float64, one row at a time."""
    a, k, r, p = (np.asarray(x, np.float64) for x in data)
    a, k = a.astype(int), k.astype(int)
    out = {name: [] for name in ("direct", "weight", "residual")}
    for i in range(len(r)):
        row = i if dist.shape[0] > 1 else 0
        w = dist[row, a[i], k[i]] / p[i]
        direct = float(np.dot(dist[row, :, k[i]], model[row, :, k[i]]))
        out["weight"].append(w)
        out["direct"].append(direct)
        out["residual"].append(r[i] - model[row, a[i], k[i]])
    w, direct, residual = (np.array(out[n]) for n in ("weight", "direct", "residual"))
    shrunk = w if np.isinf(lam) else lam * w / (w**2 + lam)
    return {
        "dm": direct.mean(),
        "ipw": (w * r).mean(),
        "snipw": (w * r).sum() / w.sum(),
        "dr": (direct + w * residual).mean(),
        "sndr": direct.mean() + (w * residual).sum() / w.sum(),
        "switch_dr": (direct + np.where(w <= tau, w * residual, 0.0)).mean(),
        "dr_os": (direct + shrunk * residual).mean(),
    }


@pytest.mark.parametrize("context_free", [False, True])
@pytest.mark.parametrize(("tau", "lam"), [(2.0, 1.5), (np.inf, np.inf), (0.0, 0.0)])
def test_estimators_match_numpy_oracle(context_free, tau, lam):
    data, dist, model = _problem(context_free=context_free)
    got = estimate_all(data, dist, model, switch_tau=tau, os_lambda=lam)
    want = _numpy_oracle(data, dist, model, tau, lam)
    assert tuple(got) == ESTIMATORS
    for name in ESTIMATORS:
        np.testing.assert_allclose(float(got[name]), want[name], rtol=2e-5, err_msg=name)


def test_policy_value_is_one_entry_of_estimate_all():
    data, dist, model = _problem()
    every = estimate_all(data, dist, model, switch_tau=2.0, os_lambda=1.5)
    for name in ESTIMATORS:
        single = policy_value(data, dist, name, model, switch_tau=2.0, os_lambda=1.5)
        np.testing.assert_allclose(single, every[name], rtol=1e-6, err_msg=name)


def test_hyper_parameter_limits():
    """tau = inf and lambda = inf give DR; tau = 0 (weights > 0) and lambda = 0 give DM."""
    data, dist, model = _problem()
    wide = estimate_all(data, dist, model, switch_tau=np.inf, os_lambda=np.inf)
    narrow = estimate_all(data, dist, model, switch_tau=0.0, os_lambda=0.0)
    np.testing.assert_allclose(wide["switch_dr"], wide["dr"], rtol=1e-6)
    np.testing.assert_allclose(wide["dr_os"], wide["dr"], rtol=1e-6)
    np.testing.assert_allclose(narrow["switch_dr"], narrow["dm"], rtol=1e-6)
    np.testing.assert_allclose(narrow["dr_os"], narrow["dm"], rtol=1e-6)


def test_deterministic_policy_gives_finite_estimates_at_every_limit():
    """A one-hot pi_e makes w = 0 on most rows; lambda = 0 must still give DR-OS = DM."""
    data, _, model = _problem()
    greedy = np.argmax(model, axis=1)  # [n, K]
    dist = (np.arange(NUM_ACTIONS)[None, :, None] == greedy[:, None, :]).astype(np.float32)
    for tau, lam in ((0.0, 0.0), (np.inf, np.inf), (2.0, 1.5)):
        got = estimate_all(data, dist, model, switch_tau=tau, os_lambda=lam)
        want = _numpy_oracle(data, dist, model, tau, lam) if lam > 0 else None
        assert all(np.isfinite(float(v)) for v in got.values())
        if want is None:
            np.testing.assert_allclose(got["dr_os"], got["dm"], rtol=1e-6)
        else:
            for name in ESTIMATORS:
                np.testing.assert_allclose(float(got[name]), want[name], rtol=2e-5)


def test_context_free_tables_equal_tiled_tables():
    data, dist, model = _problem(context_free=True)
    tiled = (np.repeat(dist, NUM_ROWS, 0), np.repeat(model, NUM_ROWS, 0))
    one, many = estimate_all(data, dist, model), estimate_all(data, *tiled)
    for name in ESTIMATORS:
        np.testing.assert_allclose(one[name], many[name], rtol=1e-6)


def test_ipw_and_snipw_need_no_reward_model():
    data, dist, _ = _problem()
    got = estimate_all(data, dist, estimators=("ipw", "snipw"))
    assert set(got) == {"ipw", "snipw"}


def test_float64_follows_inputs():
    data, dist, model = _problem()
    with jax.enable_x64(True):
        data64 = LoggedData(data.action, data.position, *(x.astype(np.float64) for x in data[2:]))
        got = estimate_all(data64, dist.astype(np.float64), model.astype(np.float64))
        assert all(v.dtype == jnp.float64 for v in got.values())
    assert policy_value(data, dist, "ipw").dtype == jnp.float32


def test_jit_and_vmap_over_logs():
    """Under vmap only the shape checks run; the estimates equal the eager ones."""
    logs = [_problem(seed) for seed in range(3)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[log[0] for log in logs])
    dists = jnp.stack([log[1] for log in logs])
    models = jnp.stack([log[2] for log in logs])
    batched = jax.jit(jax.vmap(lambda d, p, q: estimate_all(d, p, q)))(stacked, dists, models)
    for index, log in enumerate(logs):
        eager = estimate_all(*log)
        for name in ESTIMATORS:
            np.testing.assert_allclose(batched[name][index], eager[name], rtol=1e-6)


def test_bootstrap_width_matches_analytic_standard_error():
    """IPW is a mean: its bootstrap interval is +-1.96 sd(w r)/sqrt(n) up to resampling noise.

    With B = 2000 resamples the 2.5% and 97.5% quantiles of a normal have relative standard
    error ~4%; the tolerance (12%) is 3 of those.
    """
    data, dist, model = _problem(num_rows=2000, seed=1)
    w = dist[np.arange(2000), data.action, data.position] / data.pscore
    half_width = 1.96 * np.std(w * data.reward) / np.sqrt(2000)
    out = bootstrap_intervals(jax.random.key(0), data, dist, model, num_resamples=2000)
    assert tuple(out) == ESTIMATORS
    ipw = out["ipw"]
    np.testing.assert_allclose((ipw.high - ipw.low) / 2, half_width, rtol=0.12)
    point = estimate_all(data, dist, model)
    for name in ESTIMATORS:
        interval = out[name]
        assert interval.low < interval.estimate < interval.high, name
        np.testing.assert_allclose(interval.estimate, point[name], rtol=1e-6)


def test_bootstrap_is_deterministic_per_key_and_level_orders_intervals():
    data, dist, model = _problem()
    key = jax.random.key(3)
    first = bootstrap_intervals(key, data, dist, model, ("dr",), num_resamples=300)
    again = bootstrap_intervals(key, data, dist, model, ("dr",), num_resamples=300)
    narrow = bootstrap_intervals(key, data, dist, model, ("dr",), num_resamples=300, level=0.5)
    other = bootstrap_intervals(jax.random.key(4), data, dist, model, ("dr",), num_resamples=300)
    assert first == again
    assert first["dr"].low < narrow["dr"].low < narrow["dr"].high < first["dr"].high
    assert first["dr"].low != other["dr"].low


def test_relative_error():
    np.testing.assert_allclose(relative_error(0.006, 0.005), 0.2, rtol=1e-6)
    with pytest.raises(InvalidArgumentError, match="truth"):
        relative_error(0.1, 0.0)


def _replace(data, **fields):
    return data._replace(**{k: np.asarray(v) for k, v in fields.items()})


BAD_INPUTS = {
    "lengths": (lambda d, p, q: (_replace(d, reward=d.reward[:-1]), p, q), "data.reward"),
    "pscore zero": (lambda d, p, q: (_replace(d, pscore=np.r_[0.0, d.pscore[1:]]), p, q), "pscore"),
    "pscore above one": (
        lambda d, p, q: (_replace(d, pscore=np.r_[1.5, d.pscore[1:]].astype(np.float32)), p, q),
        "pscore",
    ),
    "action range": (
        lambda d, p, q: (_replace(d, action=np.r_[NUM_ACTIONS, d.action[1:]]), p, q),
        "data.action",
    ),
    "position range": (
        lambda d, p, q: (_replace(d, position=np.r_[-1, d.position[1:]]), p, q),
        "data.position",
    ),
    "nan reward": (
        lambda d, p, q: (_replace(d, reward=np.r_[np.nan, d.reward[1:]]), p, q),
        "data.reward",
    ),
    "action float": (
        lambda d, p, q: (_replace(d, action=d.action.astype(np.float32)), p, q),
        "data.action",
    ),
    "dist not normalised": (lambda d, p, q: (d, p * 1.01, q), "action_dist"),
    "dist rows": (lambda d, p, q: (d, p[:5], q), "action_dist"),
    "dist rank": (lambda d, p, q: (d, p[:, :, 0], q), "action_dist"),
    "model shape": (lambda d, p, q: (d, p, q[:, :-1]), "estimated_rewards"),
    "model nan": (lambda d, p, q: (d, p, np.where(q > 0.99, np.nan, q)), "estimated_rewards"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_named(case):
    make, name = BAD_INPUTS[case]
    data, dist, model = make(*_problem())
    with pytest.raises(InvalidArgumentError, match=name):
        estimate_all(data, dist, model)
    with pytest.raises(InvalidArgumentError, match=name):
        bootstrap_intervals(jax.random.key(0), data, dist, model, num_resamples=10)


def test_bad_names_and_hyper_parameters():
    data, dist, model = _problem()
    with pytest.raises(InvalidArgumentError, match="estimator"):
        policy_value(data, dist, "ips", model)
    with pytest.raises(InvalidArgumentError, match="estimated_rewards.*dm, dr"):
        estimate_all(data, dist, estimators=("ipw", "dm", "dr"))
    with pytest.raises(InvalidArgumentError, match="switch_tau"):
        estimate_all(data, dist, model, switch_tau=-1.0)
    with pytest.raises(InvalidArgumentError, match="os_lambda"):
        estimate_all(data, dist, model, os_lambda=float("nan"))
    with pytest.raises(InvalidArgumentError, match="hyper"):
        estimate_all(data, dist, model, tau=1.0)
    with pytest.raises(InvalidArgumentError, match="num_resamples"):
        bootstrap_intervals(jax.random.key(0), data, dist, model, num_resamples=0)
    with pytest.raises(InvalidArgumentError, match="level"):
        bootstrap_intervals(jax.random.key(0), data, dist, model, level=1.0)
    with pytest.raises(InvalidArgumentError, match="key"):
        bootstrap_intervals(0, data, dist, model)


def test_bootstrap_counts_are_poisson_one():
    """The inverse CDF on 32-bit words: P(count = c) equals the Poisson(1) pmf to within the
    grid (2^-32) for c <= 12; counts of uniform words have mean 1 and variance 1."""
    edges = np.concatenate([[0], ope_module._POISSON_THRESHOLDS.astype(np.float64), [2.0**32]])
    probs = np.diff(edges) / 2.0**32
    np.testing.assert_allclose(probs[:-1], stats.poisson.pmf(np.arange(12), 1.0), atol=2**-31)
    assert probs[-1] == pytest.approx(stats.poisson.sf(11, 1.0), abs=2**-31)
    below = (ope_module._POISSON_THRESHOLDS - 1).astype(np.uint32)
    at = ope_module._POISSON_THRESHOLDS.astype(np.uint32)
    counts = ope_module._poisson_counts(jnp.asarray(np.concatenate([below, at])), jnp.float32)
    np.testing.assert_array_equal(counts, np.r_[np.arange(12), np.arange(1, 13)])
    words = jax.random.bits(jax.random.key(0), (1_000_000,), jnp.uint32)
    draws = np.asarray(ope_module._poisson_counts(words, jnp.float32))
    assert abs(draws.mean() - 1) < 4e-3 and abs(draws.var() - 1) < 6e-3
