"""The retention experiment: its contract, and one run through the runner on a small config."""

import json

import jax
import numpy as np
import pytest

from experiments import retention as experiment
from prime_science.core.experiment import check_experiment
from prime_science.datasets.retention import load_retention
from prime_science.membership import retention
from prime_science.runner import describe

SMALL = experiment.Config(num_warmup=150, num_samples=200)
SEEDS = 2
FORBIDDEN = ("SCIENCE", "issue", "shared/")


def test_keeps_the_experiment_contract():
    assert check_experiment(experiment) is experiment
    for config in (experiment.Config.quick(), experiment.Config.full()):
        hash(config)
        assert config.precision == "float64"
    assert experiment.DATASETS == ("retention",)
    for name in ("METRIC_LABELS", "NA_REASONS", "DATASETS"):
        assert name in experiment.__all__
    for target in experiment.targets:
        assert target.metric in experiment.METRIC_LABELS, target.metric
    for key, label in experiment.METRIC_LABELS.items():
        assert " " in label and label != key, key


def test_report_text_cites_what_the_repository_holds():
    texts = [describe(experiment), experiment.__doc__]
    texts += [text for target in experiment.targets for text in (target.source, target.description)]
    for text in texts:
        assert text.strip()
        for word in FORBIDDEN:
            assert word not in text, text


@pytest.fixture(scope="module")
def outcome(instrumented_run):
    return instrumented_run(experiment, SMALL, SEEDS)


@pytest.mark.slow  # traces and compiles two NUTS kernels (~30-60 s on 2 cores)
def test_one_trace_and_files(outcome):
    record, traces, _, folder = outcome
    assert len(traces) == 1
    assert json.loads((folder / "results.json").read_text())["status"] == "ok"
    assert sorted(record["plots"]) == ["retention_rates.png", "survivors.png"]
    for plot in record["plots"]:
        assert (folder / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_labels_are_exactly_the_metrics(outcome):
    record, *_ = outcome
    assert set(record["metrics"]) == set(experiment.METRIC_LABELS)


@pytest.mark.slow
def test_published_projection_and_retention_targets_pass(outcome):
    record, *_ = outcome
    checked = [t for t in record["targets"] if not t["metric"].endswith("_coverage")]
    assert len(checked) == 8 and all(t["passed"] for t in checked), checked


@pytest.mark.slow
def test_fits_equal_the_library_and_nuts_differs_between_seeds(outcome):
    _, _, results, _ = outcome
    data = load_retention().survivors
    with jax.enable_x64(True):
        for model in retention.MODELS:
            fit_results = results.models[model]
            for i, cohort in enumerate(SMALL.cohorts):
                fit = retention.fit_retention(model, data[cohort], SMALL.calibration_years)
                for seed in range(SEEDS):  # the data do not depend on the seed
                    np.testing.assert_allclose(fit_results.params[seed, i], fit.params, rtol=1e-8)
                    assert fit_results.gradient_norm[seed, i] < 1e-6
            predicted = np.asarray(fit_results.posterior_predicted)
            assert predicted.shape == (SEEDS, len(SMALL.cohorts), SMALL.num_samples, 13)
            assert not np.array_equal(predicted[0], predicted[1])
            observed = np.stack([data[c] for c in SMALL.cohorts])[:, None, :8]
            np.testing.assert_array_equal(
                predicted[0, :, :, :8], np.broadcast_to(observed, (2, SMALL.num_samples, 8))
            )
            assert np.all(np.asarray(fit_results.num_divergent) == 0)
