"""The interface every storage backend offers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.model import Batch


@dataclass(frozen=True, slots=True)
class TopResult:
    """The top domains of one window: `items` sorted by value descending, then name."""

    start: int
    end: float
    items: list[tuple[str, int]]


class Storage(Protocol):
    """Keeps click buckets for `retention` seconds and answers top-N over sliding windows."""

    retention: int

    def add(self, batches: Sequence[Batch]) -> None:
        """Apply validated batches, all or nothing."""

    def top(self, seconds: int, limit: int, by: str) -> TopResult:
        """Return the `limit` domains with the most `by` in the `seconds` ending now."""

    def maintain(self) -> float:
        """Do housekeeping that must not wait for a request (expiry, windows); return now."""

    def tracked_domains(self) -> int:
        """Return how many distinct domains have data inside the retention."""

    def close(self) -> None:
        """Release resources."""
