"""In-memory time buckets on cachetools, with running totals for the standard windows."""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

import numpy as np
from cachetools import TLRUCache

from core.model import METRICS, PERIODS, Batch
from storage.base import DomainStats, Limits, Offload, Receipt, TopResult, WindowSummary

logger = logging.getLogger(__name__)

#: How far back 1-second buckets reach; longer windows use 60-second buckets.
SECOND_SPAN = 600
MINUTE = 60
HOUR = 3600
#: Rates (bit/s, clicks/s) are averages over this many seconds.
RATE_SPAN = 10
#: How far ahead of the clock a timestamp may lie.
FUTURE = 300

_NO_IDS = np.zeros(0, np.intp)
_NO_VALUES = np.zeros((0, len(METRICS)), np.int64)


def merge(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum (ids, values) chunks, each holding an id at most once, into one such chunk,
    ids ascending (so one id is found with `searchsorted`)."""
    if not parts:
        return _NO_IDS, _NO_VALUES
    if len(parts) == 1:
        ids, values = parts[0]
        if len(ids) < 2 or bool(np.all(ids[1:] > ids[:-1])):
            return parts[0]
        order = np.argsort(ids)
        return ids[order], values[order]
    ids = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    unique, inverse = np.unique(ids, return_inverse=True)
    summed = np.zeros((len(unique), values.shape[1]), np.int64)
    np.add.at(summed, inverse, values)
    return unique, summed


class Bucket:
    """Per-domain counts of one time slot: new chunks are appended, merged once they pile up."""

    __slots__ = ("_parts", "_pending", "_merged")
    #: Unmerged rows allowed beyond the merged size, so merging costs O(log n) a row.
    SLACK = 65536

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending = 0
        self._merged = 0

    def add(self, ids: np.ndarray, values: np.ndarray) -> None:
        """Append a chunk (each id at most once); merge when unmerged rows pile up."""
        self._parts.append((ids, values))
        self._pending += len(ids)
        if self._pending > self._merged + self.SLACK:
            self.arrays()

    def renumber(self, remap: np.ndarray) -> None:
        """Give every domain id its new number (`remap` keeps the order, so ids stay sorted)."""
        ids, values = self.arrays()
        self._parts = [(remap[ids], values)]

    def chunks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return the chunks as they are now; merging them later gives this slot's counts."""
        return list(self._parts)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the merged (ids, values) of this slot."""
        self._parts = [merge(self._parts)]
        self._pending = 0
        self._merged = len(self._parts[0][0])
        return self._parts[0]


class _Buckets(TLRUCache):
    """Buckets by slot number, each expiring `keep` seconds after its slot ends (event time)."""

    def __init__(
        self,
        resolution: int,
        keep: int,
        clock: Callable[[], float],
        on_expire: Callable[[_Buckets, int, Bucket], None],
    ) -> None:
        self.resolution = resolution
        self.keep = keep
        self._on_expire = on_expire
        slots = (keep + FUTURE) // resolution + 2
        super().__init__(maxsize=slots, ttu=self._expires, timer=clock)

    def _expires(self, key: int, _value: Bucket, _now: float) -> float:
        return (key + 1) * self.resolution + self.keep

    def expire(self, time: float | None = None) -> list[tuple[int, Bucket]]:
        expired = super().expire(time)
        for key, bucket in expired:
            self._on_expire(self, key, bucket)
        return expired

    def bucket_for(self, key: int, now: float) -> Bucket | None:
        """Return the bucket of slot `key`, creating it, or None when the slot has expired."""
        bucket = self.get(key)
        if bucket is None:
            if self._expires(key, None, now) <= now:
                return None
            bucket = self[key] = Bucket()
        return bucket


class _Window:
    """Running per-domain totals over the newest `span` slots of one bucket series."""

    def __init__(self, seconds: int, buckets: _Buckets, capacity: int) -> None:
        self.seconds = seconds
        self.buckets = buckets
        self.span = max(1, math.ceil(seconds / buckets.resolution))
        self.first = 0
        self.last = -1
        # Metric-major, so that one metric of all domains is contiguous for ranking.
        self.totals = np.zeros((len(METRICS), capacity), np.int64)

    def covers(self, key: int) -> bool:
        return self.first <= key <= self.last

    def add(self, ids: np.ndarray, values: np.ndarray, sign: int = 1) -> None:
        np.add.at(self.totals.T, ids, values if sign > 0 else -values)

    def grow(self, capacity: int) -> None:
        extra = np.zeros((len(METRICS), capacity - self.totals.shape[1]), np.int64)
        self.totals = np.concatenate([self.totals, extra], axis=1)

    def advance(self, now: float) -> None:
        """Move the window to end with the slot holding `now`, adding and dropping slots."""
        last = int(now) // self.buckets.resolution
        first = last - self.span + 1
        if last == self.last:
            return
        if first > self.last or last < self.last:
            # A jump past the whole window (or a clock stepped back): start over.
            self.totals[:] = 0
            self._apply(range(first, last + 1), 1)
        else:
            self._apply(range(self.first, first), -1)
            self._apply(range(self.last + 1, last + 1), 1)
        self.first, self.last = first, last

    def _apply(self, keys: Iterable[int], sign: int) -> None:
        for key in keys:
            bucket = self.buckets.get(key)
            if bucket is not None:
                self.add(*bucket.arrays(), sign=sign)


def name_key(name: str) -> int:
    """Return a number that orders like the name's first 8 bytes (names are ASCII)."""
    return int.from_bytes(name[:8].encode().ljust(8, b"\0"), "big")


def top_items(
    values: np.ndarray,
    limit: int,
    names: list[str],
    keys: np.ndarray,
    ids: np.ndarray | None = None,
) -> list[tuple[str, int]]:
    """Pick the `limit` largest positive values, ties broken by name, as (name, value) pairs.

    `values[p]` belongs to domain `ids[p]` (or `p` without ids), whose `name_key` is in `keys`.
    Costs O(len(values)) in numpy, plus the names of the ties at the cut that share a key.
    """
    if len(values) > limit:
        cut = len(values) - limit
        pos = np.argpartition(values, cut)[cut:]
        kth = values[pos].min()
        if kth > 0 and np.count_nonzero(values == kth) > np.count_nonzero(values[pos] == kth):
            # Ties at the cut reach outside the chosen ones: take the first names among them.
            ties = np.flatnonzero(values == kth)
            pos = pos[values[pos] > kth]
            room = limit - len(pos)
            tie_keys = keys[ties if ids is None else ids[ties]]
            last = np.partition(tie_keys, room - 1)[room - 1]
            ties = ties[tie_keys <= last]  # every name that can come first, and a few more
            name = names.__getitem__ if ids is None else (lambda p: names[ids[p]])
            ties = np.array(heapq.nsmallest(room, ties.tolist(), key=name), np.intp)
            pos = np.concatenate([pos, ties])
    else:
        pos = np.arange(len(values))
    pos = pos[values[pos] > 0]
    domain_ids = ids[pos] if ids is not None else pos
    items = [(names[i], v) for i, v in zip(domain_ids.tolist(), values[pos].tolist(), strict=True)]
    items.sort(key=lambda item: (-item[1], item[0]))
    return items


def step_resolution(now: int, start: int, step: int, retention: int, seconds_kept: int) -> int:
    """Return the bucket width serving steps of `step` from `start`, or raise ValueError."""
    if step % HOUR == 0 and start < now - retention:
        return HOUR
    if start < now - retention:
        raise ValueError(
            f"the range starts before the {retention} s kept per minute: "
            "use a step of whole hours to read the hourly roll-ups"
        )
    if step % MINUTE == 0:
        return MINUTE
    if start <= now - seconds_kept:
        raise ValueError(f"steps that are not whole minutes reach back {seconds_kept} s at most")
    return 1


def rates(clicks: float, bytes_in: float, bytes_out: float) -> tuple[float, float, float]:
    """Return (rx bit/s, tx bit/s, clicks/s) from the counts of the last RATE_SPAN seconds."""
    return bytes_in * 8 / RATE_SPAN, bytes_out * 8 / RATE_SPAN, clicks / RATE_SPAN


def stats_from_counts(
    totals: dict[str, dict[str, int]],
    clicks: float,
    bytes_in: float,
    bytes_out: float,
    peak_in: float,
    peak_out: float,
) -> DomainStats:
    """A domain's stats from its totals, its counts of the last RATE_SPAN seconds and the
    largest byte counts seen over RATE_SPAN in the last hour."""
    rx, tx, per_second = rates(clicks, bytes_in, bytes_out)
    peak_rx, peak_tx, _ = rates(0, peak_in, peak_out)
    return DomainStats(totals, rx, tx, per_second, peak_rx, peak_tx)


class RequestCounter:
    """HTTP requests per second of arrival, for the last `span` seconds, in a ring.

    The ring is a (span, 2) int64 array of (second, count) rows: plain memory, or a shared
    memory map of a file, which makes every count survive a kill -9 without a system call.
    """

    def __init__(self, span: int, ring: np.ndarray | None = None) -> None:
        self.span = span
        self.ring = np.zeros((span, 2), np.int64) if ring is None else ring
        if ring is None:
            self.ring[:, 0] = -1
        self._stamps = self.ring[:, 0]
        self._counts = self.ring[:, 1]

    def add(self, second: int, count: int = 1) -> None:
        """Count `count` requests at `second`."""
        i = second % self.span
        if self._stamps[i] == second:
            self._counts[i] += count
        else:
            # Count before stamp: a crash in between leaves a stale slot, never a wrong one.
            self._counts[i] = count
            self._stamps[i] = second

    def total(self, now: float, seconds: int) -> int:
        """Return the requests in the `seconds` ending with the second holding `now`."""
        last = int(now)
        inside = (self._stamps > last - seconds) & (self._stamps <= last)
        return int(self._counts[inside].sum())


class MemoryStorage:
    """Buckets in memory: 1-second slots for the last 10 minutes, 60-second slots for the retention.

    Not thread-safe: under gevent every call runs to completion without yielding.
    """

    def __init__(
        self,
        retention: int = 25 * 3600,
        clock: Callable[[], float] = time.time,
        history: int = 90 * 86400,
    ) -> None:
        self.retention = retention
        self.history = max(history, retention)
        self.clock = clock
        self._names: list[str] = []
        self._ids: dict[str, int] = {}
        self._capacity = 1024
        self._keys = np.zeros(self._capacity, np.uint64)
        self.seconds = _Buckets(1, min(SECOND_SPAN, retention), clock, self._expired)
        self.minutes = _Buckets(MINUTE, retention, clock, self._expired)
        #: Hourly roll-ups of what left the minute buckets, kept for the history.
        self.hours = _Buckets(HOUR, self.history, clock, self._expired)
        self.by_resolution = {1: self.seconds, MINUTE: self.minutes, HOUR: self.hours}
        self.windows = [
            _Window(p.seconds, self.seconds if p.seconds <= SECOND_SPAN else self.minutes, 1024)
            for p in PERIODS
        ]
        self.rates = _Window(RATE_SPAN, self.seconds, 1024)
        self.windows.append(self.rates)
        #: Per minute: (ids, peak bytes in, peak bytes out) over RATE_SPAN seen in that minute.
        self._peaks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._peak_second = -1
        self.limits: dict[str, Limits] = {}
        #: Set when `forget_unused` renumbered the domains (a durable copy must be rewritten).
        self.renumbered = False
        self._next_forget = clock() + HOUR
        #: (resolution, slot) of buckets changed since the last `take_dirty`.
        self.dirty: set[tuple[int, int]] = set()
        self.requests = RequestCounter(retention)
        self._receipts: OrderedDict[str, Receipt] = OrderedDict()

    def _expired(self, buckets: _Buckets, key: int, bucket: Bucket) -> None:
        # Only when the retention is shorter than a window: drop what leaves the retention.
        for window in self.windows:
            if window.buckets is buckets and window.covers(key):
                window.add(*bucket.arrays(), sign=-1)
        if buckets is self.minutes:
            self._roll_up(key * MINUTE, *bucket.arrays())

    def _roll_up(self, timestamp: int, ids: np.ndarray, values: np.ndarray) -> None:
        """Add counts older than the retention to their hourly roll-up."""
        hour = timestamp // HOUR
        rollup = self.hours.bucket_for(hour, self.clock())
        if rollup is not None and len(ids):
            rollup.add(ids, values)
            self.dirty.add((HOUR, hour))

    def _domain_ids(self, names: list[str]) -> np.ndarray:
        ids = self._ids
        out = list(map(ids.get, names))
        if None in out:
            fresh = []
            for at, name in enumerate(names):
                if out[at] is None:
                    out[at] = ids[name] = len(self._names)
                    self._names.append(name)
                    fresh.append(name)
            if len(self._names) > self._capacity:
                self._capacity = max(len(self._names), self._capacity * 3 // 2)
                for window in self.windows:
                    window.grow(self._capacity)
                self._keys = np.concatenate(
                    [self._keys, np.zeros(self._capacity - len(self._keys), np.uint64)]
                )
            first = len(self._names) - len(fresh)
            self._keys[first : len(self._names)] = [name_key(n) for n in fresh]
        return np.array(out, np.intp)

    def add(self, batches: Sequence[Batch], receipt: Receipt | None = None) -> None:
        """Apply validated batches (timestamps inside the retention) and remember `receipt`."""
        now = self.clock()
        for batch in batches:
            if batch.domains:
                ids = self._domain_ids(batch.domains)
                values = np.array(batch.values, np.int64).reshape(-1, len(METRICS))
                self._add(batch.timestamp, ids, values, now)
        if receipt is not None:
            self._receipts[receipt.key] = receipt

    def _add(self, timestamp: int, ids: np.ndarray, values: np.ndarray, now: float) -> None:
        for buckets in (self.seconds, self.minutes):
            key = timestamp // buckets.resolution
            bucket = buckets.bucket_for(key, now)
            if bucket is None:
                if buckets is self.minutes:
                    self._roll_up(timestamp, ids, values)  # older than the retention
                continue
            bucket.add(ids, values)
            self.dirty.add((buckets.resolution, key))
            for window in self.windows:
                if window.buckets is buckets and window.covers(key):
                    window.add(ids, values)

    @property
    def names(self) -> list[str]:
        """Domain names by id (append-only: a reader in another thread may keep it)."""
        return self._names

    def restore_names(self, names: list[str]) -> None:
        """Give ids 0.. to `names` (from a snapshot), before anything else is added."""
        assert not self._names, "names are restored first"
        self._domain_ids(names)

    def load_bucket(self, resolution: int, slot: int, ids: np.ndarray, values: np.ndarray) -> None:
        """Restore one bucket (from a snapshot) without marking it changed."""
        bucket = self.by_resolution[resolution].bucket_for(slot, self.clock())
        if bucket is not None and len(ids):
            bucket.add(ids, values)
        elif resolution == MINUTE:
            # Expired while the server was down, before a checkpoint recorded its roll-up.
            self._roll_up(slot * MINUTE, ids, values)

    def take_dirty(self) -> list[tuple[int, int, list[tuple[np.ndarray, np.ndarray]] | None]]:
        """Return the buckets changed since the last call as (resolution, slot, chunks).

        The chunks are a snapshot (see `merge`); a bucket that has expired since it changed
        comes with None.
        """
        out = []
        for resolution, slot in sorted(self.dirty):
            bucket = self.by_resolution[resolution].get(slot)
            out.append((resolution, slot, None if bucket is None else bucket.chunks()))
        self.dirty.clear()
        return out

    def receipt(self, key: str) -> Receipt | None:
        """Return the receipt of an accepted request with this idempotency key, if any."""
        return self._receipts.get(key)

    def count_request(self) -> None:
        """Count one HTTP request, now."""
        self.requests.add(int(self.clock()))

    def request_count(self, seconds: int) -> int:
        """Return the HTTP requests received in the `seconds` ending now."""
        return self.requests.total(self.clock(), seconds)

    def _window_values(self, seconds: int) -> tuple[int, float, np.ndarray, np.ndarray | None]:
        """Return (start, now, per-domain values, their ids or None for all domains)."""
        now = self._sync()
        if seconds > self.retention:
            # Hourly roll-ups for what left the minute buckets, the minute buckets for the rest.
            last = int(now) // HOUR
            first = last - math.ceil(seconds / HOUR) + 1
            start = first * HOUR
            parts = self._parts(self.hours, first, last)
            parts += self._parts(self.minutes, start // MINUTE, int(now) // MINUTE)
            ids, values = merge(parts)
            return start, now, values, ids
        buckets = self.seconds if seconds <= self.seconds.keep else self.minutes
        span = max(1, math.ceil(seconds / buckets.resolution))
        last = int(now) // buckets.resolution
        start = (last - span + 1) * buckets.resolution
        for window in self.windows:
            if window.buckets is buckets and window.span == span:
                return start, now, window.totals[:, : len(self._names)].T, None
        ids, values = merge(self._parts(buckets, last - span + 1, last))
        return start, now, values, ids

    @staticmethod
    def _parts(buckets: _Buckets, first: int, last: int) -> list[tuple[np.ndarray, np.ndarray]]:
        return [b.arrays() for k in range(first, last + 1) if (b := buckets.get(k))]

    def top(self, seconds: int, limit: int, by: str, offload: Offload | None = None) -> TopResult:
        """Return the top `limit` domains by `by` over the `seconds` ending now.

        With `offload` (a thread pool's `apply`, say) the ranking runs there, on a copy.
        """
        start, now, values, ids = self._window_values(seconds)
        column = values[:, METRICS.index(by)]
        if offload is None:
            items = top_items(column, limit, self._names, self._keys, ids)
        else:
            items = offload(top_items, (column.copy(), limit, self._names, self._keys, ids))
        return TopResult(start, now, items)

    def domain_totals(self, name: str, seconds: int) -> dict[str, int]:
        """Return one domain's clicks and bytes over the `seconds` ending now."""
        i = self._ids.get(name)
        if i is None:
            return dict.fromkeys(METRICS, 0)
        _, _, values, ids = self._window_values(seconds)
        if ids is not None:
            at = int(np.searchsorted(ids, i))
            if at >= len(ids) or ids[at] != i:
                return dict.fromkeys(METRICS, 0)
            i = at
        return dict(zip(METRICS, values[i].tolist(), strict=True))

    def summary(self, seconds: int) -> WindowSummary:
        """Return the clicks and the distinct active domains of the `seconds` ending now."""
        _, _, values, _ = self._window_values(seconds)
        clicks, bytes_in, bytes_out = values.sum(axis=0).tolist()
        return WindowSummary(clicks, int(np.count_nonzero(values.any(axis=1))), bytes_in, bytes_out)

    def maintain(self) -> float:
        """Expire old buckets and receipts, move the windows, sample peaks; return now."""
        now = self._current_rates()
        if now >= self._next_forget:
            self._next_forget = now + HOUR
            self.forget_unused()
        receipts = self._receipts
        while receipts and next(iter(receipts.values())).created < now - self.retention:
            receipts.popitem(last=False)
        return now

    def _current_rates(self) -> float:
        """Move the windows and sample peaks, without the housekeeping of `maintain`."""
        now = self._sync()
        self._sample_peaks(now)
        return now

    def _sync(self) -> float:
        now = self.clock()
        self.seconds.expire(now)
        self.minutes.expire(now)
        self.hours.expire(now)
        for window in self.windows:
            window.advance(now)
        return now

    # Rates, peaks, limits ------------------------------------------------------------------

    def _sample_peaks(self, now: float) -> None:
        """Fold the current per-domain rates into this minute's peaks (once a second)."""
        second = int(now)
        if second == self._peak_second:
            return
        self._peak_second = second
        n = len(self._names)
        bytes_in, bytes_out = self.rates.totals[1, :n], self.rates.totals[2, :n]
        active = np.flatnonzero(bytes_in | bytes_out)
        minute = second // MINUTE
        sample = (active, bytes_in[active], bytes_out[active])
        seen = self._peaks.get(minute)
        if seen is not None:
            ids = np.union1d(seen[0], active)
            merged = (ids, np.zeros(len(ids), np.int64), np.zeros(len(ids), np.int64))
            for part in (seen, sample):
                at = np.searchsorted(ids, part[0])
                for column in (1, 2):
                    np.maximum.at(merged[column], at, part[column])
            sample = merged
        self._peaks[minute] = sample
        for old in [m for m in self._peaks if m <= minute - 60]:
            del self._peaks[old]

    def domain_stats(self, name: str) -> DomainStats | None:
        """Return a domain's totals, rates and peaks, or None if it has no data."""
        i = self._ids.get(name)
        if i is None:
            return None
        self._current_rates()
        totals = {
            period.name: dict(zip(METRICS, window.totals[:, i].tolist(), strict=True))
            for period, window in zip(PERIODS, self.windows, strict=False)
        }
        clicks, bytes_in, bytes_out = self.rates.totals[:, i].tolist()
        peak_in = peak_out = 0
        for ids, peaks_in, peaks_out in self._peaks.values():
            at = np.searchsorted(ids, i)
            if at < len(ids) and ids[at] == i:
                peak_in = max(peak_in, int(peaks_in[at]))
                peak_out = max(peak_out, int(peaks_out[at]))
        return stats_from_counts(totals, clicks, bytes_in, bytes_out, peak_in, peak_out)

    def total_rates(self) -> tuple[float, float, float]:
        """Return all traffic's (rx bit/s, tx bit/s, clicks/s) over the rate span."""
        self._current_rates()
        clicks, bytes_in, bytes_out = self.rates.totals.sum(axis=1).tolist()
        return rates(clicks, bytes_in, bytes_out)

    def set_limits(self, name: str, limits: Limits | None) -> None:
        """Set (or with None, remove) the limits of a domain or of `_total`."""
        if limits is None:
            self.limits.pop(name, None)
        else:
            self.limits[name] = limits

    # Time series ------------------------------------------------------------------------

    def series(
        self, names: list[str], start: int, end: int, step: int, by: str
    ) -> dict[str, list[int]]:
        """Per-step sums of `by` for each domain, steps from `start` (aligned) up to `end`.

        The caller chooses a step the buckets can serve (see `step_resolution`).
        """
        self._sync()
        column = METRICS.index(by)
        resolution = self.step_resolution(start, step)
        count = (end - start) // step + 1
        out = {name: [0] * count for name in names}
        wanted = [(name, i) for name in names if (i := self._ids.get(name)) is not None]
        if not wanted:
            return out
        ids_wanted = np.array([i for _, i in wanted], np.intp)
        sources = [self.by_resolution[resolution]]
        if resolution == HOUR:
            sources.append(self.minutes)  # the hours not yet rolled up
        for buckets in sources:
            width = buckets.resolution
            for slot in range(start // width, (start + count * step - 1) // width + 1):
                bucket = buckets.get(slot)
                if bucket is None:
                    continue
                ids, values = bucket.arrays()
                at = np.searchsorted(ids, ids_wanted).clip(max=max(len(ids) - 1, 0))
                found = (ids[at] == ids_wanted) if len(ids) else np.zeros(len(at), bool)
                point = (slot * width - start) // step
                for (name, _), hit, position in zip(wanted, found, at, strict=True):
                    if hit:
                        out[name][point] += int(values[position, column])
        return out

    def step_resolution(self, start: int, step: int) -> int:
        """Return the bucket width that serves steps of `step` from `start`, or raise ValueError."""
        return step_resolution(int(self.clock()), start, step, self.retention, self.seconds.keep)

    def forget_unused(self, min_share: float = 0.5) -> bool:
        """Forget the domains no bucket holds any more, renumbering the others; True if done.

        The names table would otherwise grow with every domain ever seen. Runs when at least
        `min_share` of the names are unused, so its O(entries) cost is paid rarely.
        """
        n = len(self._names)
        live = np.zeros(n, bool)
        for buckets in self.by_resolution.values():
            for key in list(buckets):
                bucket = buckets.get(key)
                if bucket is not None:
                    live[bucket.arrays()[0]] = True
        kept = int(live.sum())
        if n == 0 or n - kept < max(1, min_share * n):
            return False
        remap = np.full(n, -1, np.intp)
        remap[live] = np.arange(kept)
        for buckets in self.by_resolution.values():
            for key in list(buckets):
                bucket = buckets.get(key)
                if bucket is not None:
                    bucket.renumber(remap)
        for window in self.windows:
            # Unused domains have nothing in any bucket, so nothing in any window either.
            totals = np.zeros_like(window.totals)
            totals[:, :kept] = window.totals[:, :n][:, live]
            window.totals = totals
        keys = np.zeros_like(self._keys)
        keys[:kept] = self._keys[:n][live]
        self._keys = keys
        # New objects, not edits: a ranking running in a thread keeps the old ones.
        self._names = [name for name, keep in zip(self._names, live.tolist(), strict=True) if keep]
        self._ids = {name: i for i, name in enumerate(self._names)}
        for minute, (ids, peak_in, peak_out) in list(self._peaks.items()):
            keep = live[ids]
            self._peaks[minute] = (remap[ids[keep]], peak_in[keep], peak_out[keep])
        self.renumbered = True
        logger.info("forgot %d unused domains, %d kept", n - kept, kept)
        return True

    def tracked_domains(self) -> int:
        """Return the number of distinct domains known (never forgotten: see the README)."""
        return len(self._names)

    def close(self) -> None:
        """Nothing to release."""
