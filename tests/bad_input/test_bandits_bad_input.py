"""Bad inputs to every public entry point of the bandits, the sampler, checkpoints and meshes.

One table: each case is a call, the error class it must raise, a substring of the message
that names the offending argument (the house format ``<name>: expected <what>, got <what
came>``), and a ``watch`` whose value must be the same before and after the failed call (the
state the call was given, the input arrays, or the files of a checkpoint directory). Every
case builds on :func:`env`, one module-scoped set of policies, states and directories.
"""

from __future__ import annotations

import multiprocessing
import types
from typing import NamedTuple

import checkpoint_race
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from unchanged import Case, check_case

from prime_science.bandits import delayed as D
from prime_science.bandits import features as F
from prime_science.bandits.beta_bernoulli import BetaBernoulliState, beta_bernoulli
from prime_science.bandits.logistic import LogisticState, logistic_laplace
from prime_science.bandits.probit import ProbitState, probit_adf
from prime_science.core import checkpoint as C
from prime_science.core import mesh as M
from prime_science.core import random as R
from prime_science.core.errors import CheckpointError, InvalidArgumentError

IAE = InvalidArgumentError
KEY = jax.random.key(0)


class Saved(NamedTuple):
    alpha: jax.Array
    count: jax.Array


class Keyed(NamedTuple):
    alpha: jax.Array
    key: jax.Array


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    bb = beta_bernoulli()
    bb_state = bb.update(bb.init(10), np.array([1, 2]), np.array([1.0, 0.0]))
    bb_retired = bb.retire_arms(bb_state, np.array([9]))
    probit = probit_adf(6)
    logistic = logistic_laplace(6)
    ledger = D.ledger_init(8)
    ledger = D.record_impressions(
        ledger, np.array([1, 2]), np.array([0, 1]), np.array([0, 0]), np.array([0.0, 1.0])
    )
    spec = F.feature_spec([F.intercept(), F.bucketized("price", (1.0, 2.0))])
    root = tmp_path_factory.mktemp("checkpoints")
    saved = Saved(jnp.arange(4.0), jnp.array(3, jnp.int32))
    C.save_checkpoint(root, saved, step=1, metadata={"policy": "test"})
    a_file = root.parent / "not_a_directory.txt"
    a_file.write_text("plain file\n")
    return types.SimpleNamespace(
        bb=bb,
        bb_state=bb_state,
        bb_retired=bb_retired,
        probit=probit,
        probit_state=probit.init(),
        logistic=logistic,
        logistic_state=logistic.init(),
        ledger=ledger,
        spec=spec,
        ids=np.array([[0, 1], [0, 3]], np.int32),
        ones=np.ones(4, np.float32),
        root=root,
        saved=saved,
        a_file=a_file,
        mesh=M.arm_mesh(),
        distribution=D.exponential_delays(2.0),
    )


def bb_state_with(**fields):
    """The beta-Bernoulli fixture state with some fields replaced (a hand-built state)."""
    return lambda e: e.bb_state._replace(**{k: jnp.asarray(v) for k, v in fields.items()})


BB = lambda e: e.bb_state
PROBIT = lambda e: e.probit_state
LOGISTIC = lambda e: e.logistic_state
LEDGER = lambda e: e.ledger
ROOT = lambda e: e.root
ONES = lambda e: e.ones

CASES = [
    # ------------------------------------------------------------- beta_bernoulli
    Case("bb-prior-alpha-1e39", lambda e: beta_bernoulli(prior_alpha=1e39), IAE,
         "prior_alpha: expected finite values > 0 in the sampler's range", BB),
    Case("bb-prior-beta-subnormal", lambda e: beta_bernoulli(prior_beta=1e-40), IAE,
         "prior_beta: expected finite values > 0", BB),
    Case("bb-prior-alpha-nan-array", lambda e: beta_bernoulli(np.array([1.0, np.nan])), IAE,
         "prior_alpha: expected finite values > 0", BB),
    Case("bb-init-zero-arms", lambda e: e.bb.init(0), IAE, "num_arms: expected a positive", BB),
    Case("bb-init-too-many-active", lambda e: e.bb.init(5, 7), IAE,
         "num_active: expected an integer in [0, 5]", BB),
    Case("bb-update-weight-1e39",
         lambda e: e.bb.update(e.bb_state, np.array([1]), np.array([1.0]), np.array([1e39])),
         IAE, "weights: expected finite values >= 0 (float32", BB),
    Case("bb-update-counts-overflow",
         lambda e: e.bb.update(e.bb_state, np.array([1, 1]), np.array([1.0, 1.0]),
                               np.array([9e37, 9e37])),
         IAE, "weights: expected weights that keep every alpha and beta <= 1e+38", BB),
    Case("bb-update-counts-overflow-no-weights",
         lambda e: e.bb.update(bb_state_with(beta=np.full(10, 2e38, np.float32))(e),
                               np.array([3]), np.array([0.0])),
         IAE, "arms: expected weights that keep every alpha and beta", BB),
    Case("bb-update-reward-nan",
         lambda e: e.bb.update(e.bb_state, np.array([1]), np.array([np.nan])), IAE,
         "rewards: expected values in [0, 1]", BB),
    Case("bb-update-reward-2",
         lambda e: e.bb.update(e.bb_state, np.array([1]), np.array([2.0])), IAE,
         "rewards: expected values in [0, 1]", BB),
    Case("bb-update-arm-out-of-range",
         lambda e: e.bb.update(e.bb_state, np.array([10]), np.array([1.0])), IAE,
         "arms: expected arm ids in [0, 10)", BB),
    Case("bb-update-float-arms",
         lambda e: e.bb.update(e.bb_state, np.array([1.0]), np.array([1.0])), IAE,
         "arms: expected integer arm ids", BB),
    Case("bb-update-length-mismatch",
         lambda e: e.bb.update(e.bb_state, np.array([1, 2]), np.array([1.0])), IAE,
         "rewards: expected the same length as arms", BB),
    Case("bb-update-negative-weight",
         lambda e: e.bb.update(e.bb_state, np.array([1]), np.array([1.0]), np.array([-1.0])),
         IAE, "weights: expected finite values >= 0", BB),
    Case("bb-update-retired-arm",
         lambda e: e.bb.update(e.bb_retired, np.array([9]), np.array([1.0])), IAE,
         "arms: expected active arms", lambda e: e.bb_retired),
    Case("bb-sample-int-key", lambda e: e.bb.sample(0, e.bb_state, 1), IAE,
         "key: expected a PRNG key", BB),
    Case("bb-sample-float-key", lambda e: e.bb.sample(jnp.zeros(2), e.bb_state, 1), IAE,
         "key: expected a PRNG key", BB),
    Case("bb-sample-key-array",
         lambda e: e.bb.sample(jax.random.split(KEY, 3), e.bb_state, 1), IAE,
         "key: expected a single PRNG key", BB),
    Case("bb-sample-k-0", lambda e: e.bb.sample(KEY, e.bb_state, 0), IAE,
         "k: expected an integer in [1, 10]", BB),
    Case("bb-sample-batch-int-key", lambda e: e.bb.sample_batch(7, e.bb_state, 1, 2), IAE,
         "key: expected a PRNG key", BB),
    Case("bb-sample-batch-zero-requests",
         lambda e: e.bb.sample_batch(KEY, e.bb_state, 1, 0), IAE,
         "num_requests: expected a positive integer", BB),
    Case("bb-sample-mask-too-few",
         lambda e: e.bb.sample(KEY, e.bb_state, 2, np.arange(10) < 1), IAE,
         "available: expected at least k = 2 available candidates", BB),
    Case("bb-sample-batch-mask-wrong-length",
         lambda e: e.bb.sample_batch(KEY, e.bb_state, 1, 2, np.ones(9, bool)), IAE,
         "available: expected one entry per candidate (10)", BB),
    Case("bb-add-active-arm", lambda e: e.bb.add_arms(e.bb_state, np.array([1])), IAE,
         "arm_ids: expected free (inactive) slots", BB),
    Case("bb-retire-inactive-arm", lambda e: e.bb.retire_arms(e.bb_retired, np.array([9])),
         IAE, "arm_ids: expected active arms", lambda e: e.bb_retired),
    Case("bb-add-arm-out-of-range", lambda e: e.bb.add_arms(e.bb_retired, np.array([-1])),
         IAE, "arm_ids: expected arm ids in [0, 10)", lambda e: e.bb_retired),
    # ---------------------------------------------------------------------- probit
    Case("probit-prior-variance-1e39", lambda e: probit_adf(6, prior_variance=1e39).init(),
         IAE, "prior_variance: expected values in", PROBIT),
    Case("probit-prior-variance-subnormal",
         lambda e: probit_adf(6, prior_variance=1e-40).init(), IAE,
         "prior_variance: expected values in [1.17549e-38", PROBIT),
    Case("probit-prior-mean-1e39", lambda e: probit_adf(6, prior_mean=-1e39).init(), IAE,
         "prior_mean: expected values in [-3.40282e+38", PROBIT),
    Case("probit-noise-squared-underflows", lambda e: probit_adf(6, noise=1e-30).init(), IAE,
         "noise: expected noise ** 2 in", PROBIT),
    Case("probit-noise-zero", lambda e: probit_adf(6, noise=0.0), IAE,
         "noise: expected a real number > 0", PROBIT),
    Case("probit-update-overflows",
         lambda e: e.probit.update(
             ProbitState(jnp.full(6, 3e38, jnp.float32), jnp.ones(6, jnp.float32)),
             np.array([[0, 1, 2]]), np.array([0.0])),
         IAE, "state: expected a posterior whose update by these events stays finite", PROBIT),
    Case("probit-update-negative-variance",
         lambda e: e.probit.update(e.probit_state._replace(variance=-jnp.ones(6)),
                                   e.ids, np.array([1.0, 0.0])),
         IAE, "state.variance: expected finite values > 0", PROBIT),
    Case("probit-update-nan-mean",
         lambda e: e.probit.update(e.probit_state._replace(mean=jnp.full(6, jnp.nan)),
                                   e.ids, np.array([1.0, 0.0])),
         IAE, "state.mean: expected finite values", PROBIT),
    Case("probit-update-click-2",
         lambda e: e.probit.update(e.probit_state, e.ids, np.array([2.0, 0.0])), IAE,
         "clicks: expected values in {0, 1}", PROBIT),
    Case("probit-update-id-out-of-range",
         lambda e: e.probit.update(e.probit_state, np.array([[6, 0]]), np.array([1.0])), IAE,
         "feature_ids: expected ids in [0, 6)", PROBIT),
    Case("probit-sample-int-key",
         lambda e: e.probit.sample(0, e.probit_state, e.ids, 1), IAE,
         "key: expected a PRNG key", PROBIT),
    Case("probit-sample-batch-str-key",
         lambda e: e.probit.sample_batch("key", e.probit_state, e.ids, 1, 2), IAE,
         "key: expected a PRNG key", PROBIT),
    Case("probit-sample-k-too-big",
         lambda e: e.probit.sample(KEY, e.probit_state, e.ids, 3), IAE,
         "k: expected an integer in [1, 2]", PROBIT),
    Case("probit-sample-mask-not-bool",
         lambda e: e.probit.sample(KEY, e.probit_state, e.ids, 1, np.ones(2, np.int32)), IAE,
         "available: expected a bool mask", PROBIT),
    Case("probit-sample-batch-mask-too-few",
         lambda e: e.probit.sample_batch(KEY, e.probit_state, e.ids, 2, 3,
                                         np.array([True, False])), IAE,
         "available: expected at least k = 2 available candidates", PROBIT),
    Case("probit-predict-float-ids",
         lambda e: e.probit.predict(e.probit_state, np.zeros((2, 2))), IAE,
         "feature_ids: expected integer feature ids", PROBIT),
    # -------------------------------------------------------------------- logistic
    Case("logistic-update-weight-1e39",
         lambda e: e.logistic.update(e.logistic_state, e.ids, np.array([1.0, 0.0]),
                                     np.array([1e39, 1.0])),
         IAE, "weights: expected finite values >= 0 (at most 3.40282e+38 in float32)",
         LOGISTIC),
    Case("logistic-update-weight-overflows-newton",
         lambda e: e.logistic.update(e.logistic_state, e.ids, np.array([1.0, 0.0]),
                                     np.array([1e30, 1e30])),
         IAE, "state: expected a posterior whose update by these events stays finite",
         LOGISTIC),
    Case("logistic-prior-variance-subnormal-precision",
         lambda e: logistic_laplace(6, prior_variance=1e-39).init(), IAE,
         "prior_variance: expected 1 / prior_variance in", LOGISTIC),
    Case("logistic-update-negative-precision",
         lambda e: e.logistic.update(LogisticState(jnp.zeros(6), -jnp.ones(6)), e.ids,
                                     np.array([1.0, 0.0])),
         IAE, "state.precision: expected finite values > 0", LOGISTIC),
    Case("logistic-sample-int-key",
         lambda e: e.logistic.sample(1, e.logistic_state, e.ids, 1), IAE,
         "key: expected a PRNG key", LOGISTIC),
    Case("logistic-sample-batch-wrong-legacy-key",
         lambda e: e.logistic.sample_batch(np.zeros(3, np.uint32), e.logistic_state, e.ids), IAE,
         "key: expected a PRNG key", LOGISTIC),
    Case("logistic-sample-mask-rank-2",
         lambda e: e.logistic.sample(KEY, e.logistic_state, e.ids, 1, np.ones((2, 1), bool)),
         IAE, "available: expected", LOGISTIC),
    Case("logistic-covariance", lambda e: logistic_laplace(6, covariance="dense"), IAE,
         "covariance: expected one of", LOGISTIC),
    # -------------------------------------------------------------------- features
    Case("features-boundary-1e39", lambda e: F.bucketized("price", (1.0, 1e39)), IAE,
         "boundaries: expected finite, strictly increasing values (float32 range)", ONES),
    Case("features-dense-not-a-spec", lambda e: F.dense_features("spec", e.ids), IAE,
         "spec: expected a FeatureSpec", lambda e: e.ids),
    Case("features-dense-float-ids",
         lambda e: F.dense_features(e.spec, np.zeros((2, 2))), IAE,
         "feature_ids: expected integer feature ids", lambda e: e.ids),
    Case("features-dense-id-out-of-range",
         lambda e: F.dense_features(e.spec, np.array([[0, 4]])), IAE,
         "feature_ids: expected ids in [0, 4) or -1", lambda e: e.ids),
    Case("features-encode-unknown-column",
         lambda e: F.encode(e.spec, {"price": e.ones, "brand": e.ones}), IAE,
         "columns: expected only the spec's columns", ONES),
    Case("features-encode-nan-price",
         lambda e: F.encode(e.spec, {"price": np.array([1.0, np.nan])}), IAE,
         "columns['price']: expected no NaN", ONES),
    Case("features-categorical-bool-size", lambda e: F.categorical("brand", True), IAE,
         "vocabulary_size: expected an integer", ONES),
    Case("features-empty-spec", lambda e: F.feature_spec([]), IAE,
         "blocks: expected a non-empty sequence", ONES),
    Case("features-unseen-id-intercept", lambda e: e.spec.unseen_id("intercept"), IAE,
         "name: expected a block with an unseen id", ONES),
    # --------------------------------------------------------------------- delayed
    Case("delayed-impression-time-1e39",
         lambda e: D.record_impressions(e.ledger, np.array([3]), np.array([0]), np.array([0]),
                                        np.array([1e39])),
         IAE, "times: expected finite times", LEDGER),
    Case("delayed-label-time-1e39",
         lambda e: D.record_labels(e.ledger, np.array([1]), np.array([1e39])), IAE,
         "times: expected finite times", LEDGER),
    Case("delayed-expire-now-str", lambda e: D.expire(e.ledger, "abc", 5.0), IAE,
         "now: expected a real number", LEDGER),
    Case("delayed-expire-now-1e39", lambda e: D.expire(e.ledger, 1e39, 5.0), IAE,
         "now: expected a finite number (finite ones at most 3.4e38", LEDGER),
    Case("delayed-expire-window-1e39", lambda e: D.expire(e.ledger, 1.0, 1e39), IAE,
         "window: expected a number > 0", LEDGER),
    Case("delayed-view-window-nan", lambda e: D.ledger_view(e.ledger, 1.0, np.nan), IAE,
         "window: expected a number > 0", LEDGER),
    Case("delayed-view-now-none", lambda e: D.ledger_view(e.ledger, None), IAE,
         "now: expected a real number", LEDGER),
    Case("delayed-naive-not-a-ledger", lambda e: D.naive(e.bb_state, 1.0), IAE,
         "state: expected a LedgerState", LEDGER),
    Case("delayed-matured-now-array",
         lambda e: D.wait_for_matured(e.ledger, np.array([1.0, 2.0]), 1.0), IAE,
         "now: expected a real number (a scalar)", LEDGER),
    Case("delayed-contains-float-ids", lambda e: D.contains(e.ledger, np.array([1.5])), IAE,
         "impression_ids: expected integer ids", LEDGER),
    Case("delayed-fit-dfm-no-rows",
         lambda e: D.fit_dfm(np.zeros(0), np.zeros(0), np.zeros(0, np.int32), 1), IAE,
         "labels: expected at least one observation", ONES),
    Case("delayed-fit-dfm-zero-weight",
         lambda e: D.fit_dfm(np.zeros(4), e.ones, np.zeros(4, np.int32), 1, np.zeros(4)), IAE,
         "weights: expected a positive total weight", ONES),
    Case("delayed-dfm-ll-nan-logit",
         lambda e: D.dfm_log_likelihood(np.nan, 0.0, np.ones(4), e.ones), IAE,
         "logit_p: expected finite values (no NaN)", ONES),
    Case("delayed-dfm-ll-rate-overflows",
         lambda e: D.dfm_log_likelihood(0.0, 200.0, np.ones(4), e.ones), IAE,
         "log_rate: expected finite values (no NaN) <= 88.72", ONES),
    Case("delayed-dfm-probability-inf-rate",
         lambda e: D.dfm_conversion_probability(0.0, np.inf, np.zeros(4), e.ones), IAE,
         "log_rate: expected finite values", ONES),
    Case("delayed-dfm-ratio-nan-u",
         lambda e: D.dfm_probit_log_ratio(np.nan, 0.0, 0.0, 1.0, False), IAE,
         "u: expected finite values (no NaN)", ONES),
    Case("delayed-otf-nan-gram",
         lambda e: D.otf_estimate(np.full((2, 2), np.nan), np.ones(2)), IAE,
         "gram: expected finite values", ONES),
    Case("delayed-otf-non-square",
         lambda e: D.otf_estimate(np.ones((2, 3)), np.ones(2)), IAE,
         "gram: expected a square [d, d] matrix", ONES),
    Case("delayed-otf-moment-length",
         lambda e: D.otf_estimate(np.eye(2), np.ones(3)), IAE,
         "moment: expected a vector of length 2", ONES),
    Case("delayed-sample-delays-int-key",
         lambda e: D.sample_delays(0, e.distribution, 3), IAE, "key: expected a PRNG key",
         lambda e: e.distribution),
    Case("delayed-sample-delays-params",
         lambda e: D.sample_delays(KEY, (1.0, 2.0), 3), IAE,
         "params: expected a DelayDistribution", lambda e: e.distribution),
    Case("delayed-exponential-mean-1e39", lambda e: D.exponential_delays(1e39), IAE,
         "mean: expected a finite number > 0", lambda e: e.distribution),
    # ---------------------------------------------------------------- core.random
    Case("random-logits-int-key", lambda e: R.beta_logits(0, e.ones, e.ones), IAE,
         "key: expected a PRNG key", ONES),
    Case("random-logits-nan-alpha",
         lambda e: R.beta_logits(KEY, np.array([1.0, np.nan]), np.ones(2)), IAE,
         "alpha: expected shapes in [SHAPE_MIN, SHAPE_MAX]", ONES),
    Case("random-logits-negative-beta",
         lambda e: R.beta_logits(KEY, np.ones(2), np.array([1.0, -1.0])), IAE,
         "beta: expected shapes in [SHAPE_MIN, SHAPE_MAX]", ONES),
    Case("random-logits-alpha-3e38",
         lambda e: R.beta_logits(KEY, np.array([3e38]), np.ones(1)), IAE,
         "alpha: expected shapes in", ONES),
    Case("random-logits-int-alpha",
         lambda e: R.beta_logits(KEY, np.ones(2, np.int32), np.ones(2)), IAE,
         "alpha: expected float Beta shapes", ONES),
    Case("random-logits-no-arms", lambda e: R.beta_logits(KEY, np.ones(0), np.ones(0)), IAE,
         "alpha: expected at least one arm", ONES),
    Case("random-logits-exact-str",
         lambda e: R.beta_logits(KEY, e.ones, e.ones, exact="yes"), IAE,
         "exact: expected True or False", ONES),
    Case("random-logits-float-offset",
         lambda e: R.beta_logits(KEY, e.ones, e.ones, arm_offset=1.5), IAE,
         "arm_offset: expected an integer arm offset", ONES),
    Case("random-top-k-zero",
         lambda e: R.beta_top_k(KEY, e.ones, e.ones, np.ones(4, bool), 0), IAE,
         "k: expected an integer in [1, 4]", ONES),
    Case("random-top-k-float-active",
         lambda e: R.beta_top_k(KEY, e.ones, e.ones, e.ones, 1), IAE,
         "active: expected a bool mask", ONES),
    Case("random-top-k-block-size-zero",
         lambda e: R.beta_top_k(KEY, e.ones, e.ones, np.ones(4, bool), 1, block_size=0), IAE,
         "block_size: expected a positive integer or None", ONES),
    Case("random-top-k-legacy-key-shape",
         lambda e: R.beta_top_k(np.zeros(4, np.uint32), e.ones, e.ones, np.ones(4, bool), 1),
         IAE, "key: expected a PRNG key", ONES),
    # ----------------------------------------------------------------- checkpoints
    Case("ckpt-save-existing-step",
         lambda e: C.save_checkpoint(e.root, e.saved, step=1), CheckpointError,
         "step: expected a step not yet saved", ROOT),
    Case("ckpt-save-negative-step",
         lambda e: C.save_checkpoint(e.root, e.saved, step=-1), CheckpointError,
         "step: expected a non-negative int", ROOT),
    Case("ckpt-save-overwrite-str",
         lambda e: C.save_checkpoint(e.root, e.saved, step=1, overwrite="no"), CheckpointError,
         "overwrite: expected True or False", ROOT),
    Case("ckpt-save-metadata-nan",
         lambda e: C.save_checkpoint(e.root, e.saved, step=2, metadata={"x": float("nan")}),
         CheckpointError, "metadata: expected strict-JSON-able values", ROOT),
    Case("ckpt-save-metadata-reserved",
         lambda e: C.save_checkpoint(e.root, e.saved, step=2, metadata={"step": 3}),
         CheckpointError, "metadata: expected str keys other than", ROOT),
    Case("ckpt-save-key-leaf",
         lambda e: C.save_checkpoint(e.root, Keyed(jnp.ones(2), KEY), step=2),
         CheckpointError, "state.key: expected an array of numbers or bools", ROOT),
    Case("ckpt-save-directory-none",
         lambda e: C.save_checkpoint(None, e.saved, step=2), CheckpointError,
         "directory: expected a path", ROOT),
    Case("ckpt-save-into-a-file",
         lambda e: C.save_checkpoint(e.a_file, e.saved, step=2), CheckpointError,
         "directory: expected a directory", lambda e: e.a_file),
    Case("ckpt-restore-missing-step",
         lambda e: C.restore_checkpoint(e.root, e.saved, step=5), CheckpointError,
         "step: expected one of the saved steps [1]", ROOT),
    Case("ckpt-restore-wrong-shape",
         lambda e: C.restore_checkpoint(e.root, Saved(jnp.ones(3), jnp.array(1, jnp.int32))),
         CheckpointError, "like.alpha: expected shape (4,) as saved", ROOT),
    Case("ckpt-restore-wrong-tree",
         lambda e: C.restore_checkpoint(e.root, Keyed(jnp.ones(4), jnp.ones(1))),
         CheckpointError, "like: expected a tree with the 2 saved leaves", ROOT),
    Case("ckpt-latest-step-of-a-file", lambda e: C.latest_step(e.a_file), CheckpointError,
         "directory: expected a directory", lambda e: e.a_file),
    # ------------------------------------------------------------------- core.mesh
    Case("mesh-devices-str", lambda e: M.arm_mesh("cpu"), IAE,
         "devices: expected a non-empty sequence of jax devices", ONES),
    Case("mesh-devices-empty", lambda e: M.arm_mesh([]), IAE,
         "devices: expected a non-empty sequence", ONES),
    Case("mesh-devices-repeated", lambda e: M.arm_mesh(jax.devices() * 2), IAE,
         "devices: expected distinct devices", ONES),
    Case("mesh-sharding-none", lambda e: M.arm_sharding(None), IAE,
         "mesh: expected a 1-D jax.sharding.Mesh", ONES),
    Case("mesh-shard-scalar-leaf",
         lambda e: M.shard_arms(BetaBernoulliState(e.ones, e.ones, True), e.mesh), IAE,
         "state.active: expected an array with a leading arm axis", ONES),
    Case("mesh-shard-not-a-mesh", lambda e: M.shard_arms(e.bb_state, "mesh"), IAE,
         "mesh: expected a 1-D jax.sharding.Mesh", BB),
    Case("mesh-shard-wrong-axis",
         lambda e: M.shard_arms(e.bb_state, jax.sharding.Mesh(np.array(jax.devices()), ("x",))),
         IAE, "mesh: expected a mesh with the one axis 'arms'", BB),
    Case("mesh-top-k-zero",
         lambda e: M.sharded_top_k(lambda key, offset, a: (a, a), e.mesh, 0), IAE,
         "k: expected a positive integer", ONES),
    Case("mesh-top-k-not-callable", lambda e: M.sharded_top_k(None, e.mesh, 1), IAE,
         "local_top_k: expected a callable", ONES),
    Case("mesh-constrain-bad-mesh", lambda e: M.constrain_arms(e.ones, 3), IAE,
         "mesh: expected a 1-D jax.sharding.Mesh", ONES),
]  # fmt: skip


def test_case_ids_are_unique():
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 60


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_is_named_and_changes_nothing(env, case):
    check_case(env, case)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_concurrent_saves_of_one_step_commit_exactly_one(tmp_path):
    """Three processes released together save step 7 with ``overwrite=False``: one commits,
    the other two get a ``CheckpointError`` naming the step, and the committed checkpoint is
    the winner's, with no temporary directory left behind."""
    context = multiprocessing.get_context("spawn")
    num_writers = 3
    barrier, results = context.Barrier(num_writers), context.Queue()
    writers = [
        context.Process(
            target=checkpoint_race.save_when_released,
            args=(str(tmp_path), 7, writer, barrier, results),
        )
        for writer in range(num_writers)
    ]
    for process in writers:
        process.start()
    try:
        outcomes = sorted(results.get(timeout=100) for _ in writers)
    finally:
        for process in writers:
            process.join(timeout=30)
    winners = [writer for writer, outcome, _ in outcomes if outcome == "ok"]
    assert len(winners) == 1, outcomes
    for writer, outcome, message in outcomes:
        if writer != winners[0]:
            assert outcome == "CheckpointError", outcomes
            assert message.startswith("step: expected a step not yet saved"), message
            assert "got 7" in message, message
    assert [path.name for path in tmp_path.iterdir()] == ["step_00000007"]
    like = checkpoint_race.Written(np.zeros(16, np.int32))
    state, metadata = C.restore_checkpoint(tmp_path, like)
    assert metadata["step"] == 7
    np.testing.assert_array_equal(state.writer, np.full(16, winners[0]))


# ------------------------------------------------------------------ documented results


@pytest.mark.timeout(60)
def test_the_reported_hang_is_refused_at_update_and_survived_at_sample(env):
    """The reproducer: a weight of 1e39 (float32 inf) is refused by ``update``; the state it
    would have built, made by hand, samples and returns, never selecting the broken arm."""
    bb, state = env.bb, env.bb.init(100)
    with pytest.raises(InvalidArgumentError, match="weights: expected finite values >= 0"):
        bb.update(state, np.array([1]), np.array([1.0]), np.array([1e39]))
    broken = state._replace(alpha=state.alpha.at[1].set(jnp.inf))
    chosen = np.asarray(bb.sample(KEY, broken, 3).arms)
    assert 1 not in chosen and np.all(chosen >= 0)


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_arms_outside_the_shape_domain_are_never_selected(env):
    """Hand-built counts that are NaN, infinite, zero, negative, subnormal or above 1e38: the
    sampler returns and selects only the healthy arms; with none, the slots are empty."""
    bad = [np.nan, np.inf, -np.inf, 0.0, -2.0, -0.5, 1e-40, 3e38]
    alpha = jnp.asarray(bad + [2.0, 5.0], jnp.float32)
    state = env.bb_state._replace(alpha=alpha)
    selection = env.bb.sample(KEY, state, 4)
    assert np.asarray(selection.arms).tolist()[2:] == [-1, -1]
    assert sorted(np.asarray(selection.arms).tolist()[:2]) == [8, 9]
    batch = env.bb.sample_batch(KEY, state, 2, 3)
    assert set(np.asarray(batch.arms).ravel().tolist()) <= {8, 9}
    hopeless = env.bb_state._replace(beta=jnp.full(10, jnp.nan, jnp.float32))
    empty = env.bb.sample(KEY, hopeless, 2)
    assert np.asarray(empty.arms).tolist() == [-1, -1]
    assert np.all(np.asarray(empty.scores) == -np.inf)


@pytest.mark.timeout(60)
def test_retry_loop_gives_up_after_max_attempts():
    """The retry kernel on shapes whose proposals always reject (NaN, inf, 3e38 overflows the
    acceptance test): without the attempt counter this never returns; with it, NaN logits."""
    alpha = jnp.asarray([jnp.nan, jnp.inf, 3e38, 2.0], jnp.float32)
    beta = jnp.ones(4, jnp.float32)
    counters = jnp.arange(4, dtype=jnp.uint32)
    shapes = R._shapes(alpha, beta)
    index = jnp.arange(4, dtype=jnp.int32)
    logits = np.asarray(R._retry_chunk(R.key_words(KEY), counters, alpha, beta, shapes, index))
    assert np.all(np.isnan(logits[:3])) and np.isfinite(logits[3])


def test_legacy_keys_are_accepted(env):
    legacy = jax.random.PRNGKey(3)
    assert np.asarray(env.bb.sample(legacy, env.bb_state, 2).arms).shape == (2,)
    batch = env.probit.sample_batch(legacy, env.probit_state, env.ids, 1, 2)
    assert np.asarray(batch.arms).shape == (2, 1)
    assert np.asarray(D.sample_delays(legacy, env.distribution, 3)).shape == (3,)
    assert np.asarray(R.beta_logits(legacy, env.ones, env.ones)).shape == (4,)


def test_otf_estimate_singular_gram_falls_back_to_the_pseudo_inverse():
    """``V`` singular (rank 1, regularization 0): ``V^+ b``, the minimum-norm solution, in
    place of Cholesky's NaN; a positive definite ``V`` still goes through Cholesky."""
    rows = np.array([[1.0, 2.0], [2.0, 4.0]])
    gram, moment = D.otf_statistics(rows, np.array([1.0, 0.0]), np.ones(2), 0.0)
    estimate = np.asarray(D.otf_estimate(gram, moment))
    expected = np.linalg.pinv(np.asarray(gram, np.float64)) @ np.asarray(moment, np.float64)
    np.testing.assert_allclose(estimate, expected, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(gram) @ estimate, moment, rtol=1e-4)  # consistent
    regular = np.array([[4.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(
        np.asarray(D.otf_estimate(regular, np.array([1.0, 2.0]))),
        np.linalg.solve(regular, [1.0, 2.0]),
        rtol=1e-5,
    )
