"""The in-memory store, against a brute-force reference, on a fake clock."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import numpy as np
import pytest

from core.model import METRICS, Batch
from storage import create_storage
from storage.memory_backend import (
    SECOND_SPAN,
    Bucket,
    MemoryStorage,
    merge,
    name_key,
    top_items,
)
from tests.conftest import T0, FakeClock


def batch(ts: int, **counts: int | tuple[int, int, int]) -> Batch:
    names, values = [], []
    for name, value in counts.items():
        names.append(name.replace("_", "."))
        values.extend(value if isinstance(value, tuple) else (value, 0, 0))
    return Batch(ts, names, values)


@pytest.fixture
def store(clock):
    return MemoryStorage(retention=25 * 3600, clock=clock)


def test_minute_window_slides_by_the_second(store, clock):
    store.add([batch(T0, a_com=5, b_com=3)])
    clock.tick(30)
    store.add([batch(T0 + 30, b_com=10)])
    assert store.top(60, 10, "clicks").items == [("b.com", 13), ("a.com", 5)]
    clock.tick(29)  # T0 is the oldest second still inside (now - 60, now]
    assert store.top(60, 10, "clicks").items == [("b.com", 13), ("a.com", 5)]
    clock.tick(1)
    assert store.top(60, 10, "clicks").items == [("b.com", 10)]
    clock.tick(30)
    assert store.top(60, 10, "clicks").items == []


def test_window_bounds_are_reported(store, clock):
    result = store.top(60, 10, "clicks")
    assert (result.start, result.end) == (T0 - 59, T0)
    hour = store.top(3600, 10, "clicks")
    assert hour.start == (T0 // 60 - 59) * 60


def test_late_clicks_count_in_every_window_covering_them(store, clock):
    store.add([batch(T0 - 30, late=1), batch(T0 - 1800, later=2), batch(T0 - 80000, oldest=3)])
    assert store.top(60, 10, "clicks").items == [("late", 1)]
    assert store.top(3600, 10, "clicks").items == [("later", 2), ("late", 1)]
    assert store.top(86400, 10, "clicks").items == [("oldest", 3), ("later", 2), ("late", 1)]


def test_future_clicks_count_once_their_time_comes(store, clock):
    store.add([batch(T0 + 100, soon=7)])
    assert store.top(60, 10, "clicks").items == []
    assert store.top(3600, 10, "clicks").items == []
    clock.tick(100)
    assert store.top(60, 10, "clicks").items == [("soon", 7)]
    assert store.top(3600, 10, "clicks").items == [("soon", 7)]


def test_rank_by_each_metric_with_ties_by_name(store):
    store.add([batch(T0, b=(1, 10, 0), a=(1, 10, 5), c=(2, 0, 5))])
    assert store.top(60, 10, "clicks").items == [("c", 2), ("a", 1), ("b", 1)]
    assert store.top(60, 10, "bytes_in").items == [("a", 10), ("b", 10)]
    assert store.top(60, 10, "bytes_out").items == [("a", 5), ("c", 5)]
    assert store.top(60, 1, "bytes_in").items == [("a", 10)]


def test_buckets_expire_with_event_time_not_arrival(clock):
    store = MemoryStorage(retention=7200, clock=clock)
    store.add([batch(T0 - 7000, old=1), batch(T0, new=1)])
    assert store.top(7200, 10, "clicks").items == [("new", 1), ("old", 1)]
    clock.tick(300)  # the old bucket's minute plus the retention has passed
    assert store.top(7200, 10, "clicks").items == [("new", 1)]
    assert len(store.minutes) == 1


def test_windows_longer_than_the_retention_read_the_hourly_rollups(clock):
    store = MemoryStorage(retention=3600, history=7200, clock=clock)
    store.add([batch(T0 - 3500, a=1), batch(T0, b=1), batch(T0 - 6000, older=4)])
    assert store.top(86400, 10, "clicks").items == [("older", 4), ("a", 1), ("b", 1)]
    assert store.top(3600, 10, "clicks").items == [("a", 1), ("b", 1)]
    clock.tick(200)  # a's minute leaves the retention for its hourly roll-up
    assert store.top(3600, 10, "clicks").items == [("b", 1)]
    assert store.top(86400, 10, "clicks").items == [("older", 4), ("a", 1), ("b", 1)]
    assert len(store.hours) == 1  # both in the hour starting T0 - 5344
    clock.tick(3 * 3600)  # past the history of every roll-up
    assert store.top(86400, 10, "clicks").items == []


def test_clock_jumps_past_every_window(store, clock):
    store.add([batch(T0, a=1)])
    assert store.top(86400, 10, "clicks").items == [("a", 1)]
    clock.tick(10 * 86400)
    assert store.top(86400, 10, "clicks").items == []
    store.add([batch(int(clock.now), b=2)])
    assert store.top(86400, 10, "clicks").items == [("b", 2)]


def test_bucket_merges_chunks_and_sums_ids():
    bucket = Bucket()
    for _ in range(3):
        bucket.add(np.array([2, 0], np.intp), np.array([[1, 2, 3], [4, 5, 6]], np.int64))
    ids, values = bucket.arrays()
    assert ids.tolist() == [0, 2]
    assert values.tolist() == [[12, 15, 18], [3, 6, 9]]
    assert merge([])[0].size == 0


def keys_of(names):
    return np.array([name_key(n) for n in names], np.uint64)


def test_top_items_breaks_ties_at_the_cut_by_name():
    names = [f"d{i:02d}" for i in range(20)]
    keys = keys_of(names)
    values = np.array([5] * 10 + [1] * 10)
    assert top_items(values, 3, names, keys) == [("d00", 5), ("d01", 5), ("d02", 5)]
    shuffled = np.array([1, 5, 1, 5, 9, 5, 0, 5])
    assert top_items(shuffled, 3, names, keys) == [("d04", 9), ("d01", 5), ("d03", 5)]
    ids = np.array([7, 3, 5])
    assert top_items(np.array([2, 2, 2]), 2, names, keys, ids) == [("d03", 2), ("d05", 2)]
    assert top_items(np.array([0, 0, 3]), 2, names, keys) == [("d02", 3)]


def test_ties_sharing_a_long_prefix_are_still_ordered_by_name():
    rng = np.random.default_rng(7)
    names = [f"domain{i}.example" for i in rng.permutation(5000)]
    values = rng.integers(0, 3, 5000)
    expected = sorted(
        ((n, int(v)) for n, v in zip(names, values, strict=True) if v > 0),
        key=lambda item: (-item[1], item[0]),
    )
    for limit in (1, 10, 999, 4000, 6000):
        assert top_items(values, limit, names, keys_of(names)) == expected[:limit]


def test_create_storage_rejects_unknown_urls():
    with pytest.raises(ValueError, match="unknown storage URL"):
        create_storage("nosuch://", retention=60)


def reference_top(events, now, seconds, limit, by, retention=25 * 3600):
    resolution = 1 if seconds <= SECOND_SPAN else 60
    last = int(now) // resolution
    first = last - math.ceil(seconds / resolution) + 1
    sums = defaultdict(int)
    column = METRICS.index(by)
    for ts, name, values in events:
        if first <= ts // resolution <= last and ts >= now - retention - 60:
            sums[name] += values[column]
    ranked = sorted(((n, v) for n, v in sums.items() if v > 0), key=lambda i: (-i[1], i[0]))
    return ranked[:limit]


@pytest.mark.parametrize("seed", range(3))
def test_matches_a_brute_force_reference(seed):
    rng = random.Random(seed)
    clock = FakeClock()
    store = MemoryStorage(clock=clock)
    names = [f"d{i}.example" for i in range(40)]
    events = []
    for _ in range(300):
        now = int(clock.now)
        ts = rng.choice(
            [
                now,
                now,
                now - rng.randrange(120),
                now - rng.randrange(90000),
                now + rng.randrange(300),
            ]
        )
        picked = rng.sample(names, rng.randrange(1, 6))
        values = [rng.randrange(0, 50) for _ in range(3 * len(picked))]
        store.add([Batch(ts, picked, values)])
        events += [(ts, n, values[3 * i : 3 * i + 3]) for i, n in enumerate(picked)]
        clock.tick(rng.choice([0, 1, 1, 7, 59, 600, 3000]))
        for seconds in (60, 90, 600, 3600, 7200, 86400):
            for by in METRICS:
                got = store.top(seconds, 5, by).items
                assert got == reference_top(events, clock.now, seconds, 5, by), (seconds, by)


def all_answers(store, names):
    tops = [store.top(w, 50, by).items for w in (60, 600, 3600, 7200, 86400) for by in METRICS]
    now = int(store.clock())
    series = store.series(names, now // 3600 * 3600 - 3 * 3600, now, 3600, "clicks")
    return tops, series, [store.domain_totals(n, 7200) for n in names]


@pytest.mark.parametrize("seed", range(3))
def test_forgetting_unused_domains_changes_no_answer(seed):
    rng = random.Random(seed)
    clock, twin_clock = FakeClock(), FakeClock()
    store = MemoryStorage(retention=3600, history=7200, clock=clock)
    twin = MemoryStorage(retention=3600, history=7200, clock=twin_clock)
    twin._next_forget = float("inf")  # the twin never forgets: the answers must agree
    names = [f"d{i}.example" for i in range(60)]
    forgot = 0
    for _ in range(150):
        now = int(clock.now)
        ts = rng.choice([now, now - rng.randrange(7000)])
        picked = rng.sample(names, rng.randrange(1, 5))
        values = [rng.randrange(0, 9) for _ in range(3 * len(picked))]
        for s in (store, twin):
            s.add([Batch(ts, picked, values)])
        step = rng.choice([1, 30, 600, 1800])
        clock.tick(step)
        twin_clock.tick(step)
        store.maintain()
        twin.maintain()
        forgot += store.forget_unused(min_share=0)
        assert all_answers(store, names) == all_answers(twin, names)
    assert forgot > 0
    assert store.tracked_domains() < twin.tracked_domains()


def test_unused_domains_are_forgotten_hourly(clock):
    store = MemoryStorage(retention=3600, history=3600, clock=clock)
    store.add([batch(T0, gone=1), batch(T0, also_gone=1)])
    clock.tick(3 * 3600)
    store.add([batch(int(clock.now), kept=2)])
    store.maintain()
    assert store.tracked_domains() == 1
    assert store.top(60, 10, "clicks").items == [("kept", 2)]


def test_reading_rates_leaves_the_hourly_forgetting_to_maintain(clock):
    store = MemoryStorage(retention=3600, history=3600, clock=clock)
    store.add([batch(T0, gone=1)])
    clock.tick(3 * 3600)
    store.add([batch(int(clock.now), kept=2)])
    store.total_rates()
    assert store.domain_stats("kept").clicks_per_s == 0.2
    assert store.tracked_domains() == 2  # a request never pays for the O(entries) pass
    store.maintain()
    assert store.tracked_domains() == 1
