"""The interface every storage backend offers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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
    """Totals of one window: clicks, bytes, and the domains with any traffic."""

    clicks: int
    domains: int
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass(frozen=True, slots=True)
class Receipt:
    """What an accepted request with an idempotency key was answered, kept for retries."""

    key: str
    created: int
    digest: bytes
    response: bytes


class Replayed(Exception):
    """Another process already accepted a request with this idempotency key."""

    def __init__(self, receipt: Receipt) -> None:
        super().__init__(receipt.key)
        self.receipt = receipt


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of a domain (or of all traffic); 0 means unlimited."""

    max_rx_bitrate: float = 0
    max_tx_bitrate: float = 0
    max_clicks_per_s: float = 0


@dataclass(frozen=True, slots=True)
class DomainStats:
    """A domain's totals by period and metric, current rates and peaks of the last hour."""

    totals: dict[str, dict[str, int]]
    rx_bitrate: float
    tx_bitrate: float
    clicks_per_s: float
    peak_rx_bitrate: float
    peak_tx_bitrate: float


class Storage(Protocol):
    """Keeps click buckets for `retention` seconds and answers top-N over sliding windows."""

    retention: int
    history: int

    def add(self, batches: Sequence[Batch], receipt: Receipt | None = None) -> None:
        """Apply validated batches and keep `receipt`, all or nothing, durably if durable.

        Raises Replayed, changing nothing, when `receipt`'s key was kept meanwhile elsewhere.
        """

    def receipt(self, key: str) -> Receipt | None:
        """Return the receipt kept for an idempotency key."""

    def top(self, seconds: int, limit: int, by: str, offload: Offload | None = None) -> TopResult:
        """Return the `limit` domains with the most `by` in the `seconds` ending now.

        `offload`, when given, runs the expensive ranking (so it need not hold the event loop).
        """

    def summary(self, seconds: int) -> WindowSummary:
        """Return the clicks and distinct domains in the `seconds` ending now."""

    def domain_stats(self, name: str) -> DomainStats | None:
        """Return a domain's totals, rates and peaks, or None if it has no data."""

    def total_rates(self) -> tuple[float, float, float]:
        """Return all traffic's (rx bit/s, tx bit/s, clicks/s) now."""

    def domain_totals(self, name: str, seconds: int) -> dict[str, int]:
        """Return one domain's clicks and bytes over the `seconds` ending now."""

    limits: dict[str, Limits]

    def set_limits(self, name: str, limits: Limits | None) -> None:
        """Set or remove (None) the limits of a domain or of `_total`, durably if durable."""

    def series(
        self, names: list[str], start: int, end: int, step: int, by: str
    ) -> dict[str, list[int]]:
        """Return per-step sums of `by` for each domain from `start` to `end`."""

    def step_resolution(self, start: int, step: int) -> int:
        """Return the bucket width serving `step` from `start`; ValueError says why not."""

    def count_request(self) -> None:
        """Count one HTTP request received now (durably if durable)."""

    def request_count(self, seconds: int) -> int:
        """Return the HTTP requests received in the `seconds` ending now."""

    def maintain(self) -> float:
        """Do housekeeping that must not wait for a request (expiry, windows); return now."""

    def tracked_domains(self) -> int:
        """Return how many distinct domains are known."""

    def close(self) -> None:
        """Flush and release resources."""


@runtime_checkable
class Coordinator(Protocol):
    """What lets many server processes share one storage: a lease and shared values."""

    def lead(self, name: str, seconds: float) -> bool:
        """Take or keep the lease `name` for `seconds`; True while this process holds it."""

    def publish(self, name: str, value: bytes, seconds: float) -> None:
        """Share `value` with the other processes for `seconds`."""

    def fetch(self, names: Sequence[str]) -> list[bytes | None]:
        """Return what was shared under `names` (None where nothing is)."""
