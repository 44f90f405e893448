"""Shared fixtures."""

import types

import pytest

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
