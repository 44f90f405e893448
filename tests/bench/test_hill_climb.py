"""The hill_climb benchmark suite: its numpy baseline is the same search, and it runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.bench import hill_climb
from prime_science.bench.driver import Suite, SuiteConfig, run_suite
from prime_science.layouts import design, search


@pytest.mark.slow
def test_numpy_hill_climb_is_the_same_search():
    """Scores its layout correctly, never beats the exact maximum, reaches it with many
    restarts and steps, and matches the JAX climb's quality on average at S = 1, K = 5."""
    space = design.layout_space((4, 3, 5))
    rng = np.random.default_rng(0)
    for seed in range(5):
        weights = np.asarray(jax.random.normal(jax.random.key(seed), (space.num_features,)))
        layout, score = hill_climb.numpy_hill_climb(space, weights, rng, restarts=32, steps=24)
        np.testing.assert_allclose(design.score(space, weights, layout), score, rtol=1e-5)
        exact = search.exhaustive_search(space, jnp.asarray(weights)).score
        np.testing.assert_allclose(score, exact, rtol=1e-5)

    space = design.layout_space((8, 8, 8))
    weights = jax.random.normal(jax.random.key(9), (200, space.num_features))
    exact = jax.jit(jax.vmap(lambda w: search.exhaustive_search(space, w).score))(weights)
    found = jax.jit(
        jax.vmap(lambda k, w: search.hill_climb(k, space, w, restarts=1, steps=5).score)
    )(jax.random.split(jax.random.key(0), 200), weights)
    ours = float(jnp.mean(exact - found))
    numpy_gaps = [
        float(exact[i]) - hill_climb.numpy_hill_climb(space, np.asarray(w), rng, 1, 5)[1]
        for i, w in enumerate(weights)
    ]
    assert min(np.mean(numpy_gaps), ours) > 0.0
    # the same algorithm: mean gaps agree within ~4 s.e. of their difference
    se = np.std(numpy_gaps, ddof=1) / np.sqrt(200) * np.sqrt(2)
    assert abs(np.mean(numpy_gaps) - ours) < 4 * se


@pytest.mark.slow
def test_suite_runs_on_a_small_space():
    suite = hill_climb.hill_climb_suite()
    assert isinstance(suite, Suite) and suite.name == "hill_climb"
    config = SuiteConfig(sizes=(3,), batches=(4,), repeats=2, max_seconds=20.0)
    results = run_suite(suite, config)
    rows = {(r["kernel"], r["batch"]): r for r in results["rows"]}
    assert set(rows) == {("ours", 4), ("numpy", 4)}
    assert all(r["status"] == "ok" and r["median_seconds"] > 0 for r in rows.values())
    assert rows["ours", 4]["speedup_vs_numpy"] > 0
    assert results["posteriors"]["3"]["num_layouts"] == 1000
