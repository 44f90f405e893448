"""The timing helpers: median, minimum and IQR without the warm-up, repeats cut to the budget,
and a compiled executable with its compile time."""

import jax.numpy as jnp
import numpy as np

from prime_science.bench.timing import Timing, compile_jitted, time_calls


class _FakeClock:
    """A clock that each call of ``fn`` advances by the next of ``durations``."""

    def __init__(self, durations):
        self.now = 0.0
        self.durations = iter(durations)

    def __call__(self):
        return self.now

    def fn(self):
        self.now += next(self.durations)
        return np.zeros(1)


def test_time_calls_reports_median_min_and_iqr_excluding_warmup():
    clock = _FakeClock([100.0, 3.0, 1.0, 2.0, 5.0, 4.0])
    timing = time_calls(clock.fn, repeats=5, clock=clock)
    assert timing == Timing(3.0, 1.0, 2.0, 5, 100.0)


def test_time_calls_shrinks_repeats_to_the_budget():
    clock = _FakeClock([2.0] * 10)
    timing = time_calls(clock.fn, repeats=7, budget_seconds=7.0, clock=clock)
    assert timing.repeats == 2
    assert timing.median_seconds == 2.0
    clock = _FakeClock([50.0] * 10)
    timing = time_calls(clock.fn, repeats=7, budget_seconds=7.0, clock=clock)
    assert timing.repeats == 1
    clock = _FakeClock([1.0] * 10)
    timing = time_calls(
        clock.fn, 7, budget_seconds=3.0, warmup=False, estimate_seconds=1.0, clock=clock
    )
    assert timing.repeats == 3 and timing.first_call_seconds is None


def test_compile_jitted_returns_a_working_executable():
    compiled, seconds = compile_jitted(lambda x: 2 * x, jnp.arange(3.0))
    assert seconds > 0
    np.testing.assert_array_equal(compiled(jnp.arange(3.0)), [0.0, 2.0, 4.0])
