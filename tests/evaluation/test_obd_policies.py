"""OBD policies and reward models: BTS action distribution against numpy, the uniform policy
against the random logs' propensities, cross-fitting by construction, named errors."""

import jax
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.datasets.obd import load_bts_prior, load_obd
from prime_science.evaluation import obd_policies as policies

NUM_RANKINGS = 200_000


@pytest.fixture(scope="module")
def men_bts():
    alpha, beta = load_bts_prior("men")
    dist = np.asarray(
        policies.bts_action_distribution(jax.random.key(0), alpha, beta, NUM_RANKINGS)
    )
    return alpha, beta, dist


@pytest.mark.slow  # simulates rankings (about 5-30 s on a busy 2-core machine)
def test_bts_rows_sum_to_one(men_bts):
    _, _, dist = men_bts
    assert dist.shape == (34, 3)
    np.testing.assert_allclose(dist.sum(axis=0), 1.0, atol=1e-5)
    assert np.all(dist >= 0)


@pytest.mark.slow  # simulates rankings (about 5-30 s on a busy 2-core machine)
def test_bts_matches_numpy_simulation_within_mc_error(men_bts):
    alpha, beta, dist = men_bts
    rng = np.random.default_rng(1)
    draws = rng.beta(alpha, beta, size=(NUM_RANKINGS, alpha.size))
    top = np.argsort(-draws, axis=1)[:, :3]
    oracle = np.zeros_like(dist)
    np.add.at(oracle, (top, np.arange(3)[None, :]), 1.0)
    oracle /= NUM_RANKINGS
    # both are MC estimates: s.d. of the difference sqrt(2 p (1 - p) / R); 5 s.d. over 102 cells
    sd = np.sqrt(2 * np.maximum(oracle, 1 / NUM_RANKINGS) / NUM_RANKINGS)
    assert np.all(np.abs(dist - oracle) < 5 * sd + 1e-6)


@pytest.mark.slow  # simulates rankings (about 5-30 s on a busy 2-core machine)
def test_bts_top_item_has_largest_prior_mean(men_bts):
    alpha, beta, dist = men_bts
    assert np.argmax(dist[:, 0]) == np.argmax(alpha / (alpha + beta))


def test_uniform_policy_matches_random_logs_propensities():
    log = load_obd("random", "women")
    dist = np.asarray(policies.uniform_action_distribution(log.num_items))
    np.testing.assert_allclose(dist[log.item, log.position], log.propensity, rtol=1e-6)
    wide = policies.broadcast_to_rows(dist, 5)
    assert wide.shape == (5, 46, 3)


def test_ranking_frequencies_counts_by_slot():
    rankings = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [0, 1, 2]], np.int32)
    freq = np.asarray(policies.ranking_frequencies(rankings, 3))
    np.testing.assert_allclose(freq[:, 0], [0.75, 0.25, 0.0])
    np.testing.assert_allclose(freq[:, 2], [0.0, 0.25, 0.75])


def test_cross_fit_never_uses_a_rows_own_fold():
    num_rows, num_folds = 103, 4
    folds = policies.fold_ids(num_rows, num_folds)
    assert set(np.unique(folds)) == set(range(num_folds))

    def fit_predict(train, held_out):
        # by construction: a prediction is 1 iff the row was in its own training set
        assert np.intersect1d(train, held_out).size == 0
        assert set(folds[train]).isdisjoint(set(folds[held_out]))
        return np.isin(held_out, train).astype(np.float32)

    out = policies.cross_fit(fit_predict, num_rows, num_folds)
    assert out.shape == (num_rows,) and not out.any()


def test_cross_fit_predicts_each_row_from_the_other_folds():
    folds = policies.fold_ids(10, 2)
    # a "model" that predicts the mean row index of its training rows
    out = policies.cross_fit(lambda train, held: np.full(held.size, train.mean()), 10, 2)
    np.testing.assert_allclose(out, np.where(folds == 0, 7.0, 2.0))


@pytest.mark.slow
def test_estimated_rewards_shape_and_range():
    log = load_obd("random", "men")
    rows = np.arange(600)
    q = policies.estimated_rewards(log, "probit", rows=rows, num_folds=2)
    assert q.shape == (600, 34, 3)
    assert np.all((q > 0) & (q < 0.2))


@pytest.mark.slow  # simulates rankings (about 5-30 s on a busy 2-core machine)
def test_click_action_distribution_rows_sum_to_one():
    log = load_obd("random", "men")
    spec = policies.obd_feature_spec(log)
    rows = np.arange(300)
    ids = policies.encode_pairs(spec, log, rows, log.item[rows], log.position[rows])
    model = policies.fit_click_model("probit", spec, ids, log.click[rows])
    dist = np.asarray(
        policies.click_action_distribution(jax.random.key(0), model, spec, log, rows[:20], 50)
    )
    assert dist.shape == (20, 34, 3)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0, atol=1e-5)


def test_named_errors():
    with pytest.raises(InvalidArgumentError, match="beta"):
        policies.bts_action_distribution(jax.random.key(0), np.ones(3), np.ones(4), 10)
    with pytest.raises(InvalidArgumentError, match="num_rankings"):
        policies.bts_action_distribution(jax.random.key(0), np.ones(3), np.ones(3), 0)
    with pytest.raises(InvalidArgumentError, match="rankings"):
        policies.ranking_frequencies(np.array([[0, 5]], np.int32), 3)
    with pytest.raises(InvalidArgumentError, match="num_folds"):
        policies.fold_ids(10, 1)
    with pytest.raises(InvalidArgumentError, match="kind"):
        policies.click_model("linear", policies.obd_feature_spec(load_obd("random", "men")), 0.01)
    log = load_obd("random", "men")
    with pytest.raises(InvalidArgumentError, match="rows"):
        policies.fit_beta_bernoulli(log, np.array([10_000]))
