"""The in-memory store made durable: a SQLite log of batches, compacted into bucket rows.

A batch is answered only after its log row is committed; a writer greenlet groups the batches
of concurrent requests into one transaction. Every `checkpoint_interval` the buckets changed
since the last checkpoint are written as rows and the log they cover is deleted, so recovery
reads at most the retention's buckets plus a few seconds of log, however long the server ran.

HTTP request counts go to an append-only file (a 4-byte second per request, written before
the request is handled) and are folded into a table at each checkpoint.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import gevent
import numpy as np
import orjson
from gevent.event import AsyncResult, Event
from gevent.threadpool import ThreadPool

from core.model import METRICS, Batch
from storage.base import Receipt, StorageError, TopResult, WindowSummary
from storage.memory_backend import MemoryStorage

logger = logging.getLogger(__name__)

DB_NAME = "domainstats.sqlite3"
LOCK_NAME = "domainstats.lock"
SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS log (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS buckets (
    resolution INTEGER NOT NULL, slot INTEGER NOT NULL, names BLOB NOT NULL,
    counts BLOB NOT NULL, PRIMARY KEY (resolution, slot)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS receipts (
    key TEXT PRIMARY KEY, created INTEGER NOT NULL, digest BLOB NOT NULL,
    response BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS receipts_created ON receipts (created);
CREATE TABLE IF NOT EXISTS requests (second INTEGER PRIMARY KEY, count INTEGER NOT NULL);
"""
_SECOND = struct.Struct("<I")


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
        fsync: str = "normal",
        checkpoint_interval: float = 10.0,
        checkpoint_rows: int = 20000,
    ) -> None:
        if fsync not in ("normal", "always"):
            raise ValueError("fsync must be 'normal' or 'always'")
        self.retention = retention
        self.clock = clock
        self.checkpoint_interval = checkpoint_interval
        self.checkpoint_rows = checkpoint_rows
        self.memory = MemoryStorage(retention=retention, clock=clock)
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
        self._pool = ThreadPool(1)
        self._pending: list[tuple[list[Batch], Receipt | None, AsyncResult]] = []
        self._wake = Event()
        self._writer: gevent.Greenlet | None = None
        self._last_checkpoint = time.monotonic()
        self._rows_since_checkpoint = 0
        self._closed = False

    # Recovery -------------------------------------------------------------------------

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def _restore(self) -> None:
        started = time.perf_counter()
        memory, db = self.memory, self._db
        buckets = 0
        for resolution, slot, names, counts in db.execute(
            "SELECT resolution, slot, names, counts FROM buckets"
        ):
            values = np.frombuffer(counts, np.int64).reshape(-1, len(METRICS))
            memory.load_bucket(resolution, slot, names.decode().split("\n"), values)
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
        for second, count in db.execute(
            "SELECT second, count FROM requests WHERE second >= ?", (earliest,)
        ):
            memory.requests.add(second, count)
        self._request_seq = self._meta("requests_seq")
        for path in sorted(self.dir.glob("requests-*.log")):
            seq = int(path.stem.partition("-")[2])
            if seq < self._request_seq:
                path.unlink()  # folded by a checkpoint that committed before a crash
                continue
            data = path.read_bytes()
            usable = len(data) - len(data) % _SECOND.size  # a torn last write is dropped
            for (second,) in _SECOND.iter_unpack(data[:usable]):
                memory.requests.add(second)
            self._request_seq = max(self._request_seq, seq)
        memory.requests.dirty.clear()
        self._request_seq += 1
        self._requests_fd = self._open_request_log(self._request_seq)
        logger.info(
            "restored %d buckets, %d domains and %d logged batches from %s in %.3f s",
            buckets,
            memory.tracked_domains(),
            replayed,
            self.dir / DB_NAME,
            time.perf_counter() - started,
        )

    def _open_request_log(self, seq: int) -> int:
        path = self.dir / f"requests-{seq:08d}.log"
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

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
                if due or self._rows_since_checkpoint >= self.checkpoint_rows:
                    self.checkpoint()
            except Exception:
                # Logged and retried on the next round: the writer must outlive any error.
                logger.exception("storage writer failed")

    def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            first = self._log_id + 1
            rows = [(first + i, _encode(batches)) for i, (batches, _, _) in enumerate(group)]
            receipts = [
                (r.key, r.created, r.digest, r.response) for _, r, _ in group if r is not None
            ]
            try:
                self._pool.apply(self._commit, (rows, receipts))
            except Exception as exc:
                logger.exception("committing %d batches failed", len(group))
                error = StorageError(f"could not store the batch: {exc}")
                for _, _, done in group:
                    done.set_exception(error)
                continue
            self._log_id = rows[-1][0]
            self._rows_since_checkpoint += len(rows)
            for batches, receipt, done in group:
                self.memory.add(batches, receipt)
                done.set(None)

    def _commit(self, rows: list[tuple[int, bytes]], receipts: list[tuple]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO log (id, body) VALUES (?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO receipts VALUES (?, ?, ?, ?)", receipts)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def checkpoint(self) -> None:
        """Write changed buckets and request counts as rows and drop the log they cover."""
        # Taken without yielding, so the snapshot is exactly the log up to self._log_id and
        # the request counts up to the file being closed.
        now = self.clock()
        dirty = self.memory.take_dirty()
        requests = self.memory.requests
        counts = [(second, requests.get(second)) for second in sorted(requests.dirty)]
        requests.dirty.clear()
        old_fd = self._requests_fd
        self._request_seq += 1
        self._requests_fd = self._open_request_log(self._request_seq)
        os.close(old_fd)
        log_id = self._log_id
        upserts = [
            (res, slot, "\n".join(names).encode(), values.tobytes())
            for res, slot, names, values in dirty
            if names is not None
        ]
        deletes = [(res, slot) for res, slot, names, _ in dirty if names is None]
        horizon = {1: int(now) - self.memory.seconds.keep, 60: (int(now) - self.retention) // 60}
        try:
            self._pool.apply(
                self._write_checkpoint,
                (upserts, deletes, horizon, counts, log_id, self._request_seq, int(now)),
            )
        except BaseException:
            # Nothing was written: the log and the old request files still hold it all, and
            # the next checkpoint must write these buckets and counts again.
            self.memory.dirty.update((res, slot) for res, slot, _, _ in dirty)
            requests.dirty.update(second for second, _ in counts)
            raise
        for path in self.dir.glob("requests-*.log"):
            if int(path.stem.partition("-")[2]) < self._request_seq:
                path.unlink()
        self._last_checkpoint = time.monotonic()
        self._rows_since_checkpoint = 0

    def _write_checkpoint(self, upserts, deletes, horizon, counts, log_id, seq, now) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?, ?)", upserts)
            db.executemany("DELETE FROM buckets WHERE resolution = ? AND slot = ?", deletes)
            for resolution, oldest in horizon.items():
                db.execute(
                    "DELETE FROM buckets WHERE resolution = ? AND slot < ?", (resolution, oldest)
                )
            db.execute("DELETE FROM log WHERE id <= ?", (log_id,))
            db.executemany("INSERT OR REPLACE INTO requests VALUES (?, ?)", counts)
            db.execute("DELETE FROM requests WHERE second < ?", (now - self.retention,))
            db.execute("DELETE FROM receipts WHERE created < ?", (now - self.retention,))
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("snapshot_log_id", log_id), ("requests_seq", seq)],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def count_request(self) -> None:
        """Count one request: appended to the request log before the request is handled."""
        second = int(self.clock())
        os.write(self._requests_fd, _SECOND.pack(second))
        self.memory.requests.add(second)

    # Reads and housekeeping: the memory answers --------------------------------------

    def receipt(self, key: str) -> Receipt | None:
        return self.memory.receipt(key)

    def top(self, seconds: int, limit: int, by: str) -> TopResult:
        return self.memory.top(seconds, limit, by)

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
        os.close(self._requests_fd)
        self._pool.kill()
        self._db.close()
        os.close(self._lock_fd)
