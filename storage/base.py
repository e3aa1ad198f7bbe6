"""The interface every storage backend offers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from core.model import Batch

#: Runs `func(*args)` somewhere else and returns its result: `ThreadPool.apply`, say.
Offload = Callable[[Callable[..., Any], tuple], Any]


class StorageError(Exception):
    """The storage cannot do what was asked; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class TopResult:
    """The top domains of one window: `items` sorted by value descending, then name."""

    start: int
    end: float
    items: list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """Totals of one window."""

    clicks: int
    domains: int


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an accepted request with an idempotency key was answered, kept for retries."""

    key: str
    created: int
    digest: bytes
    response: bytes


class Storage(Protocol):
    """Keeps click buckets for `retention` seconds and answers top-N over sliding windows."""

    retention: int

    def add(self, batches: Sequence[Batch], receipt: Receipt | None = None) -> None:
        """Apply validated batches and keep `receipt`, all or nothing, durably if durable."""

    def receipt(self, key: str) -> Receipt | None:
        """Return the receipt kept for an idempotency key."""

    def top(self, seconds: int, limit: int, by: str, offload: Offload | None = None) -> TopResult:
        """Return the `limit` domains with the most `by` in the `seconds` ending now.

        `offload`, when given, runs the expensive ranking (so it need not hold the event loop).
        """

    def summary(self, seconds: int) -> WindowSummary:
        """Return the clicks and distinct domains in the `seconds` ending now."""

    def count_request(self) -> None:
        """Count one HTTP request received now (durably if durable)."""

    def request_count(self, seconds: int) -> int:
        """Return the HTTP requests received in the `seconds` ending now."""

    def maintain(self) -> float:
        """Do housekeeping that must not wait for a request (expiry, windows); return now."""

    def tracked_domains(self) -> int:
        """Return how many distinct domains have data inside the retention."""

    def close(self) -> None:
        """Flush and release resources."""
