"""The Deep PQR experiment on a tiny config: runner round trip, shapes, metric definitions."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import EXPERIMENTS, deep_pqr
from prime_science.choice import nfxp
from prime_science.choice.deep_pqr import DeepPQRConfig
from prime_science.core.errors import InvalidArgumentError
from prime_science.core.experiment import check_experiment
from prime_science.sim.bus_engine import SU_JUDD

pytestmark = pytest.mark.slow  # runs a whole experiment (or its fixture does)

TINY = deep_pqr.Config(
    sample_sizes=(1_000,),
    test_agents=50,
    pqr=DeepPQRConfig(batch_size=50, max_epochs=6, max_q_epochs=6),
    su_judd_datasets=1,
    bus_design=SU_JUDD._replace(num_states=90, num_buses=20, num_months=60),
)
SEEDS = 2


@pytest.fixture(scope="module")
def outcome(instrumented_run):
    return instrumented_run(deep_pqr, TINY, SEEDS)


def test_module_shape_and_configs():
    assert check_experiment(deep_pqr) is deep_pqr
    for config in (deep_pqr.Config.quick(), deep_pqr.Config.full()):
        hash(config)
        assert all(n % config.steps_per_agent == 0 for n in config.sample_sizes)
    assert deep_pqr in EXPERIMENTS


def test_compiles_once_and_result_shapes(outcome):
    _, traces, results, _ = outcome
    assert len(traces) == 1
    sizes = len(TINY.sample_sizes)
    assert results.ours.keep_coef.shape == (SEEDS, sizes, 3)
    assert results.ours.reward_rmse.shape == (SEEDS, sizes)
    assert results.author.keep_coef.shape == (SEEDS, 3)
    assert results.true_test_loglik.shape == (SEEDS,)
    assert np.all(np.isfinite(np.asarray(results.ours.reward_rmse)))
    assert results.su_judd.pqr_keep.shape == (SEEDS, 1, 2)
    assert results.su_judd.panels.state.shape == (SEEDS, 1, 20 * 60)
    nfxp_params = deep_pqr.nfxp_estimates(results.su_judd.panels, TINY)
    assert nfxp_params.shape == (SEEDS, 1, 2) and nfxp_params.dtype == np.float64
    # the oracle: NFXP fitted eagerly, in float64, on the panel run returned
    with jax.enable_x64(True):
        panel = jax.tree.map(lambda x: jnp.asarray(x[0, 0]), results.su_judd.panels)
        expected = nfxp.estimate_bus(
            panel,
            num_states=TINY.bus_design.num_states,
            discount=TINY.bus_design.discount,
            num_increments=len(TINY.bus_design.increment_probs),
        ).params
    np.testing.assert_allclose(nfxp_params[0, 0], expected, rtol=1e-8)
    # the networks run in float32
    assert results.ours.keep_coef.dtype == np.float32
    # the truth's Q(., replace) is the same for every seed (one behaviour policy)
    np.testing.assert_allclose(results.true_anchor_q[0], results.true_anchor_q[1])


def test_results_file_metrics_targets_and_plots(outcome):
    record, _, _, folder = outcome
    saved = json.loads((folder / "results.json").read_text())
    assert saved["metrics"].keys() == record["metrics"].keys()
    assert {t["metric"] for t in record["targets"]} <= set(record["metrics"])
    assert sorted(record["plots"]) == [
        "keep_reward_coefficients.png",
        "reward_error.png",
        "su_judd_pqr_vs_nfxp.png",
    ]
    for plot in record["plots"]:
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = {name: m["mean"] for name, m in record["metrics"].items()}
    for size in TINY.sample_sizes:
        assert metrics[f"reward_rmse_{size}"] >= 0
        assert metrics[f"slope_error_{size}"] >= 0
    assert metrics["slope_error_largest"] == metrics["slope_error_1000"]
    assert metrics["su_judd_nfxp_rmse"] >= 0 and metrics["su_judd_pqr_rmse"] >= 0
    assert metrics["su_judd_abs_gap_intercept"] >= 0


def _results(coef, intercept, loglik=-0.4, q=29.0):
    sizes = len(TINY.sample_sizes)
    one = deep_pqr.SizeResults(
        keep_coef=jnp.asarray(coef, jnp.float32),
        keep_intercept=jnp.asarray(intercept),
        anchor_intercept=jnp.asarray(0.0),
        reward_rmse=jnp.asarray(0.5),
        test_loglik=jnp.asarray(loglik),
        anchor_q_mean=jnp.asarray(q),
        epochs_policy=jnp.asarray(3),
        epochs_anchor_q=jnp.asarray(4),
    )
    ours = jax.tree.map(lambda x: jnp.stack([x] * sizes), one)
    return deep_pqr.Results(ours, one, jnp.asarray(-0.39), jnp.asarray(29.5), None)


def test_summarize_uses_the_correct_sign():
    """The truth is (-theta, b): a perfect fit scores 0, the author's +theta sign scores 2."""
    perfect = deep_pqr.summarize(_results([-1.0, 0.0, 0.0], 5.0), TINY)
    assert perfect["slope_error_1000"] == pytest.approx(0.0)
    assert perfect["intercept_error_1000"] == pytest.approx(0.0)
    assert perfect["keep_noise_coef_1000"] == pytest.approx(0.0)
    assert perfect["loglik_gap_1000"] == pytest.approx(0.01, abs=1e-6)
    assert perfect["anchor_q_error_1000"] == pytest.approx(-0.5)
    assert perfect["author_minus_ours_reward_rmse"] == pytest.approx(0.0)
    assert not any(name.startswith("su_judd") for name in perfect)
    flipped = deep_pqr.summarize(_results([1.0, 0.3, -0.4], 4.0), TINY)
    assert flipped["slope_error_1000"] == pytest.approx(2.0)
    assert flipped["keep_noise_coef_1000"] == pytest.approx(0.4)
    assert flipped["intercept_error_1000"] == pytest.approx(1.0)


def test_regression_matches_numpy_lstsq():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(200, 3)).astype(np.float32)
    targets = (states @ np.array([-1.0, 0.5, 0.0]) + 5.0 + 0.1 * rng.normal(size=200)).astype(
        np.float32
    )
    rows = rng.random(200) < 0.6
    coef, intercept = deep_pqr._regression(jnp.asarray(states), jnp.asarray(targets), rows)
    design = np.column_stack([states[rows], np.ones(rows.sum())]).astype(np.float64)
    expected = np.linalg.lstsq(design, targets[rows].astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(coef, expected[:3], atol=1e-4)
    np.testing.assert_allclose(intercept, expected[3], atol=1e-4)


def test_run_has_no_callback():
    """run stays in float32 (see the module docstring for why NFXP runs in summarize)."""
    jaxpr = jax.make_jaxpr(lambda key: deep_pqr.run(key, TINY))(jax.random.key(0))
    assert "callback" not in str(jaxpr)


def test_sample_sizes_must_be_whole_agents():
    with pytest.raises(InvalidArgumentError, match="config.sample_sizes"):
        deep_pqr.run(jax.random.key(0), TINY._replace(sample_sizes=(505,)))
