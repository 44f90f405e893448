"""Group prior records: expansion, use by the bandit factories, checkpoint round trip, checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.bandits.logistic import logistic_laplace
from prime_science.bandits.probit import probit_adf
from prime_science.core.checkpoint import restore_checkpoint, save_checkpoint
from prime_science.core.errors import InvalidArgumentError
from prime_science.priors import record as rec

GROUPS = np.array([0, 0, 1, 2, 1, 0], np.int32)


def _gaussian():
    return rec.gaussian_group_prior([0.5, -1.0, 0.0], [0.04, 1.0, 0.25], GROUPS)


def test_feature_prior_is_the_group_gather_and_feeds_probit_and_logistic():
    mean, variance = rec.feature_prior(_gaussian())
    np.testing.assert_array_equal(mean, np.array([0.5, -1.0, 0.0], np.float32)[GROUPS])
    np.testing.assert_array_equal(variance, np.array([0.04, 1.0, 0.25], np.float32)[GROUPS])
    jitted = jax.jit(rec.feature_prior)(_gaussian())
    np.testing.assert_array_equal(jitted[1], variance)
    state = probit_adf(6, prior_mean=mean, prior_variance=variance).init()
    np.testing.assert_array_equal(state.mean, mean)
    np.testing.assert_array_equal(state.variance, variance)
    state = logistic_laplace(6, prior_mean=mean, prior_variance=variance).init()
    np.testing.assert_allclose(state.precision, 1.0 / variance, rtol=1e-6)


def test_item_prior_feeds_beta_bernoulli():
    record = rec.beta_group_prior([1.0, 2.0], [30.0, 8.0])
    items = jnp.array([1, 0, 0, 1, 1], jnp.int32)
    alpha, beta = rec.item_prior(record, items)
    np.testing.assert_array_equal(alpha, [2, 1, 1, 2, 2])
    np.testing.assert_array_equal(beta, [8, 30, 30, 8, 8])
    state = beta_bernoulli(alpha, beta).init(5)
    np.testing.assert_array_equal(state.alpha, alpha)
    np.testing.assert_array_equal(state.beta, beta)


@pytest.mark.parametrize("make", [_gaussian, lambda: rec.beta_group_prior([1.0, 2.0], [3.0, 4.0])])
def test_checkpoint_round_trip(tmp_path, make):
    record = make()
    save_checkpoint(tmp_path, record, step=3, metadata={"groups": ["a", "b"]})
    restored, metadata = restore_checkpoint(tmp_path, record)
    assert type(restored) is type(record)
    for saved, loaded in zip(record, restored, strict=True):
        assert saved.dtype == loaded.dtype
        np.testing.assert_array_equal(saved, loaded)
    assert metadata == {"groups": ["a", "b"], "step": 3}


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0], GROUPS), "group_of_feature"),  # empty
        (([0.0, 0.0, 0.0], [1.0, -0.1, 1.0], GROUPS), "variance"),
        (([0.0, 0.0, 0.0], [1.0, 0.0, 1.0], GROUPS), "variance"),
        (([0.0, np.nan, 0.0], [1.0, 1.0, 1.0], GROUPS), "mean"),
        (([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], GROUPS + 1), "group_of_feature"),
        (([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], GROUPS - 1), "group_of_feature"),
        (([0.0, 0.0, 0.0], [1.0, 1.0], GROUPS), "variance"),  # mismatched lengths
        (([0.0, 0.0, 0.0], [1.0, 1.0, 1.0], GROUPS.astype(float)), "group_of_feature"),
        (([], [], GROUPS[:0]), "mean"),
    ],
)
def test_bad_gaussian_input_names_the_argument(args, name):
    with pytest.raises(InvalidArgumentError, match=f"^{name}:"):
        rec.gaussian_group_prior(*args)


def test_bad_records_and_maps_name_the_argument():
    with pytest.raises(InvalidArgumentError, match="^beta:"):
        rec.beta_group_prior([1.0, 2.0], [1.0, -2.0])
    with pytest.raises(InvalidArgumentError, match="^beta:"):
        rec.beta_group_prior([1.0, 2.0], [1.0])
    with pytest.raises(InvalidArgumentError, match="^group_of_item:"):
        rec.item_prior(rec.beta_group_prior([1.0], [1.0]), jnp.array([0, 1]))
    with pytest.raises(InvalidArgumentError, match="^record:"):
        rec.feature_prior((1.0, 2.0, GROUPS))
    bad = rec.GaussianGroupPrior(jnp.zeros(3), jnp.array([1.0, -1.0, 1.0]), jnp.asarray(GROUPS))
    with pytest.raises(InvalidArgumentError, match="^variance:"):
        rec.feature_prior(bad)


def test_groups_from_slices():
    groups, names = rec.groups_from_slices({"a": slice(0, 2), "b": slice(2, 5)}, 5)
    np.testing.assert_array_equal(groups, [0, 0, 1, 1, 1])
    assert names == ("a", "b")
    with pytest.raises(InvalidArgumentError, match="^slices:"):
        rec.groups_from_slices({"a": slice(0, 2)}, 5)
    with pytest.raises(InvalidArgumentError, match=r"^slices\['b'\]:"):
        rec.groups_from_slices({"a": slice(0, 3), "b": slice(2, 5)}, 5)
