"""Delayed feedback: the ledger against a dict oracle, strategies, DFM, OTF, delay models.

Statistical tests use fixed seeds; tolerances are 4 standard errors unless said otherwise
(failure budget about 6e-5 per compared quantity, under 1e-3 for the whole file).
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

from prime_science.bandits import delayed
from prime_science.bandits.beta_bernoulli import beta_bernoulli
from prime_science.core.errors import InvalidArgumentError

F32 = np.float32


# ---------------------------------------------------------------- ledger vs dict oracle


class Oracle:
    """The ledger's contract written with dicts, in the same float32 arithmetic."""

    def __init__(self, capacity):
        self.capacity = capacity
        self.live = {}  # id -> [item, shown_at, label_at or None]
        self.expired_positive = self.expired_negative = 0
        self.duplicates = self.recorded = 0
        self.final_by_item = {}  # item -> [positives, negatives]

    def collides(self, ids):
        slots = [i % self.capacity for i in ids]
        live_slots = {i % self.capacity for i in self.live}
        return len(set(slots)) < len(slots) or bool(live_slots & set(slots))

    def record(self, ids, items, times):
        for i, item, t in zip(ids, items, times, strict=True):
            self.live[i] = [item, F32(t), None]
        self.recorded += len(ids)

    def label(self, ids, times):
        first_in_batch = {}
        for i, t in zip(ids, times, strict=True):
            if self.live[i][2] is not None:
                self.duplicates += 1
            elif i in first_in_batch:
                self.duplicates += 1
                first_in_batch[i] = min(first_in_batch[i], F32(t))
            else:
                first_in_batch[i] = F32(t)
        for i, t in first_in_batch.items():
            self.live[i][2] = t

    def credited(self, shown, label_at, now, window):
        return label_at is not None and label_at <= now and label_at - shown <= window

    def expire(self, now, window):
        for i in [i for i, (_, shown, _) in self.live.items() if now - shown >= window]:
            item, shown, label_at = self.live.pop(i)
            positive = self.credited(shown, label_at, F32(np.inf), window)
            self.expired_positive += positive
            self.expired_negative += not positive
            counts = self.final_by_item.setdefault(item, [0, 0])
            counts[0 if positive else 1] += 1

    def sets(self, now, window):
        positive, negative, pending = set(), set(), set()
        for i, (_, shown, label_at) in self.live.items():
            if self.credited(shown, label_at, now, window):
                positive.add(i)
            elif now - shown >= window:
                negative.add(i)
            else:
                pending.add(i)
        return positive, negative, pending


def _ids_in(mask, state):
    return set(np.asarray(state.impression_id)[np.asarray(mask)].tolist())


def _item_counts(rows, num_items):
    counts = np.zeros((num_items, 2))
    w, y, item = (np.asarray(x) for x in (rows.weight, rows.label, rows.item))
    np.add.at(counts, (item, 0), w * y)
    np.add.at(counts, (item, 1), w * (1 - y))
    return counts


def _run_scenario(rng, num_items=4):
    capacity = int(rng.choice([8, 16]))
    window = F32(rng.uniform(2.0, 8.0))
    state = delayed.ledger_init(capacity)
    oracle = Oracle(capacity)
    clock, next_id, queue = F32(0.0), 0, []  # queue of (arrival, id, label time)
    final_counts = np.zeros((num_items, 2))  # a model fed final rows once, on expiry
    for _ in range(8):
        clock = F32(clock + F32(rng.exponential(1.5)))
        size = int(rng.integers(0, 4))
        ids = next_id + np.cumsum(rng.integers(1, 3, size))
        next_id = int(ids[-1]) if size else next_id
        items = rng.integers(0, num_items, size)
        shown = (clock - rng.uniform(0.0, 0.5, size)).astype(F32)
        if oracle.collides(ids.tolist()):
            with pytest.raises(InvalidArgumentError, match="impression_ids: expected"):
                delayed.record_impressions(state, ids, items, np.zeros(size, int), shown)
        else:
            state = delayed.record_impressions(state, ids, items, np.zeros(size, int), shown)
            oracle.record(ids.tolist(), items.tolist(), shown)
            for i, t in zip(ids.tolist(), shown, strict=True):
                if rng.random() < 0.6:  # converts; 1-3 copies of the label (duplicates)
                    event = F32(t + F32(rng.exponential(3.0)))
                    for _ in range(int(rng.integers(1, 4))):
                        copy = F32(event + F32(rng.exponential(0.3)) * (rng.random() < 0.5))
                        queue.append((copy + rng.exponential(0.5), i, copy))
        arrived = [q for q in queue if q[0] <= clock]
        queue = [q for q in queue if q[0] > clock]
        rng.shuffle(arrived)
        for batch in np.array_split(np.arange(len(arrived)), int(rng.integers(1, 3))):
            label_ids = np.array([arrived[j][1] for j in batch], np.int64)
            label_times = np.array([arrived[j][2] for j in batch], F32)
            live = np.asarray(delayed.contains(state, label_ids))
            assert live.tolist() == [i in oracle.live for i in label_ids.tolist()]
            if not live.all():  # late labels for expired impressions are unknown ids
                with pytest.raises(InvalidArgumentError, match="expected ids of live"):
                    delayed.record_labels(state, label_ids, label_times)
            state = delayed.record_labels(state, label_ids[live], label_times[live])
            oracle.label(label_ids[live].tolist(), label_times[live])
        if rng.random() < 0.5:
            state, expired = delayed.expire(state, clock, window)
            final_counts += _item_counts(delayed.naive(expired, clock, window), num_items)
            due = {i for i, v in oracle.live.items() if clock - v[1] >= window}
            assert _ids_in(expired.occupied, expired) == due
            oracle.expire(clock, window)
        view = delayed.ledger_view(state, clock, window)
        positive, negative, pending = oracle.sets(clock, window)
        assert _ids_in(view.positive, state) == positive
        assert _ids_in(view.negative, state) == negative
        assert _ids_in(view.pending, state) == pending
        info = state.info
        assert int(info.num_duplicate_labels) == oracle.duplicates
        assert int(info.num_expired_positive) == oracle.expired_positive
        assert int(info.num_expired_negative) == oracle.expired_negative
        live_count = int(np.sum(state.occupied))
        assert live_count == len(positive) + len(negative) + len(pending)
        assert int(info.num_recorded) == oracle.recorded
        assert oracle.recorded == live_count + oracle.expired_positive + oracle.expired_negative
        assert int(info.num_dropped_labels) == int(info.num_dropped_impressions) == 0
        # model = final rows + naive snapshot: every impression counted once, as the oracle
        counts = final_counts + _item_counts(delayed.naive(state, clock, window), num_items)
        expected = np.zeros((num_items, 2))
        for item, (pos, neg) in oracle.final_by_item.items():
            expected[item] += (pos, neg)
        for i, (item, _, _) in oracle.live.items():
            expected[item, 0 if i in positive else 1] += 1
        np.testing.assert_array_equal(counts, expected)
        assert counts.sum() == oracle.recorded


@pytest.mark.parametrize("chunk", range(4))
def test_ledger_matches_oracle_under_random_arrival_orders(chunk):
    """50 random streams per chunk (200 in all): out-of-order and duplicate labels, late
    labels after expiry, collisions; views, counters, conservation, and the per-item counts
    of a model fed final rows on expiry plus the naive snapshot all equal the oracle's."""
    for seed in range(50):
        _run_scenario(np.random.default_rng(1000 * chunk + seed))


def test_late_label_corrects_the_snapshot_not_the_model():
    """A Beta-Bernoulli posterior built as final + snapshot: a label that arrives after a
    'not yet' snapshot flips the row; it is never added on top of the earlier negative."""
    policy = beta_bernoulli(1.0, 1.0)
    final = policy.init(3)
    ledger = delayed.ledger_init(8)
    ledger = delayed.record_impressions(
        ledger, np.array([0, 1, 2]), np.array([0, 0, 1]), np.zeros(3, int), np.zeros(3)
    )

    def posterior(ledger, final, now):
        rows = delayed.naive(ledger, now, 24.0)
        return policy.update(final, rows.item, rows.label, rows.weight)

    before = posterior(ledger, final, 1.0)
    np.testing.assert_array_equal(before.alpha, [1, 1, 1])
    np.testing.assert_array_equal(before.beta, [3, 2, 1])
    ledger = delayed.record_labels(ledger, np.array([1, 1]), np.array([2.0, 2.5]))
    after = posterior(ledger, final, 3.0)
    np.testing.assert_array_equal(after.alpha, [2, 1, 1])
    np.testing.assert_array_equal(after.beta, [2, 2, 1])
    assert int(ledger.info.num_duplicate_labels) == 1
    ledger, expired = delayed.expire(ledger, 30.0, 24.0)
    final = policy.update(
        final, *(lambda r: (r.item, r.label, r.weight))(delayed.naive(expired, 30.0, 24.0))
    )
    np.testing.assert_array_equal(posterior(ledger, final, 31.0).alpha, after.alpha)
    np.testing.assert_array_equal(posterior(ledger, final, 31.0).beta, after.beta)
    assert int(np.sum(ledger.occupied)) == 0


def test_expiry_finalises_labels_by_the_window():
    ledger = delayed.ledger_init(4)
    ledger = delayed.record_impressions(
        ledger, np.array([0, 1, 2]), np.zeros(3, int), np.zeros(3, int), np.zeros(3)
    )
    ledger = delayed.record_labels(ledger, np.array([0, 1]), np.array([5.0, 15.0]))
    view = delayed.ledger_view(ledger, 20.0, 10.0)
    assert view.positive.tolist()[:3] == [True, False, False]
    assert view.negative.tolist()[:3] == [False, True, True]  # late label is not credited
    kept, expired = delayed.expire(ledger, 9.9, 10.0)
    assert int(kept.occupied.sum()) == 3 and int(expired.occupied.sum()) == 0
    kept, expired = delayed.expire(ledger, 10.0, 10.0)
    assert int(kept.occupied.sum()) == 0 and int(expired.occupied.sum()) == 3
    assert int(kept.info.num_expired_positive) == 1
    assert int(kept.info.num_expired_negative) == 2
    assert not bool(delayed.contains(kept, np.array([0]))[0])
    # the freed slot takes a new impression with a fresh label
    kept = delayed.record_impressions(kept, np.array([4]), np.array([1]), np.array([0]), [11.0])
    assert float(kept.label[0]) == 0 and np.isinf(float(kept.label_at[0]))


def test_wait_for_matured_uses_only_old_impressions():
    ledger = delayed.ledger_init(4)
    ledger = delayed.record_impressions(
        ledger, np.arange(4), np.arange(4), np.zeros(4, int), np.array([0.0, 0.0, 0.0, 5.0])
    )
    ledger = delayed.record_labels(ledger, np.array([0, 1, 3]), np.array([1.0, 3.0, 5.5]))
    rows = delayed.wait_for_matured(ledger, 6.0, 2.0)
    np.testing.assert_array_equal(rows.weight, [1, 1, 1, 0])
    np.testing.assert_array_equal(rows.label, [1, 0, 0, 0])
    np.testing.assert_array_equal(rows.time, [1, 2, 2, 0])
    np.testing.assert_array_equal(rows.impression_id, [0, 1, 2, -1])


def _filled_ledger():
    ledger = delayed.ledger_init(8)
    ledger = delayed.record_impressions(
        ledger, np.array([3, 4, 5]), np.array([0, 1, 2]), np.array([7, 7, 7]), [1.0, 2.0, 3.0]
    )
    return delayed.record_labels(ledger, np.array([3]), np.array([4.0]))


BAD_CALLS = [
    ("record_labels", ([99], [5.0]), "impression_ids: expected ids of live impressions"),
    ("record_labels", ([4], [1.5]), r"times: expected label times >= their impression"),
    ("record_labels", ([4], [np.nan]), "times: expected finite times"),
    ("record_labels", ([4, 5], [5.0]), r"times: expected the same length as impression_ids"),
    ("record_labels", ([4.0], [5.0]), "impression_ids: expected integer ids"),
    ("record_impressions", ([6], [0], [0], [np.nan]), "times: expected finite times"),
    ("record_impressions", ([6], [0], [0], [np.inf]), "times: expected finite times"),
    ("record_impressions", ([6, 7], [0], [0, 0], [1.0, 1.0]), "items: expected the same len"),
    ("record_impressions", ([6, 6], [0, 0], [0, 0], [1, 1.0]), "expected distinct ids"),
    ("record_impressions", ([6, 14], [0, 0], [0, 0], [1, 1.0]), "expected ids with distinct"),
    ("record_impressions", ([4], [0], [0], [1.0]), "expected ids not yet recorded"),
    ("record_impressions", ([11], [0], [0], [1.0]), "slot .* is free.*ledger full"),
    ("record_impressions", ([-1], [0], [0], [1.0]), r"impression_ids: expected ids in \[0"),
    ("record_impressions", ([6], [-2], [0], [1.0]), r"items: expected ids in \[0"),
    ("expire", (np.nan, 1.0), "now: expected a finite number"),
    ("expire", (5.0, 0.0), "window: expected a number > 0"),
    ("ledger_view", (5.0, -1.0), "window: expected a number > 0"),
]


@pytest.mark.parametrize("name, args, message", BAD_CALLS)
def test_bad_inputs_raise_named_errors_and_leave_state_unchanged(name, args, message):
    ledger = _filled_ledger()
    before = jax.tree_util.tree_map(np.asarray, ledger)
    args = tuple(np.asarray(a) if np.ndim(a) else a for a in args)
    with pytest.raises(InvalidArgumentError, match=message):
        getattr(delayed, name)(ledger, *args)
    chex.assert_trees_all_equal(jax.tree_util.tree_map(np.asarray, ledger), before)


def test_ledger_init_rejects_bad_capacity():
    with pytest.raises(InvalidArgumentError, match="capacity: expected an integer"):
        delayed.ledger_init(0)


def test_under_jit_collisions_and_unknown_labels_are_dropped_and_counted():
    """No value checks inside jit, but nothing is corrupted either."""
    record = jax.jit(delayed.record_impressions)
    label = jax.jit(delayed.record_labels)
    ledger = _filled_ledger()
    ledger = record(
        ledger, jnp.array([11, 6, 14]), jnp.zeros(3, int), jnp.zeros(3, int), jnp.ones(3)
    )
    assert int(ledger.info.num_dropped_impressions) == 2  # 11 hits 3's slot; 14 hits 6's
    assert ledger.impression_id.tolist()[3] == 3 and ledger.impression_id.tolist()[6] == 6
    ledger = label(ledger, jnp.array([11, 4, 4]), jnp.array([9.0, 8.0, 7.0]))
    assert int(ledger.info.num_dropped_labels) == 1
    assert int(ledger.info.num_duplicate_labels) == 1
    assert float(ledger.label_at[3]) == 4.0  # slot of id 3 untouched by unknown id 11
    assert float(ledger.label_at[4]) == 7.0  # earliest of the batch


def test_jit_equals_eager_and_state_tree_is_stable():
    ids, items, ctx, times = jnp.arange(5), jnp.arange(5) % 2, jnp.zeros(5, int), jnp.arange(5.0)
    eager = delayed.record_impressions(delayed.ledger_init(8), ids, items, ctx, times)
    eager = delayed.record_labels(eager, jnp.array([1, 3]), jnp.array([2.0, 9.0]))
    eager, eager_expired = delayed.expire(eager, 5.0, 3.0)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(ledger, ids, items, ctx, times):
        ledger = delayed.record_impressions(ledger, ids, items, ctx, times)
        ledger = delayed.record_labels(ledger, jnp.array([1, 3]), jnp.array([2.0, 9.0]))
        return delayed.expire(ledger, 5.0, 3.0)

    jitted, jitted_expired = step(delayed.ledger_init(8), ids, items, ctx, times)
    step(delayed.ledger_init(8), ids + 8, items, ctx, times)  # no retrace
    chex.assert_trees_all_equal((eager, eager_expired), (jitted, jitted_expired))
    fresh = delayed.ledger_init(8)
    assert jax.tree_util.tree_structure(eager) == jax.tree_util.tree_structure(fresh)
    for a, b in zip(
        jax.tree_util.tree_leaves(eager), jax.tree_util.tree_leaves(fresh), strict=True
    ):
        assert a.shape == b.shape and a.dtype == b.dtype
    batched = jax.vmap(lambda t: delayed.naive(eager, t, 3.0).label)(jnp.array([5.0, 10.0]))
    assert batched.shape == (2, 8)


# -------------------------------------------------------------------------------- DFM


def _direct_log_likelihood(z, r, y, t):
    p, lam = 1 / (1 + np.exp(-z)), np.exp(r)
    return np.where(
        y == 1, np.log(p * lam * np.exp(-lam * t)), np.log(1 - p + p * np.exp(-lam * t))
    )


def _dfm_inputs(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.uniform(-4, 4, n),
        rng.uniform(-3, 1, n),
        (rng.random(n) < 0.4).astype(float),
        rng.uniform(0, 40, n),
    )


def test_dfm_log_likelihood_equals_direct_formula_where_safe():
    z, r, y, t = _dfm_inputs()
    with jax.enable_x64(True):
        ours = delayed.dfm_log_likelihood(z, r, y, t)
        assert ours.dtype == jnp.float64
        np.testing.assert_allclose(ours, _direct_log_likelihood(z, r, y, t), rtol=1e-12, atol=1e-14)
    ours32 = delayed.dfm_log_likelihood(*(x.astype(F32) for x in (z, r, y, t)))
    np.testing.assert_allclose(ours32, _direct_log_likelihood(z, r, y, t), rtol=2e-5, atol=1e-6)


def test_dfm_log_likelihood_gradient_matches_central_differences():
    z, r, y, t = _dfm_inputs(seed=1)
    with jax.enable_x64(True):
        total = lambda z, r: jnp.sum(delayed.dfm_log_likelihood(z, r, y, t))
        grad_z, grad_r = jax.grad(total, argnums=(0, 1))(z, r)
        h = 1e-6
        ll = lambda z, r: np.asarray(delayed.dfm_log_likelihood(z, r, y, t))
        fd_z = (ll(z + h, r) - ll(z - h, r)) / (2 * h)
        fd_r = (ll(z, r + h) - ll(z, r - h)) / (2 * h)
    np.testing.assert_allclose(grad_z, fd_z, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(grad_r, fd_r, rtol=1e-6, atol=1e-8)


def test_dfm_log_likelihood_is_accurate_and_finite_at_extremes():
    """float32 against a float64 oracle where the naive float32 formula loses everything."""
    z = np.array([-30.0, 30.0, 30.0, -30.0, 0.0, 20.0, 0.3, 0.3])
    r = np.array([0.0, 0.0, 5.0, -20.0, -18.0, 3.0, 0.0, 0.0])
    t = np.array([1.0, 1e-7, 100.0, 1.0, 1.0, 500.0, 0.999, 1.001])  # last two: branch edge
    y = np.zeros_like(z)
    p = 1 / (1 + np.exp(-z))
    oracle = np.log1p(-p * -np.expm1(-np.exp(r) * t))
    big = p * -np.expm1(-np.exp(r) * t) >= 0.5
    oracle[big] = np.logaddexp(-np.logaddexp(0, z), -np.logaddexp(0, -z) - np.exp(r) * t)[big]
    args = [x.astype(F32) for x in (z, r, y, t)]
    ours = delayed.dfm_log_likelihood(*args)
    np.testing.assert_allclose(ours, oracle, rtol=1e-5, atol=1e-30)
    grads = jax.grad(lambda z, r: delayed.dfm_log_likelihood(z, r, args[2], args[3]).sum(), (0, 1))
    assert all(np.isfinite(np.asarray(g)).all() for g in grads(args[0], args[1]))
    converted = delayed.dfm_log_likelihood(args[0], args[1], np.ones(8, F32), args[3])
    assert np.isfinite(np.asarray(converted)).all()


def test_dfm_conversion_probability_is_bayes_rule():
    z, r, y, t = _dfm_inputs(seed=2)
    p, survive = 1 / (1 + np.exp(-z)), np.exp(-np.exp(r) * t)
    expected = np.where(y == 1, 1.0, p * survive / (1 - p + p * survive))
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            delayed.dfm_conversion_probability(z, r, y, t), expected, rtol=1e-10, atol=1e-300
        )


def _simulate_dfm(rng, p, rates, n_per_group, horizon=48.0):
    """Impressions of item g shown uniformly in the last ``horizon`` hours, converting with
    p[g] after Exponential(rates[g]) delays; arrived labels go through the ledger and come
    back as :func:`censored` rows."""
    items = np.repeat(np.arange(len(p)), n_per_group)
    n, now = items.size, F32(1000.0)
    shown = (now - rng.uniform(0, horizon, n)).astype(F32)
    label_at = (shown + rng.exponential(1 / np.asarray(rates)[items])).astype(F32)
    arrived = (rng.random(n) < np.asarray(p)[items]) & (label_at <= now)
    ledger = delayed.ledger_init(n)
    ledger = delayed.record_impressions(ledger, np.arange(n), items, np.zeros(n, int), shown)
    ledger = delayed.record_labels(ledger, np.flatnonzero(arrived), label_at[arrived])
    rows = delayed.censored(ledger, now)
    assert np.all(np.asarray(rows.weight) == 1)
    return np.asarray(rows.label), np.asarray(rows.time), np.asarray(rows.item)


def _standard_errors(labels, times, groups, theta, num_groups, shared_rate):
    """sqrt(diag(H^-1)) of the total negative log-likelihood, float64 observed Fisher."""
    with jax.enable_x64(True):
        labels, times = np.float64(labels), np.float64(times)

        def nll(theta):
            rate = theta[num_groups] if shared_rate else theta[num_groups:][groups]
            return -jnp.sum(delayed.dfm_log_likelihood(theta[groups], rate, labels, times))

        return np.sqrt(np.diag(np.linalg.inv(np.asarray(jax.hessian(nll)(theta)))))


@pytest.mark.parametrize("shared_rate", [True, False])
def test_fit_dfm_recovers_conversion_rates_and_delay_rates(shared_rate):
    """Every fitted parameter within 4 observed-Fisher standard errors of the truth (the
    l2 = 1e-4 prior moves estimates by far less than one s.e. at this n)."""
    rng = np.random.default_rng(7)
    p = np.array([0.05, 0.2, 0.5])
    rates = np.array([0.2, 0.2, 0.2]) if shared_rate else np.array([0.1, 0.25, 0.5])
    labels, times, groups = _simulate_dfm(rng, p, rates, 8000)
    fit, info = delayed.fit_dfm(labels, times, groups, 3, shared_rate=shared_rate)
    assert bool(info.converged) and int(info.num_iters) < 200
    truth_rate = np.log(rates[:1] if shared_rate else rates)
    estimate = np.concatenate([fit.logit_p, fit.log_rate[:1] if shared_rate else fit.log_rate])
    truth = np.concatenate([np.log(p / (1 - p)), truth_rate])
    se = _standard_errors(labels, times, groups, estimate, 3, shared_rate)
    assert np.all(np.abs(estimate - truth) < 4 * se), (estimate, truth, se)
    # censoring biases the naive rate to p (1 - (1 - e^{-lambda H}) / (lambda H)), H = 48 h
    horizon = 48.0
    seen = 1 - (1 - np.exp(-rates * horizon)) / (rates * horizon)
    for g in range(3):
        naive_p = labels[groups == g].mean()
        naive_se = np.sqrt(p[g] * seen[g] * (1 - p[g] * seen[g]) / (groups == g).sum())
        assert abs(naive_p - p[g] * seen[g]) < 4 * naive_se


def test_fit_dfm_rejects_bad_inputs():
    labels, times, groups = np.array([1.0, 0.0]), np.array([1.0, 2.0]), np.array([0, 1])
    with pytest.raises(InvalidArgumentError, match=r"groups: expected group ids in \[0, 1\)"):
        delayed.fit_dfm(labels, times, groups, 1)
    with pytest.raises(InvalidArgumentError, match="labels: expected 0/1 labels"):
        delayed.fit_dfm(np.array([0.5, 0.0]), times, groups, 2)
    with pytest.raises(InvalidArgumentError, match="times: expected finite delays"):
        delayed.fit_dfm(labels, np.array([-1.0, 2.0]), groups, 2)
    with pytest.raises(InvalidArgumentError, match="groups: expected the same length"):
        delayed.fit_dfm(labels, times, np.array([0]), 2)
    with pytest.raises(InvalidArgumentError, match="weights: expected finite values"):
        delayed.fit_dfm(labels, times, groups, 2, weights=np.array([1.0, -1.0]))


# ------------------------------------------------------------------ strategies at scale


def test_naive_estimate_converges_to_p_times_delay_cdf():
    """It follows from the delay model: pending = negative gives E[label | elapsed e] = p F(e)."""
    key_delay, key_convert = jax.random.split(jax.random.key(3))
    n, p, now = 60_000, 0.3, F32(96.0)
    params = delayed.calibrated_delay_mixture()
    rng = np.random.default_rng(3)
    shown = rng.uniform(0, 96, n).astype(F32)
    converts = np.asarray(jax.random.bernoulli(key_convert, p, (n,)))
    label_at = (shown + np.asarray(delayed.sample_delays(key_delay, params, n))).astype(F32)
    arrived = converts & (label_at <= now)
    ledger = delayed.ledger_init(n)
    ledger = delayed.record_impressions(
        ledger, np.arange(n), np.zeros(n, int), np.zeros(n, int), shown
    )
    ledger = delayed.record_labels(ledger, np.flatnonzero(arrived), label_at[arrived])
    rows = delayed.naive(ledger, now, 720.0)
    elapsed = now - shown
    expected = p * np.asarray(delayed.delay_cdf(params, elapsed))
    for low, high in [(0, 1), (1, 4), (4, 24), (24, 96)]:
        inside = (elapsed >= low) & (elapsed < high)
        mean = np.asarray(rows.label)[inside].mean()
        se = np.sqrt(np.mean(expected[inside] * (1 - expected[inside])) / inside.sum())
        assert abs(mean - expected[inside].mean()) < 4 * se, (low, high, mean)
    matured = delayed.wait_for_matured(ledger, now, 24.0)
    used = np.asarray(matured.weight) > 0
    np.testing.assert_array_equal(used, elapsed >= 24.0)
    target = p * float(delayed.delay_cdf(params, 24.0))  # unbiased for p F(m)
    se = np.sqrt(target * (1 - target) / used.sum())
    assert abs(np.asarray(matured.label)[used].mean() - target) < 4 * se


def test_otf_windowed_estimator_targets_tau_m_theta():
    """The OTF estimator targets tau_m theta (Vernade et al. 2020); at T = 2e4:
    |theta_hat - tau_m theta| / |tau_m theta| < 5%.

    One-hot-heavy actions make each coordinate a mean of about T/3 Bernoulli rewards:
    expected relative error about 1.3%, so 5% is about 3.8 s.e. of a chi_3 (budget ~1e-3),
    plus a window bias below m / T = 0.5%.
    """
    rng = np.random.default_rng(8)
    T, m, mean_delay = 20_000, 100, 50
    theta = np.array([0.3, 0.5, 0.7])
    items = rng.integers(0, 3, T)
    features = 0.7 * np.eye(3)[items] + 0.3 * rng.dirichlet(np.ones(3), T)
    rewards = rng.random(T) < features @ theta
    delays = rng.geometric(1 / mean_delay, T)
    ledger = delayed.ledger_init(T)
    shown = np.arange(T, dtype=F32)
    ledger = delayed.record_impressions(ledger, np.arange(T), np.arange(T), np.zeros(T, int), shown)
    arrived = rewards & (shown + delays <= T)
    ledger = delayed.record_labels(ledger, np.flatnonzero(arrived), (shown + delays)[arrived])
    rows = delayed.naive(ledger, F32(T), F32(m))
    gram, moment = delayed.otf_statistics(features[np.asarray(rows.item)], rows.label, rows.weight)
    estimate = np.asarray(delayed.otf_estimate(gram, moment))
    tau_m = 1 - (1 - 1 / mean_delay) ** m
    target = tau_m * theta
    assert np.linalg.norm(estimate - target) / np.linalg.norm(target) < 0.05
    assert np.linalg.norm(estimate - theta) / np.linalg.norm(theta) > 0.08  # scaled by tau_m
    np.testing.assert_allclose(gram, np.eye(3) + features.T @ features, rtol=1e-4)


def test_otf_statistics_rejects_bad_inputs():
    with pytest.raises(InvalidArgumentError, match="labels: expected the same length"):
        delayed.otf_statistics(np.ones((3, 2)), np.ones(2), np.ones(3))
    with pytest.raises(InvalidArgumentError, match="regularization: expected lambda >= 0"):
        delayed.otf_statistics(np.ones((3, 2)), np.ones(3), np.ones(3), -1.0)


# ---------------------------------------------------------------- delay distributions


def test_calibrated_mixture_hits_chapelle_statistics():
    """Chapelle (2014)'s statistics: F(1 h) = 0.35 and F(24 h) = 0.50 within the 30-day window,
    analytically and empirically (n = 2e5: s.e. about 0.0011, tolerance 0.01)."""
    params = delayed.calibrated_delay_mixture()
    cdf = np.asarray(delayed.delay_cdf(params, jnp.array([1.0, 24.0, 720.0, 1e4])))
    np.testing.assert_allclose(cdf, [0.35, 0.50, 1.0, 1.0], atol=1e-5)
    samples = np.asarray(delayed.sample_delays(jax.random.key(12), params, 200_000))
    assert samples.min() >= 0 and samples.max() <= 720.0
    assert abs(np.mean(samples <= 1.0) - 0.35) < 0.01
    assert abs(np.mean(samples <= 24.0) - 0.50) < 0.01
    ks = st.kstest(samples[:20_000], lambda t: np.asarray(delayed.delay_cdf(params, t)))
    assert ks.pvalue > 1e-3


def test_calibration_is_solved_not_copied():
    for shares, window in [((0.40, 0.60), 240.0), ((0.36, 0.99), 720.0)]:
        params = delayed.calibrated_delay_mixture(*shares, window=window)
        cdf = delayed.delay_cdf(params, jnp.array([1.0, 24.0]))
        np.testing.assert_allclose(cdf, shares, atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="one_hour_share: expected a share above 0.32"):
        delayed.calibrated_delay_mixture(0.30, 0.5)  # the fast part alone gives 0.3237 by 1 h
    with pytest.raises(InvalidArgumentError, match="one_day_share: expected a number in"):
        delayed.calibrated_delay_mixture(0.35, 0.2)


def test_exponential_delays():
    params = delayed.exponential_delays(5.0)
    t = np.array([0.0, 1.0, 5.0, 50.0])
    np.testing.assert_allclose(delayed.delay_cdf(params, t), 1 - np.exp(-t / 5), rtol=1e-6)
    samples = np.asarray(delayed.sample_delays(jax.random.key(1), params, 50_000))
    assert abs(samples.mean() - 5.0) < 4 * 5.0 / np.sqrt(50_000)
    truncated = delayed.exponential_delays(5.0, window=10.0)
    expected = (1 - np.exp(-t / 5)) / (1 - np.exp(-2.0))
    np.testing.assert_allclose(delayed.delay_cdf(truncated, t), np.minimum(expected, 1), rtol=1e-6)
    samples = np.asarray(delayed.sample_delays(jax.random.key(2), truncated, 20_000))
    assert samples.max() <= 10.0
    assert st.kstest(samples, lambda t: np.asarray(delayed.delay_cdf(truncated, t))).pvalue > 1e-3
    with pytest.raises(InvalidArgumentError, match="mean: expected a finite number > 0"):
        delayed.exponential_delays(0.0)
    with pytest.raises(InvalidArgumentError, match="n: expected a positive integer"):
        delayed.sample_delays(jax.random.key(0), params, 0)


def test_dfm_probit_log_ratio_telescopes_to_the_dfm_likelihood():
    """Summed over looks at ages 0 < 1 < 6 < 24 h (rate changing between looks, passed as
    previous_log_rate), the ratios equal the DFM log-likelihood at the last look."""
    u = jnp.linspace(-3.0, 2.0, 7)
    rates = [-math.log(12.0), -math.log(5.0), -math.log(30.0)]
    ages = [1.0, 6.0, 24.0]
    p = jax.scipy.special.ndtr(u)
    for arrival_look in (None, 0, 1, 2):
        total, before, previous = jnp.zeros_like(u), 0.0, rates[0]
        for j, (now, rate) in enumerate(zip(ages, rates, strict=True)):
            if arrival_look is not None and j > arrival_look:
                break  # the click was seen: nothing more is fed
            arrived = arrival_look == j
            total += delayed.dfm_probit_log_ratio(u, rate, before, now, arrived, previous)
            before, previous = now, rate
        if arrival_look is None:
            expected = jnp.log1p(-p * -jnp.expm1(-math.exp(rates[-1]) * ages[-1]))
        else:
            expected = jnp.log(p)
        np.testing.assert_allclose(total, expected, rtol=1e-5, atol=1e-6)


def test_dfm_probit_log_ratio_is_zero_before_anything_is_watched():
    u = jnp.array([-40.0, 0.0, 40.0])
    np.testing.assert_array_equal(delayed.dfm_probit_log_ratio(u, 0.0, 0.0, 0.0, False), 0.0)
    assert np.all(np.isfinite(delayed.dfm_probit_log_ratio(u, 0.0, 0.0, 1e6, False)))


def test_dfm_probit_log_ratio_rejects_negative_or_decreasing_ages():
    with pytest.raises(InvalidArgumentError, match="now: expected ages with 0 <= before <= now"):
        delayed.dfm_probit_log_ratio(0.0, 0.0, -1.0, 2.0, False)
    with pytest.raises(InvalidArgumentError, match="now: expected ages"):
        delayed.dfm_probit_log_ratio(0.0, 0.0, 3.0, 2.0, False)


@pytest.mark.parametrize("model", ["probit", "logistic"])
def test_ledger_strategies_feed_both_click_models(model):
    """The ledger's training rows drive either model: a naive snapshot under-estimates the
    eventual rate by F(e); the censored rows with DFM fractional labels (EM, rate known) put
    the model's predicted rate near the truth. One feature (an intercept), float64."""
    from prime_science.bandits.logistic import logistic_laplace
    from prime_science.bandits.probit import probit_adf

    rng = np.random.default_rng(3)
    n, p, mean_delay, now = 4000, 0.2, 10.0, 30.0
    shown = rng.uniform(0.0, now, n)
    converts = rng.uniform(size=n) < p
    arrives = shown + rng.exponential(mean_delay, n)
    state = delayed.ledger_init(8192)
    state = delayed.record_impressions(
        state, jnp.arange(n), jnp.zeros(n, jnp.int32), jnp.zeros(n, jnp.int32), jnp.asarray(shown)
    )
    seen = converts & (arrives <= now)
    state = delayed.record_labels(state, jnp.flatnonzero(seen), jnp.asarray(arrives[seen]))
    rows = delayed.censored(state, now)
    live = np.asarray(rows.weight) > 0
    label, time = np.asarray(rows.label)[live], np.asarray(rows.time)[live]
    ids = jnp.zeros((2 * label.size, 1), jnp.int32)
    with jax.enable_x64(True):
        policy = (
            probit_adf(1, prior_variance=4.0)
            if model == "probit"
            else logistic_laplace(1, prior_variance=4.0)
        )
        prior = policy.init(jnp.float64)

        def fit(fraction):  # rows (1, w = fraction) and (0, w = 1 - fraction), from the prior
            clicks = jnp.concatenate([jnp.ones(label.size), jnp.zeros(label.size)])
            weights = jnp.concatenate([fraction, 1.0 - fraction])
            if model == "probit":  # ADF takes no weights: whole rows, in a random order
                draw = np.random.default_rng(0)
                keep = np.flatnonzero(draw.uniform(size=weights.size) < np.asarray(weights))
                keep = draw.permutation(keep)  # ADF depends on the order: no sorted labels
                return policy.update(prior, ids[keep], clicks[keep])
            return policy.update(prior, ids, clicks, weights)

        def rate(state):
            return float(policy.predict(state, jnp.zeros((1, 1), jnp.int32))[0])

        naive_rate = rate(fit(jnp.asarray(label)))
        fraction = jnp.asarray(label)
        for _ in range(30):  # EM: E-step fractional labels, M-step refit from the prior
            logit = math.log(rate(fit(fraction))) - math.log1p(-rate(fit(fraction)))
            fraction = delayed.dfm_conversion_probability(
                logit, -math.log(mean_delay), jnp.asarray(label), jnp.asarray(time)
            )
        em_rate = rate(fit(fraction))
    share = np.mean(1.0 - np.exp(-(now - shown) / mean_delay))  # E[F(elapsed)]
    assert abs(naive_rate - p * share) < 0.03
    assert abs(em_rate - p) < 0.03 < abs(naive_rate - p)


def test_fit_dfm_log_rate_prior_is_a_map_that_data_override():
    """A tight prior holds the rate at its centre; a loose one leaves the MLE; the MAP lies
    between the MLE and the centre."""
    rng = np.random.default_rng(11)
    labels, times, groups = _simulate_dfm(rng, np.array([0.2]), np.array([0.2]), 4000)
    mle, _ = delayed.fit_dfm(labels, times, groups, 1)
    centre = math.log(0.05)
    tight, _ = delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 1e-3))
    loose, _ = delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 1e3))
    medium, _ = delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 0.05))
    assert abs(float(tight.log_rate[0]) - centre) < 0.01
    assert abs(float(loose.log_rate[0]) - float(mle.log_rate[0])) < 1e-3
    assert centre < float(medium.log_rate[0]) < float(mle.log_rate[0])
    with pytest.raises(InvalidArgumentError, match="log_rate_prior: expected"):
        delayed.fit_dfm(labels, times, groups, 1, log_rate_prior=(centre, 0.0))
