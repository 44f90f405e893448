"""Shared fixtures."""

import types
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

from prime_science.core.experiment import Target
from prime_science.runner import run_experiment


@pytest.fixture(scope="session")
def instrumented_run(tmp_path_factory):
    """``run(module, config, seeds) -> (record, traces, results, folder)``: the experiment through
    the runner, with ``run`` recording every trace (one per compilation) and ``plot`` keeping
    the seed-stacked results it was given."""

    def run(module, config, seeds):
        traces, kept = [], []

        def counting_run(key, config):
            traces.append(config)
            return module.run(key, config)

        def keeping_plot(results, config, out_dir):
            kept.append(results)
            return module.plot(results, config, out_dir)

        experiment = types.SimpleNamespace(
            **{name: getattr(module, name) for name in module.__all__}, __doc__=module.__doc__
        )
        experiment.run, experiment.plot = counting_run, keeping_plot
        out_dir = tmp_path_factory.mktemp("results")
        record = run_experiment(
            experiment, seeds=seeds, config=config, out_dir=out_dir, progress=False
        )
        return record, traces, kept[0], out_dir / module.NAME

    return run


class FakeConfig(NamedTuple):
    size: int = 4
    shift: float = 1.0

    @classmethod
    def quick(cls):
        return cls()

    @classmethod
    def full(cls):
        return cls(size=8)


def _fake_run(key, config):
    return {"x": config.shift + jax.random.normal(key, (config.size,))}


def _fake_plot(results, config, out_dir):
    figure = Figure()
    figure.subplots().plot(np.asarray(results["x"]).T)
    path = Path(out_dir) / "x.png"
    figure.savefig(path)
    return [path]


@pytest.fixture
def make_fake():
    """``make_fake(name="fake")``: a new tiny experiment (``x = shift + N(0, 1)`` of ``size``
    draws; metric ``mean_x``; one target that passes, one that fails; one plot ``x.png``),
    compiled and run in well under a second."""

    def make(name="fake"):
        return types.SimpleNamespace(
            __doc__="A fake experiment for the runner tests.\n\nMore words.",
            NAME=name,
            Config=FakeConfig,
            run=_fake_run,
            summarize=lambda results, config: {"mean_x": float(np.mean(results["x"]))},
            targets=[
                Target("mean_x", "<", 10.0, "directional: small", "test"),
                Target("mean_x", ">", 10.0, "directional: large", "test"),
            ],
            plot=_fake_plot,
        )

    return make
