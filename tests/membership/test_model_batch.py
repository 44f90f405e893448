"""``model.solve_batch`` against ``model.solve``: the same solves (values, policies, iteration
counts) for a batch of utility parameters and prices that share their transitions, whatever the
number of lanes and the refill period; its named errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prime_science.core.errors import InvalidArgumentError
from prime_science.membership import model

LEVELS, LOCK = 2, 2
SMALL = dict(
    ship_target=[[0.3, 0.8], [0.1, 0.6]],
    video_target=[[0.2, 0.7], [0.1, 0.4]],
    content_lift=0.5,
    benefit_shift=0.2,
    annual_price=40.0,
)


def _draws(count, seed=0):
    rng = np.random.default_rng(seed)
    base = model.true_params(jnp.float64, **SMALL)
    theta = np.array([float(getattr(base, name)) for name in model.STRUCTURAL])
    fields = dict(zip(model.STRUCTURAL, (theta * rng.uniform(0.7, 1.3, (count, 6))).T, strict=True))
    fields["annual_price"] = rng.uniform(25.0, 60.0, count)
    fields["benefit_shift"] = rng.uniform(-0.2, 0.4, count)
    return base, {name: jnp.asarray(values) for name, values in fields.items()}


@pytest.mark.slow
@pytest.mark.parametrize(("segment", "lock", "lanes", "refill"), [(0, LOCK, 3, 2), (1, 0, 4, 1)])
def test_solve_batch_equals_solve_draw_by_draw(segment, lock, lanes, refill):
    with jax.enable_x64(True):
        base, fields = _draws(11)
        batch = jax.jit(
            lambda f: model.solve_batch(
                base._replace(**f),
                segment,
                levels=LEVELS,
                lock_months=lock,
                tol=1e-11,
                lanes=lanes,
                refill_every=refill,
            )
        )(fields)
        single = jax.jit(
            jax.vmap(
                lambda f: model.solve(
                    base._replace(**f), segment, levels=LEVELS, lock_months=lock, tol=1e-11
                )
            )
        )(fields)
        batch, single = jax.device_get((batch, single))
    np.testing.assert_array_equal(batch.iterations, single.iterations)
    assert np.all(batch.residual <= 1e-11)
    np.testing.assert_allclose(batch.value, single.value, rtol=0, atol=1e-10)
    np.testing.assert_allclose(batch.choice_values, single.choice_values, rtol=0, atol=1e-10)
    assert np.array_equal(np.isfinite(batch.log_policy), np.isfinite(single.log_policy))
    np.testing.assert_allclose(
        np.exp(batch.log_policy), np.exp(single.log_policy), rtol=0, atol=1e-10
    )


@pytest.mark.slow
def test_solve_batch_without_a_batch_axis_is_one_solve():
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64, **SMALL)
        one = model.solve_batch(params, 1, levels=LEVELS, lock_months=LOCK, tol=1e-11)
        reference = model.solve(params, 1, levels=LEVELS, lock_months=LOCK, tol=1e-11)
        one, reference = jax.device_get((one, reference))
    assert one.value.shape == reference.value.shape
    assert int(one.iterations) == int(reference.iterations)
    np.testing.assert_allclose(one.value, reference.value, rtol=0, atol=1e-10)


def test_logsumexp3_and_log_match_numpy():
    with jax.enable_x64(True):
        x = np.concatenate([np.linspace(1.0, 3.999, 100_001), [np.sqrt(2.0), 2 * np.sqrt(2.0)]])
        np.testing.assert_allclose(model._log_1_to_4(jnp.asarray(x)), np.log(x), rtol=0, atol=5e-16)
        rng = np.random.default_rng(0)
        a, b, c = rng.normal(0.0, 5.0, (3, 10_000))
        expected = np.logaddexp(np.logaddexp(a, b), c)
        got = model._logsumexp3(jnp.asarray(a), jnp.asarray(b), jnp.asarray(c))
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-14)


def test_solve_batch_refuses_batched_transitions_by_name():
    with jax.enable_x64(True):
        params = model.true_params(jnp.float64, **SMALL)
        with pytest.raises(InvalidArgumentError, match="params.discount"):
            model.solve_batch(params._replace(discount=jnp.asarray([0.9, 0.95])), levels=LEVELS)
        with pytest.raises(InvalidArgumentError, match="batch size"):
            model.solve_batch(
                params._replace(
                    intercept=jnp.zeros(3), kappa=jnp.ones(2), annual_price=jnp.full(3, 40.0)
                ),
                levels=LEVELS,
                lock_months=LOCK,
            )
