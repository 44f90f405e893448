"""What the report shows of every experiment is in words and cites what a reader has.

Static checks for all experiments (labels, NaN reasons, data sets, targets' text); for the two
cheap ones, ``METRIC_LABELS`` against the keys that ``summarize`` (and ``pooled``) return.
"""

from pathlib import Path

import jax
import pytest

from experiments import layout_search, layouts
from prime_science import datasets
from prime_science.cli import known_experiments
from prime_science.runner import describe

EXPERIMENTS = sorted(known_experiments().items())
FORBIDDEN = ("SCIENCE", "issue", "shared/")


@pytest.fixture(params=[name for name, _ in EXPERIMENTS])
def experiment(request):
    return known_experiments()[request.param]


def test_every_experiment_exports_labels_reasons_and_data_sets(experiment):
    for name in ("METRIC_LABELS", "NA_REASONS", "DATASETS"):
        assert name in experiment.__all__, name
    assert isinstance(experiment.DATASETS, tuple)


def test_labels_are_words_not_the_keys(experiment):
    for key, label in experiment.METRIC_LABELS.items():
        assert label.strip() and label != key, key
        assert " " in label, (key, label)


def test_every_target_metric_has_a_label(experiment):
    for target in experiment.targets:
        assert target.metric in experiment.METRIC_LABELS, target.metric


def test_na_reasons_name_labelled_metrics(experiment):
    for key, reason in experiment.NA_REASONS.items():
        assert key in experiment.METRIC_LABELS, key
        assert " " in reason.strip(), key


def test_report_text_cites_what_the_repository_holds(experiment):
    texts = [describe(experiment)]
    texts += [text for target in experiment.targets for text in (target.source, target.description)]
    for text in texts:
        assert text.strip()
        for word in FORBIDDEN:
            assert word not in text, (experiment.NAME, text)
    assert "SCIENCE" not in (experiment.__doc__ or "")
    assert "shared/" not in (experiment.__doc__ or "")


READERS = {"rust_bus": ("rust_bus",), "retention": ("retention",), "ope_obd": ("obd",)}
"""The experiments that read a packaged data set, and the sets they read."""


def test_data_sets_are_declared_and_shipped_with_their_provenance():
    data_sets = {name: experiment.DATASETS for name, experiment in EXPERIMENTS}
    for name, declared in READERS.items():
        assert data_sets.pop(name) == declared
        for data_set in declared:
            folder = Path(datasets.__file__).parent / "data" / data_set
            assert (folder / "PROVENANCE.md").is_file()
    assert set(data_sets.values()) == {()}


def _summary_keys(module, config, seeds=2):
    """The keys of ``summarize`` of seed 0 and of ``pooled`` (if defined) over ``seeds`` seeds."""
    keys = jax.random.split(jax.random.key(0), seeds)
    results = jax.vmap(lambda key: module.run(key, config))(keys)
    names = set(module.summarize(jax.tree.map(lambda x: x[0], results), config))
    if hasattr(module, "pooled"):
        names |= set(module.pooled(results, config))
    return names


@pytest.mark.slow
def test_layout_search_labels_are_exactly_its_metrics():
    # quick()'s restarts and steps (the labels are built for them), a few worlds
    config = layout_search.Config(num_worlds=4)
    assert _summary_keys(layout_search, config) == set(layout_search.METRIC_LABELS)


@pytest.mark.slow
def test_layouts_labels_are_exactly_its_metrics():
    # every policy and every live policy (the labels cover full()), a tiny horizon
    config = layouts.Config(
        num_rounds=12,
        batch_size=8,
        restarts=2,
        steps=2,
        crossing_window=3,
        policies=layouts.POLICIES,
        live_policies=layouts.LIVE_POLICIES,
        live_days=1,
        live_batches_per_day=2,
        ab_days=6_600.0,
    )
    assert _summary_keys(layouts, config) == set(layouts.METRIC_LABELS)
