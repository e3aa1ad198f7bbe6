"""The unit of background work, on a fake clock; the loop itself never runs here."""

from __future__ import annotations

import pytest

from aggregation import Aggregator
from core.model import PERIOD_BY_NAME, Batch
from storage import MemoryStorage
from tests.conftest import T0

MINUTE, HOUR, DAY = (PERIOD_BY_NAME[n] for n in ("min", "hour", "day"))


@pytest.fixture
def store(clock):
    return MemoryStorage(clock=clock)


def test_rebuild_makes_every_period_and_metric_ready(store, clock):
    store.add([Batch(T0, ["a.com", "b.com"], [1, 20, 0, 2, 10, 0])])
    aggregator = Aggregator(store, clock=clock)
    aggregator.rebuild_once()
    for period in (MINUTE, HOUR, DAY):
        assert aggregator.ready(period, "clicks").items == [("b.com", 2), ("a.com", 1)]
        assert aggregator.ready(period, "bytes_in").items == [("a.com", 20), ("b.com", 10)]
        assert aggregator.ready(period, "bytes_out").items == []
    assert aggregator.ready(MINUTE, "clicks").updated_at == T0


def test_slow_periods_rebuild_every_slow_interval(store, clock):
    aggregator = Aggregator(store, clock=clock, slow_interval=5)
    aggregator.rebuild_once()
    store.add([Batch(T0, ["a.com"], [1, 0, 0])])
    for _ in range(4):
        clock.tick(1)
        aggregator.rebuild_once()
        assert aggregator.ready(MINUTE, "clicks").items == [("a.com", 1)]
        assert aggregator.ready(HOUR, "clicks").items == []
    clock.tick(1)
    aggregator.rebuild_once()
    assert aggregator.ready(HOUR, "clicks").items == [("a.com", 1)]
    assert aggregator.ready(DAY, "clicks").updated_at == T0 + 5


def test_top_k_bounds_what_is_kept(store, clock):
    store.add([Batch(T0, [f"d{i}" for i in range(30)], [i for i in range(30) for _ in "xyz"])])
    aggregator = Aggregator(store, clock=clock, top_k=5)
    aggregator.rebuild_once()
    assert [n for n, _ in aggregator.ready(MINUTE, "clicks").items] == [
        "d29",
        "d28",
        "d27",
        "d26",
        "d25",
    ]


class Flaky(MemoryStorage):
    """A store whose hour window and housekeeping are broken."""

    def top(self, seconds, limit, by, offload=None):
        if seconds == 3600:
            raise RuntimeError("bad entry")
        return super().top(seconds, limit, by, offload)

    def maintain(self):
        raise RuntimeError("disk on fire")


def test_a_failing_period_never_stops_the_others(clock, caplog):
    store = Flaky(clock=clock)
    store.add([Batch(T0, ["a.com"], [1, 0, 0])])
    aggregator = Aggregator(store, clock=clock)
    aggregator.rebuild_once()
    assert aggregator.ready(MINUTE, "clicks").items == [("a.com", 1)]
    assert aggregator.ready(DAY, "clicks").items == [("a.com", 1)]
    assert "rebuilding the hour top-N failed" in caplog.text
    assert "storage maintenance failed" in caplog.text


def test_ranking_can_run_in_a_thread(store, clock):
    from gevent.threadpool import ThreadPool

    pool = ThreadPool(1)
    store.add([Batch(T0, ["a.com", "b.com"], [1, 0, 0, 2, 0, 0])])
    aggregator = Aggregator(store, clock=clock, offload=pool.apply)
    aggregator.rebuild_once()
    assert aggregator.ready(DAY, "clicks").items == [("b.com", 2), ("a.com", 1)]
    pool.kill()


def test_the_loop_outlives_a_failing_round():
    import gevent

    from core.loop import Periodic

    calls = []

    def work():
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("first round breaks")

    loop = Periodic(work, 0.001, "test loop")
    loop.start()
    with gevent.Timeout(5):
        while len(calls) < 3:
            gevent.sleep(0.001)
    loop.stop()
    assert calls[:3] == [0, 1, 2]
