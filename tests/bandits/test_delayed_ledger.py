"""The pending-feedback ledger against a dict oracle, and the training strategies that read it.

Statistical tests use fixed seeds; tolerances are 4 standard errors unless said otherwise
(failure budget about 6e-5 per compared quantity, under 1e-3 for the whole file).
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


@pytest.mark.slow
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


# ------------------------------------------------------------------ strategies at scale


@pytest.mark.slow
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


@pytest.mark.slow
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
