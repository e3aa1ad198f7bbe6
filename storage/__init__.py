"""Storage backends behind one small protocol, chosen by URL."""

from __future__ import annotations

import time
from collections.abc import Callable

from storage.base import Storage, TopResult
from storage.memory_backend import MemoryStorage

__all__ = ["MemoryStorage", "Storage", "TopResult", "create_storage"]


def create_storage(
    url: str = "memory://", *, retention: int, clock: Callable[[], float] = time.time
) -> Storage:
    """Build the backend a storage URL names."""
    scheme = url.partition("://")[0]
    if scheme == "memory":
        return MemoryStorage(retention=retention, clock=clock)
    raise ValueError(f"unknown storage URL {url!r} (expected memory://)")
