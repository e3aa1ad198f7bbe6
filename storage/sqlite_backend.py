"""The in-memory store made durable: a SQLite log of batches, compacted into bucket rows.

A batch is answered only after its log row is committed; a writer greenlet groups the batches
of concurrent requests into one transaction. Every `checkpoint_interval` the buckets changed
since the last checkpoint are written as rows and the log they cover is deleted, so recovery
reads at most the retention's buckets plus a few seconds of log, however long the server ran.

HTTP request counts live in a memory-mapped ring file, (second, count) per slot, written as
each request arrives: the page cache keeps them through a kill -9 without a system call.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gevent
import numpy as np
import orjson
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore
from gevent.threadpool import ThreadPool

from core.model import METRICS, Batch
from storage.base import (
    DomainStats,
    Limits,
    Offload,
    Receipt,
    StorageError,
    TopResult,
    WindowSummary,
)
from storage.memory_backend import MemoryStorage, RequestCounter, merge

logger = logging.getLogger(__name__)

DB_NAME = "domainstats.sqlite3"
LOCK_NAME = "domainstats.lock"
SCHEMA_VERSION = 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS domains (first_id INTEGER PRIMARY KEY, names BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (
    resolution INTEGER NOT NULL, slot INTEGER NOT NULL, ids BLOB NOT NULL,
    counts BLOB NOT NULL, PRIMARY KEY (resolution, slot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    key TEXT PRIMARY KEY, created INTEGER NOT NULL, digest BLOB NOT NULL,
    response BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS receipts_created ON receipts (created);
CREATE TABLE IF NOT EXISTS limits (
    name TEXT PRIMARY KEY, max_rx_bitrate REAL NOT NULL, max_tx_bitrate REAL NOT NULL,
    max_clicks_per_s REAL NOT NULL);
"""
REQUESTS_NAME = "requests.ring"


def _encode(batches: Sequence[Batch]) -> bytes:
    return orjson.dumps([[b.timestamp, b.domains, b.values] for b in batches])


def _decode(body: bytes) -> list[Batch]:
    return [Batch(ts, names, values) for ts, names, values in orjson.loads(body)]


def _lock(data_dir: Path) -> int:
    """Hold an exclusive lock on the data directory for the life of the process."""
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StorageError(
            f"another domainstats server (pid {holder}) is using the data directory "
            f"{data_dir}; stop it first, or give this one another --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _connect(path: Path, fsync: str) -> sqlite3.Connection:
    """Open the database, checking it, or raise StorageError saying what to do."""
    existed = path.exists()
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if fsync == 'always' else 'NORMAL'}")
        # WAL checkpoints (which fsync the database) run in our checkpoint thread, not inside
        # a commit on the event loop.
        db.execute("PRAGMA wal_autocheckpoint=0")
        if existed:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            if verdict != "ok":
                raise sqlite3.DatabaseError(verdict)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise StorageError(
                f"{path} has schema version {version}, this server knows {SCHEMA_VERSION}: "
                "use the domainstats release that wrote it"
            )
        db.executescript(SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.Error as exc:
        raise StorageError(
            f"cannot use the database {path}: {exc}. It is damaged or not a domainstats "
            "database. Nothing was changed: move the file (and its -wal and -shm files) "
            "away to start empty, or restore it from a backup"
        ) from None
    return db


class DurableStorage:
    """MemoryStorage answers; SQLite under `data_dir` remembers. Single process per directory."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        retention: int = 25 * 3600,
        clock: Callable[[], float] = time.time,
        history: int = 90 * 86400,
        fsync: str = "normal",
        checkpoint_interval: float = 10.0,
        checkpoint_requests: int = 20000,
    ) -> None:
        if fsync not in ("normal", "always"):
            raise ValueError("fsync must be 'normal' or 'always'")
        self.retention = retention
        self.clock = clock
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_requests = checkpoint_requests
        self.memory = MemoryStorage(retention=retention, clock=clock, history=history)
        self.history = self.memory.history
        self.limits = self.memory.limits
        self.dir = Path(data_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create the data directory {self.dir}: {exc}") from None
        self._lock_fd = _lock(self.dir)
        try:
            self._db = _connect(self.dir / DB_NAME, fsync)
            self._restore()
        except BaseException:
            os.close(self._lock_fd)
            raise
        # Checkpoints always run in a thread. Commits too when they wait for the disk
        # (fsync=always); otherwise a commit is a WAL append, cheaper than a thread hop.
        self._pool = ThreadPool(1)
        self._commit_in_thread = fsync == "always"
        #: One user of the connection at a time: the writer, a checkpoint, a limits update.
        self._db_lock = Semaphore()
        self._pending: list[tuple[list[Batch], Receipt | None, AsyncResult]] = []
        self._wake = Event()
        self._writer: gevent.Greenlet | None = None
        self._last_checkpoint = time.monotonic()
        self._requests_since_checkpoint = 0
        self._closed = False

    # Recovery -------------------------------------------------------------------------

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def _restore(self) -> None:
        started = time.perf_counter()
        memory, db = self.memory, self._db
        # Domain names by id, in blocks of newline-separated names (names have no whitespace).
        names = [
            name
            for (block,) in db.execute("SELECT names FROM domains ORDER BY first_id")
            for name in block.decode().split("\n")
        ]
        memory.restore_names(names)
        self._saved_names = len(names)
        buckets = 0
        for resolution, slot, ids, counts in db.execute(
            "SELECT resolution, slot, ids, counts FROM buckets"
        ):
            values = np.frombuffer(counts, np.int64).reshape(-1, len(METRICS))
            memory.load_bucket(resolution, slot, np.frombuffer(ids, np.int64), values)
            buckets += 1
        self._log_id = self._meta("snapshot_log_id")
        replayed = 0
        for log_id, body in db.execute("SELECT id, body FROM log ORDER BY id"):
            memory.add(_decode(body))
            self._log_id = log_id
            replayed += 1
        earliest = int(self.clock()) - self.retention
        for row in db.execute(
            "SELECT key, created, digest, response FROM receipts WHERE created >= ? "
            "ORDER BY created",
            (earliest,),
        ):
            memory.add([], Receipt(*row))
        for name, *values in db.execute("SELECT * FROM limits"):
            memory.set_limits(name, Limits(*values))
        memory.requests = self._request_ring()
        memory.forget_unused()  # names of domains that left the history while we were down
        logger.info(
            "restored %d buckets, %d domains and %d logged batches from %s in %.3f s",
            buckets,
            memory.tracked_domains(),
            replayed,
            self.dir / DB_NAME,
            time.perf_counter() - started,
        )

    def _request_ring(self) -> RequestCounter:
        """Map the request-count ring, carrying counts over if the retention changed."""
        path = self.dir / REQUESTS_NAME
        span = self.memory.requests.span
        old = None
        if path.exists() and path.stat().st_size != span * 16:
            old = np.fromfile(path, np.int64).reshape(-1, 2)
            path.unlink()
        if not path.exists():
            with open(path, "wb") as f:
                np.full((span, 2), -1, np.int64).tofile(f)
        counter = RequestCounter(span, np.memmap(path, np.int64, "r+", shape=(span, 2)))
        for second, count in old if old is not None else ():
            if second >= 0:
                counter.add(int(second), int(count))
        return counter

    # Writes ---------------------------------------------------------------------------

    def add(self, batches: Sequence[Batch], receipt: Receipt | None = None) -> None:
        """Return once the batches (and receipt) are committed and applied; raise StorageError."""
        if self._closed:
            raise StorageError("the storage is closed")
        done = AsyncResult()
        self._pending.append((list(batches), receipt, done))
        self._wake.set()
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write_loop)
        done.get()

    def _write_loop(self) -> None:
        while True:
            self._wake.wait(timeout=self.checkpoint_interval)
            self._wake.clear()
            try:
                self._write_pending()
                if self._closed:
                    return
                due = time.monotonic() - self._last_checkpoint >= self.checkpoint_interval
                if due or self._requests_since_checkpoint >= self.checkpoint_requests:
                    self.checkpoint()
            except Exception:
                # Logged and retried on the next round: the writer must outlive any error.
                logger.exception("storage writer failed")

    def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            # One log row per group: the batches of every request committed together.
            row = (self._log_id + 1, _encode([b for batches, _, _ in group for b in batches]))
            receipts = [
                (r.key, r.created, r.digest, r.response) for _, r, _ in group if r is not None
            ]
            try:
                with self._db_lock:
                    if self._commit_in_thread:
                        self._pool.apply(self._commit, (row, receipts))
                    else:
                        self._commit(row, receipts)
            except Exception as exc:
                logger.exception("committing %d batches failed", len(group))
                error = StorageError(f"could not store the batch: {exc}")
                for _, _, done in group:
                    done.set_exception(error)
                continue
            self._log_id = row[0]
            self._requests_since_checkpoint += len(group)
            for batches, receipt, done in group:
                self.memory.add(batches, receipt)
                done.set(None)

    def _commit(self, row: tuple[int, bytes], receipts: list[tuple]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT INTO log (id, body) VALUES (?, ?)", row)
            db.executemany("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?)", receipts)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def checkpoint(self) -> None:
        """Write the changed buckets as rows and drop the log they cover."""
        # Taken without yielding, so the snapshot is exactly the log up to self._log_id; the
        # merging and writing happen in the thread, so the event loop keeps serving.
        now = int(self.memory.maintain())  # roll up what has just left the retention
        full = self.memory.renumbered
        if full:
            # Domains were renumbered: every name and bucket is written again, in one go.
            self.memory.renumbered = False
            self._saved_names = 0
            for resolution, buckets in self.memory.by_resolution.items():
                self.memory.dirty.update((resolution, key) for key in list(buckets))
        dirty = self.memory.take_dirty()
        names = self.memory.names
        new_names = (self._saved_names, names[self._saved_names :])
        horizon = {
            1: now - self.memory.seconds.keep,
            60: (now - self.retention) // 60,
            3600: (now - self.history) // 3600,
        }
        try:
            self._pool.apply(self._write_checkpoint, (dirty, new_names, horizon, self._log_id, now))
        except BaseException:
            # Nothing was written: the log still holds it all, and the next checkpoint must
            # write these buckets again.
            self.memory.dirty.update((res, slot) for res, slot, _ in dirty)
            raise
        self._saved_names += len(new_names[1])
        self._last_checkpoint = time.monotonic()
        self._requests_since_checkpoint = 0

    def _write_checkpoint(self, dirty, new_names, horizon, log_id, now, full=False) -> None:
        first, fresh = new_names
        rows, gone = [], []
        for resolution, slot, chunks in dirty:
            if chunks is None:
                gone.append((resolution, slot))
                continue
            ids, values = merge(chunks)
            rows.append((resolution, slot, ids.astype(np.int64).tobytes(), values.tobytes()))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if full:
                db.execute("DELETE FROM domains")
                db.execute("DELETE FROM buckets")
            if fresh:
                db.execute(
                    "INSERT OR REPLACE INTO domains VALUES (?, ?)",
                    (first, "\n".join(fresh).encode()),
                )
            db.executemany("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?, ?)", rows)
            db.executemany("DELETE FROM buckets WHERE resolution = ? AND slot = ?", gone)
            for resolution, oldest in horizon.items():
                db.execute(
                    "DELETE FROM buckets WHERE resolution = ? AND slot < ?", (resolution, oldest)
                )
            db.execute("DELETE FROM log WHERE id <= ?", (log_id,))
            db.execute("DELETE FROM receipts WHERE created < ?", (now - self.retention,))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('snapshot_log_id', ?)", (log_id,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def set_limits(self, name: str, limits: Limits | None) -> None:
        """Store (or with None, remove) the limits of a domain or of `_total`."""
        with self._db_lock:
            if limits is None:
                self._db.execute("DELETE FROM limits WHERE name = ?", (name,))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO limits VALUES (?, ?, ?, ?)",
                    (name, limits.max_rx_bitrate, limits.max_tx_bitrate, limits.max_clicks_per_s),
                )
        self.memory.set_limits(name, limits)

    def domain_stats(self, name: str) -> DomainStats | None:
        return self.memory.domain_stats(name)

    def total_rates(self) -> tuple[float, float, float]:
        return self.memory.total_rates()

    def domain_totals(self, name: str, seconds: int) -> dict[str, int]:
        return self.memory.domain_totals(name, seconds)

    def series(
        self, names: list[str], start: int, end: int, step: int, by: str
    ) -> dict[str, list[int]]:
        return self.memory.series(names, start, end, step, by)

    def step_resolution(self, start: int, step: int) -> int:
        return self.memory.step_resolution(start, step)

    def count_request(self) -> None:
        """Count one request, in the mapped ring, before the request is handled."""
        self.memory.count_request()

    # Reads and housekeeping: the memory answers --------------------------------------

    def receipt(self, key: str) -> Receipt | None:
        return self.memory.receipt(key)

    def top(self, seconds: int, limit: int, by: str, offload: Offload | None = None) -> TopResult:
        return self.memory.top(seconds, limit, by, offload)

    def summary(self, seconds: int) -> WindowSummary:
        return self.memory.summary(seconds)

    def request_count(self, seconds: int) -> int:
        return self.memory.request_count(seconds)

    def maintain(self) -> float:
        return self.memory.maintain()

    def tracked_domains(self) -> int:
        return self.memory.tracked_domains()

    def close(self) -> None:
        """Write what is pending, checkpoint, and release the database and the lock."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._writer is not None:
            self._writer.join()
        self._write_pending()
        self.checkpoint()
        self.memory.requests.ring.flush()
        self._pool.kill()
        self._db.close()
        os.close(self._lock_fd)
