"""Storage backends behind one small protocol, chosen by URL."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from storage.base import (
    DomainStats,
    Limits,
    Receipt,
    Replayed,
    Storage,
    StorageError,
    TopResult,
    WindowSummary,
)
from storage.memory_backend import MemoryStorage
from storage.redis_backend import RedisStorage
from storage.sqlite_backend import DurableStorage

__all__ = [
    "DomainStats",
    "DurableStorage",
    "Limits",
    "MemoryStorage",
    "Receipt",
    "RedisStorage",
    "Replayed",
    "Storage",
    "StorageError",
    "TopResult",
    "WindowSummary",
    "create_storage",
]


def create_storage(
    url: str,
    *,
    retention: int,
    clock: Callable[[], float] = time.time,
    data_dir: str | Path = "./data",
    fsync: str = "normal",
    history: int = 90 * 86400,
) -> Storage:
    """Build the backend a storage URL names: `sqlite://` (in `data_dir`), `memory://`, or
    `redis://`, `rediss://`, `redis+cluster://`, `rediss+cluster://`."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite":
        return DurableStorage(
            rest or data_dir, retention=retention, clock=clock, history=history, fsync=fsync
        )
    if scheme == "memory":
        return MemoryStorage(retention=retention, clock=clock, history=history)
    if scheme.partition("+")[0] in ("redis", "rediss"):
        return RedisStorage(url, retention=retention, clock=clock, history=history)
    raise ValueError(
        f"unknown storage URL {url!r} (expected sqlite://, memory:// or redis://host:port/db)"
    )
