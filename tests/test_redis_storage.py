"""The Redis backend gives the in-memory engine's answers, whatever the sealing has reached."""

from __future__ import annotations

import random

import pytest

from core.model import METRICS, Batch
from storage import MemoryStorage, RedisStorage, StorageError
from tests.conftest import T0, FakeClock

WINDOWS = (10, 60, 601, 7200, 86400, 3 * 86400)


def answers(store, names: list[str], now: int) -> dict:
    """Everything a window read can return, for comparison."""
    out = {}
    for seconds in WINDOWS:
        for by in METRICS:
            out[("top", seconds, by)] = store.top(seconds, 5, by).items
        out[("summary", seconds)] = store.summary(seconds)
        for name in names:
            out[("totals", seconds, name)] = store.domain_totals(name, seconds)
    ranges = [(now - 299, 1), (now // 60 * 60 - 7200, 60), (now // 3600 * 3600 - 3 * 86400, 3600)]
    for start, step in ranges:
        try:
            resolution = store.step_resolution(start, step)
        except ValueError:
            continue
        out[("series", start, step, resolution)] = store.series(names, start, now, step, "clicks")
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_random_traffic_gets_the_same_answers_as_memory(redis_url, seed):
    rng = random.Random(seed)
    clock = FakeClock()
    memory = MemoryStorage(clock=clock)
    redis = RedisStorage(redis_url, clock=clock)
    names = [f"d{i}.com" for i in range(12)]
    for _ in range(40):
        clock.tick(rng.choice([1, 1, 3, 30, 59, 61, 700, 3599, 3601, 20000]))
        now = int(clock.now)
        for _ in range(rng.randint(1, 4)):
            # Mostly now, sometimes late (into sealed slots), sometimes a little ahead.
            ts = now - rng.choice([0, 0, 1, 5, 65, 400, 900, 4000, 50000, 95000, -120])
            picked = rng.sample(names, rng.randint(1, 6))
            values = [rng.choice([0, 1, 7, 1000]) for _ in range(3 * len(picked))]
            values[0] = values[0] or 1
            batch = Batch(ts, picked, values)
            memory.add([batch])
            redis.add([batch])
        if rng.random() < 0.6:
            # Not every tick: reads must be right before the minutes and hours are sealed.
            memory.maintain()
            redis.maintain()
        assert answers(redis, names[:3], now) == answers(memory, names[:3], now)
    redis.close()


def test_a_second_process_reads_the_same_while_sealing_moves(redis_url):
    clock = FakeClock()
    writer = RedisStorage(redis_url, clock=clock)
    reader = RedisStorage(redis_url, clock=clock)
    writer.add([Batch(T0, ["a.com"], [5, 0, 0])])
    clock.tick(3 * 3600)
    before = reader.top(86400, 10, "clicks").items
    writer.maintain()  # seals three hours of minutes at once
    assert reader.top(86400, 10, "clicks").items == before == [("a.com", 5)]
    writer.add([Batch(T0 + 30, ["a.com"], [2, 0, 0])])  # late, into a sealed minute and hour
    assert reader.domain_totals("a.com", 86400)["clicks"] == 7
    assert reader.series(["a.com"], T0 // 3600 * 3600, int(clock.now), 3600, "clicks") == {
        "a.com": [7, 0, 0, 0]
    }


def test_a_call_retried_after_a_dropped_connection_changes_nothing(redis_url):
    clock = FakeClock()
    store = RedisStorage(redis_url, clock=clock)
    request = ["", "", [[T0, [3.0, 0.0, 0.0], ["a.com"], [3, 0, 0]]]]
    assert store._apply([request], "same") == [[0]]
    # What redis-py sends again when the answer was lost on the way back:
    assert store._apply([request], "same") == [[0]]
    assert store.domain_totals("a.com", 60)["clicks"] == 3
    assert store._apply([request], "another") == [[0]]
    assert store.domain_totals("a.com", 60)["clicks"] == 6


def test_rediss_speaks_tls(redis_tls):
    redis_tls.command("FLUSHALL")
    store = RedisStorage(redis_tls.url, clock=FakeClock())
    store.add([Batch(T0, ["tls.com"], [4, 0, 0])])
    assert store.top(60, 10, "clicks").items == [("tls.com", 4)]
    store.close()
    with pytest.raises(StorageError, match="Redis at 127.0.0.1 is unavailable"):
        RedisStorage(f"redis://127.0.0.1:{redis_tls.port}/0")  # plain text to a TLS port
