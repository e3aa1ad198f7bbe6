"""The data model: metrics, click batches and the time windows the service answers for."""

from __future__ import annotations

from dataclasses import dataclass

#: Counters kept per domain and time bucket, in storage order.
METRICS: tuple[str, ...] = ("clicks", "bytes_in", "bytes_out")

#: Largest count accepted for one domain in one batch (the largest integer a browser keeps exact).
MAX_COUNT = 2**53 - 1


@dataclass(frozen=True, slots=True)
class Batch:
    """Counts for many domains at one Unix second; `values` is flat: clicks, bytes_in, bytes_out."""

    timestamp: int
    domains: list[str]
    values: list[int]

    def __len__(self) -> int:
        return len(self.domains)


@dataclass(frozen=True, slots=True)
class Period:
    """A named sliding window ending now."""

    name: str
    seconds: int
    aliases: tuple[str, ...] = ()


PERIODS: tuple[Period, ...] = (
    Period("min", 60, ("minute", "1m")),
    Period("hour", 3600, ("1h",)),
    Period("day", 86400, ("24h", "1d")),
)

PERIOD_BY_NAME: dict[str, Period] = {
    name: period for period in PERIODS for name in (period.name, *period.aliases)
}
