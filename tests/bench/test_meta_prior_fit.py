"""The meta-prior fit benchmark runs end to end on a small problem and both fits agree."""

from prime_science.bench.meta_prior_fit import meta_prior_fit_timings


def test_meta_prior_fit_timings_small():
    out = meta_prior_fit_timings(20_000, 5, svi_steps=600, repeats=2)
    assert (out["num_weights"], out["num_groups"], out["svi_steps"]) == (20_000, 5, 600)
    for fit in ("moments", "svi"):
        record = out[fit]
        assert record["compile_seconds"] > 0
        assert 0 < record["min_seconds"] <= record["median_seconds"]
        assert record["repeats"] >= 1
        # 4,000 weights per group: ML and moments agree far inside their s.e. (~0.01)
        assert record["max_abs_scale_gap"] < 0.01
