"""The durable store on real SQLite files, on a fake clock."""

from __future__ import annotations

import os
import sqlite3

import pytest

from core.model import METRICS, Batch
from storage import DurableStorage, Limits, Receipt, StorageError
from storage.sqlite_backend import DB_NAME
from tests.conftest import T0

WINDOWS = (60, 90, 3600, 7200, 86400)


def answers(store):
    """Every answer a restart must preserve."""
    tops = {(w, by): store.top(w, 1000, by).items for w in WINDOWS for by in METRICS}
    counts = {w: (store.summary(w), store.request_count(w)) for w in WINDOWS}
    return tops, counts, store.tracked_domains()


def crash(store):
    """Drop a store as kill -9 would: no flush, no checkpoint; the OS closes the files."""
    store._pool.kill()
    store._db.close()
    os.close(store._lock_fd)


@pytest.fixture
def open_store(tmp_path, clock):
    opened = []

    def open_store(**kwargs):
        store = DurableStorage(tmp_path / "data", clock=clock, **kwargs)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        if not store._closed and store._lock_fd is not None:
            try:
                store.close()
            except Exception:
                pass


def fill(store, clock, rounds=30):
    for i in range(rounds):
        store.add(
            [
                Batch(int(clock.now), [f"d{i % 7}.example", "hot.example"], [i, 1, 2, 1, 0, 3]),
                Batch(int(clock.now) - 1000 * i, [f"late{i % 3}.example"], [2, 0, 0]),
            ]
        )
        store.count_request()
        clock.tick(7)


def test_graceful_restart_answers_the_same(open_store, clock):
    store = open_store()
    fill(store, clock)
    store.add([Batch(T0, ["k.example"], [1, 0, 0])], Receipt("key-1", T0, b"d", b"{}"))
    before = answers(store)
    store.close()
    again = open_store()
    assert answers(again) == before
    assert again.receipt("key-1") == Receipt("key-1", T0, b"d", b"{}")


@pytest.mark.parametrize("fsync", ["normal", "always"])
@pytest.mark.parametrize("checkpoint_midway", [False, True])
def test_acknowledged_batches_survive_a_crash(open_store, clock, checkpoint_midway, fsync):
    store = open_store(fsync=fsync)
    fill(store, clock, rounds=15)
    if checkpoint_midway:
        store.checkpoint()
    fill(store, clock, rounds=15)
    before = answers(store)
    crash(store)
    assert answers(open_store()) == before


def test_checkpoint_folds_the_log_and_forgets_expired_data(open_store, clock, tmp_path):
    store = open_store(retention=7200, history=7200)
    fill(store, clock, rounds=5)
    store.checkpoint()
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)
    assert db.execute("SELECT count(*) FROM log").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM buckets").fetchone()[0] > 0
    clock.tick(7200 + 120)
    store.checkpoint()
    kept = "SELECT count(*) FROM buckets WHERE resolution = ?"
    assert db.execute(kept, (60,)).fetchone()[0] == 0
    assert db.execute(kept, (3600,)).fetchone()[0] > 0  # the hourly roll-ups
    clock.tick(2 * 3600)
    store.checkpoint()
    assert db.execute("SELECT count(*) FROM buckets").fetchone()[0] == 0
    db.close()


def test_disk_use_stays_flat_under_steady_load(open_store, clock, tmp_path):
    store = open_store(retention=3600, history=3600)
    db = sqlite3.connect(tmp_path / "data" / DB_NAME)
    rows = []
    for _hour in range(4):
        for _ in range(120):
            store.add([Batch(int(clock.now), [f"d{i}" for i in range(20)], [1, 2, 3] * 20)])
            clock.tick(30)
        store.checkpoint()
        rows.append(db.execute("SELECT count(*) FROM buckets").fetchone()[0])
    db.close()
    # 60 minute buckets, the last 10 minutes of second buckets and two or three hourly
    # roll-ups, hour after hour.
    assert rows[1] == rows[2] == rows[3] <= 60 + 1 + 20 + 3


def test_a_failed_checkpoint_loses_nothing(open_store, clock, monkeypatch):
    store = open_store()
    fill(store, clock, rounds=10)
    original = store._write_checkpoint

    def broken(*args):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_write_checkpoint", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.checkpoint()
    monkeypatch.setattr(store, "_write_checkpoint", original)
    fill(store, clock, rounds=3)
    store.checkpoint()
    before = answers(store)
    crash(store)
    assert answers(open_store()) == before


def test_request_counts_survive_a_crash_and_a_new_retention(open_store, clock):
    store = open_store()
    for _ in range(3):
        store.count_request()
    clock.tick(5)
    store.count_request()
    crash(store)
    again = open_store(retention=7200)
    assert (again.request_count(3), again.request_count(60)) == (1, 4)


def test_a_second_server_on_the_same_directory_is_refused(open_store):
    open_store()
    with pytest.raises(StorageError, match="another domainstats server .* is using"):
        open_store()


@pytest.mark.parametrize(
    "damage", [b"this is not a database at all" * 100, b"SQLite format 3\x00" + b"\xff" * 5000]
)
def test_a_corrupt_database_is_named_and_kept(tmp_path, clock, damage):
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_NAME).write_bytes(damage)
    with pytest.raises(StorageError) as raised:
        DurableStorage(data, clock=clock)
    message = str(raised.value)
    assert str(data / DB_NAME) in message
    assert "move the file" in message
    assert (data / DB_NAME).read_bytes() == damage
    # The lock was released: once the file is moved away, the server starts.
    (data / DB_NAME).rename(data / "broken.sqlite3")
    DurableStorage(data, clock=clock).close()


def test_a_failed_commit_raises_and_applies_nothing(open_store, clock, monkeypatch):
    store = open_store()
    store.add([Batch(T0, ["a.example"], [1, 0, 0])])

    def broken(row, receipts):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "_commit", broken)
    with pytest.raises(StorageError, match="disk is full"):
        store.add([Batch(T0, ["b.example"], [5, 0, 0])])
    assert store.top(60, 10, "clicks").items == [("a.example", 1)]


def test_rollups_and_limits_survive_restarts(open_store, clock):
    store = open_store(retention=3600)
    store.add([Batch(T0 - 3000, ["old.example"], [5, 0, 0]), Batch(T0, ["new.example"], [1, 0, 0])])
    store.set_limits("new.example", Limits(max_rx_bitrate=100))
    store.set_limits("_total", Limits(max_clicks_per_s=5))
    store.set_limits("_total", None)
    store.checkpoint()
    crash(store)
    clock.tick(1000)  # old.example's minute leaves the retention while the server is down
    again = open_store(retention=3600)
    assert again.top(86400, 10, "clicks").items == [("old.example", 5), ("new.example", 1)]
    assert again.top(3600, 10, "clicks").items == [("new.example", 1)]
    assert again.limits == {"new.example": Limits(max_rx_bitrate=100)}
    again.close()
    third = open_store(retention=3600)
    assert third.top(86400, 10, "clicks").items == [("old.example", 5), ("new.example", 1)]


@pytest.mark.parametrize("checkpoint_after", [False, True])
def test_renumbered_domains_survive_a_crash(open_store, clock, checkpoint_after):
    store = open_store(retention=3600, history=3600)
    store.add([Batch(T0, [f"old{i}.example" for i in range(10)], [1, 0, 0] * 10)])
    store.checkpoint()
    clock.tick(3 * 3600)  # the old domains leave the history; the hourly forgetting is due
    store.add([Batch(int(clock.now), ["new.example", "other.example"], [5, 0, 0, 2, 1, 0])])
    store.maintain()
    assert store.tracked_domains() == 2  # renumbered in memory; the disk still has old ids
    store.add([Batch(int(clock.now), ["third.example"], [7, 0, 0])])
    if checkpoint_after:
        store.checkpoint()  # rewrites every name and bucket under the new numbers
    before = answers(store)
    crash(store)
    again = open_store(retention=3600, history=3600)
    assert answers(again) == before
    assert again.top(60, 10, "clicks").items == [
        ("third.example", 7),
        ("new.example", 5),
        ("other.example", 2),
    ]
