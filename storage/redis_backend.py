"""Buckets in Redis sorted sets that expire by themselves, shared by many server processes.

Every key starts with one hash tag (`{domainstats}:` by default), so a batch, its receipt and
the windows it joins live in one Redis Cluster slot and each operation is one atomic script.
The key layout and what each key costs are in the README ("Scaling out").
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from core.model import METRICS, PERIODS, Batch
from storage.base import (
    DomainStats,
    Limits,
    Offload,
    Receipt,
    Replayed,
    StorageError,
    TopResult,
    WindowSummary,
)
from storage.memory_backend import HOUR, MINUTE, RATE_SPAN, SECOND_SPAN, step_resolution

logger = logging.getLogger(__name__)

#: One letter per metric in key names, in METRICS order.
LETTERS = ("c", "i", "o")
#: How long a per-minute peak is kept: the hour `domain_stats` reports, and a minute more.
PEAK_KEEP = HOUR + MINUTE

# Apply batches and keep the receipt, all or nothing. A token makes a retried call (after a
# dropped connection) a no-op, and a receipt already kept by another process is returned.
ADD = """
local p, token, rkey = ARGV[1], ARGV[2], ARGV[3]
if redis.call('SET', p .. 'tok:' .. token, '1', 'NX', 'EX', 3600) == false then
  return {2}
end
if rkey ~= '' then
  local kept = redis.call('GET', p .. 'r:' .. rkey)
  if kept and tonumber(kept:match('^%d+')) >= tonumber(ARGV[6]) then
    redis.call('DEL', p .. 'tok:' .. token)
    return {1, kept}
  end
end
local letters = {'c', 'i', 'o'}
local fields = {'clicks', 'bytes_in', 'bytes_out'}
local i = 8
for b = 1, tonumber(ARGV[7]) do
  local ts, nres = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local buckets = {}
  for r = 1, nres do
    buckets[r] = {ARGV[i], ARGV[i + 1]}
    i = i + 2
  end
  local totals = {ARGV[i], ARGV[i + 1], ARGV[i + 2]}
  local n = tonumber(ARGV[i + 3])
  local names, values = i + 4, i + 4 + n
  i = values + 3 * n
  for _, bucket in ipairs(buckets) do
    local suffix, ttl = bucket[1], bucket[2]
    for m = 1, 3 do
      if totals[m] ~= '0' then
        local key = p .. 'z:' .. letters[m] .. ':' .. suffix
        for d = 0, n - 1 do
          local v = ARGV[values + 3 * d + m - 1]
          if v ~= '0' then redis.call('ZINCRBY', key, v, ARGV[names + d]) end
        end
        redis.call('EXPIRE', key, ttl)
        redis.call('HINCRBYFLOAT', p .. 't:' .. suffix, fields[m], totals[m])
      end
    end
    redis.call('EXPIRE', p .. 't:' .. suffix, ttl)
  end
  for d = 0, n - 1 do
    redis.call('ZADD', p .. 'seen', 'GT', ts, ARGV[names + d])
  end
end
if rkey ~= '' then
  redis.call('SET', p .. 'r:' .. rkey, ARGV[4], 'EX', ARGV[5])
end
return {0}
"""

# The `limit` largest members of the union of KEYS[2..], ties broken by name (ascending).
TOP = """
local tmp, limit = KEYS[1], tonumber(ARGV[1])
if #KEYS < 2 then return {} end
redis.call('ZUNIONSTORE', tmp, #KEYS - 1, unpack(KEYS, 2))
local out
if redis.call('ZCARD', tmp) <= limit then
  out = redis.call('ZRANGE', tmp, 0, -1, 'WITHSCORES')
else
  local kth = redis.call('ZREVRANGE', tmp, limit - 1, limit - 1, 'WITHSCORES')[2]
  out = redis.call('ZRANGEBYSCORE', tmp, '(' .. kth, '+inf', 'WITHSCORES')
  local ties = redis.call('ZRANGEBYSCORE', tmp, kth, kth, 'WITHSCORES', 'LIMIT', 0,
                          limit - #out / 2)
  for _, v in ipairs(ties) do out[#out + 1] = v end
end
redis.call('DEL', tmp)
return out
"""

# Per group of keys (ARGV[2..] = 's<n>' to sum or 'm<n>' to take the max), ARGV[1]'s score.
SCORES = """
local name, out, k = ARGV[1], {}, 1
for g = 2, #ARGV do
  local mode, n, acc = ARGV[g]:sub(1, 1), tonumber(ARGV[g]:sub(2)), 0
  for _ = 1, n do
    local s = redis.call('ZSCORE', KEYS[k], name)
    k = k + 1
    if s then
      if mode == 's' then acc = acc + tonumber(s) else acc = math.max(acc, tonumber(s)) end
    end
  end
  out[#out + 1] = string.format('%.17g', acc)
end
return out
"""

# Totals of a window: clicks, bytes in, bytes out (from KEYS[2..n+1], the total hashes) and
# the distinct domains of the union of the remaining keys (the sorted sets).
SUMMARY = """
local tmp, n = KEYS[1], tonumber(ARGV[1])
local sums = {0, 0, 0}
local fields = {'clicks', 'bytes_in', 'bytes_out'}
for k = 2, n + 1 do
  local row = redis.call('HMGET', KEYS[k], unpack(fields))
  for m = 1, 3 do if row[m] then sums[m] = sums[m] + tonumber(row[m]) end end
end
local domains = 0
if #KEYS > n + 1 then
  redis.call('ZUNIONSTORE', tmp, #KEYS - n - 1, unpack(KEYS, n + 2))
  domains = redis.call('ZCARD', tmp)
  redis.call('DEL', tmp)
end
local f = '%.17g'
return {string.format(f, sums[1]), string.format(f, sums[2]), string.format(f, sums[3]), domains}
"""

# Fold the rates of the last RATE_SPAN seconds into this minute's peaks, once a second:
# KEYS = stamp, tmp, peak in, peak out, then the bytes-in and the bytes-out second keys.
PEAKS = """
local second, span, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('GET', KEYS[1]) == second then return 0 end
redis.call('SET', KEYS[1], second, 'EX', ttl)
for m = 0, 1 do
  local first = 5 + m * span
  redis.call('ZUNIONSTORE', KEYS[2], span, unpack(KEYS, first, first + span - 1))
  redis.call('ZUNIONSTORE', KEYS[3 + m], 2, KEYS[3 + m], KEYS[2], 'AGGREGATE', 'MAX')
  redis.call('EXPIRE', KEYS[3 + m], ttl)
end
redis.call('DEL', KEYS[2])
return 1
"""

# Requests from second ARGV[1] to ARGV[2], KEYS being the per-minute hashes from its minute on.
REQUESTS = """
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
local total, minute = 0, math.floor(first / 60)
for k = 1, #KEYS do
  local lo, hi = math.max(first, minute * 60), math.min(last, minute * 60 + 59)
  if lo == minute * 60 and hi == minute * 60 + 59 then
    total = total + tonumber(redis.call('HGET', KEYS[k], 'm') or '0')
  else
    for s = lo, hi do total = total + tonumber(redis.call('HGET', KEYS[k], s) or '0') end
  end
  minute = minute + 1
end
return total
"""

# Add request counts: ARGV = ttl, then (second, count) pairs, all in the minute of KEYS[1].
COUNT = """
for j = 2, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[j], ARGV[j + 1])
  redis.call('HINCRBY', KEYS[1], 'm', ARGV[j + 1])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 0
"""

# Take or keep a lease: KEYS[1] holds the owner's id for ARGV[2] milliseconds.
LEAD = """
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


def _number(text: bytes | str) -> int:
    return int(float(text))


def _receipt(key: str, value: bytes) -> Receipt:
    created, digest, response = value.split(b"\n", 2)
    return Receipt(key, int(created), bytes.fromhex(digest.decode()), response)


def connect(url: str) -> tuple[redis.Redis | redis.RedisCluster, str]:
    """Return a client for a `redis[s]://` or `redis[s]+cluster://` URL, and its key tag.

    `?prefix=name` (default `domainstats`) names the hash tag, so deployments can share a Redis.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    tag = query.pop("prefix", "domainstats")
    scheme, _, cluster = parts.scheme.partition("+")
    plain = urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), ""))
    options: dict[str, Any] = {
        # Scripts are idempotent (see ADD), so a command cut off by a dropped connection is
        # retried once the connection is back.
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 3),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        "health_check_interval": 10,
    }
    if cluster == "cluster":
        return redis.RedisCluster.from_url(plain, **options), tag
    if cluster:
        raise ValueError(f"unknown Redis URL scheme {parts.scheme!r}")
    return redis.Redis.from_url(plain, **options), tag


class RedisStorage:
    """The Storage protocol on Redis: the same windows and answers as `MemoryStorage`."""

    def __init__(
        self,
        url: str,
        retention: int = 25 * 3600,
        clock: Callable[[], float] = time.time,
        history: int = 90 * 86400,
    ) -> None:
        self.retention = retention
        self.history = max(history, retention)
        self.clock = clock
        self.seconds_kept = min(SECOND_SPAN, retention)
        self.keep = {1: self.seconds_kept, MINUTE: retention, HOUR: self.history}
        self.where = urlsplit(url).hostname or url
        self.client, tag = connect(url)
        self.p = "{" + tag + "}:"
        self._scripts = {
            name: self.client.register_script(body)
            for name, body in {
                "add": ADD,
                "top": TOP,
                "scores": SCORES,
                "summary": SUMMARY,
                "peaks": PEAKS,
                "requests": REQUESTS,
                "count": COUNT,
                "lead": LEAD,
            }.items()
        }
        #: Requests counted here and not yet added in Redis, by second.
        self._requests: Counter[int] = Counter()
        self.id = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        with self.guard():
            self.client.ping()

    @contextmanager
    def guard(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StorageError(f"Redis at {self.where} is unavailable ({exc})") from exc

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        with self.guard():
            return self._scripts[name](keys=keys, args=args)

    # Keys ---------------------------------------------------------------------------------

    def _keys(self, kind: str, slots: Sequence[tuple[int, int]]) -> list[str]:
        return [f"{self.p}{kind}:{res}:{slot}" for res, slot in slots]

    def _window(self, seconds: int, now: float) -> tuple[int, list[tuple[int, int]]]:
        """Return the start of the window of `seconds` ending now and its (resolution, slot)s.

        The same windows as `MemoryStorage`; whole hours inside a window of minutes are read
        from the hourly bucket, which holds their sum.
        """
        if seconds > self.retention:
            last = int(now) // HOUR
            first = last - math.ceil(seconds / HOUR) + 1
            return first * HOUR, [(HOUR, h) for h in range(first, last + 1)]
        resolution = 1 if seconds <= self.seconds_kept else MINUTE
        last = int(now) // resolution
        first = last - max(1, math.ceil(seconds / resolution)) + 1
        if resolution == 1:
            return first, [(1, s) for s in range(first, last + 1)]
        slots: list[tuple[int, int]] = []
        minute = first
        while minute <= last:
            if minute % 60 == 0 and minute + 59 <= last:
                slots.append((HOUR, minute // 60))
                minute += 60
            else:
                slots.append((MINUTE, minute))
                minute += 1
        return first * MINUTE, slots

    # Writes -------------------------------------------------------------------------------

    def add(self, batches: Sequence[Batch], receipt: Receipt | None = None) -> None:
        """Apply validated batches and keep `receipt` in one atomic script call."""
        now = self.clock()
        args: list[Any] = [self.p, os.urandom(12).hex()]
        if receipt is None:
            args += ["", "", 0]
        else:
            head = b"%d\n%s\n" % (receipt.created, receipt.digest.hex().encode())
            args += [receipt.key, head + receipt.response, self.retention]
        args += [int(now) - self.retention, len(batches)]
        for batch in batches:
            buckets = []
            for resolution, keep in self.keep.items():
                slot = batch.timestamp // resolution
                ttl = math.ceil((slot + 1) * resolution + keep - now)
                if ttl > 0:
                    buckets += [f"{resolution}:{slot}", ttl]
            args += [batch.timestamp, len(buckets) // 2, *buckets]
            args += [sum(batch.values[m::3]) for m in range(3)]
            args.append(len(batch.domains))
            args += batch.domains
            args += batch.values
        answer = self._run("add", [self.p + "seen"], args)
        if answer[0] == 1:
            raise Replayed(_receipt(receipt.key, answer[1]))

    def receipt(self, key: str) -> Receipt | None:
        """Return the receipt kept for an idempotency key (by any process)."""
        with self.guard():
            value = self.client.get(f"{self.p}r:{key}")
        if value is None:
            return None
        receipt = _receipt(key, value)
        # Redis expires receipts by its own clock; this keeps to the service's.
        return receipt if receipt.created >= self.clock() - self.retention else None

    @property
    def limits(self) -> dict[str, Limits]:
        """The limits of every domain (and `_total`) that has some."""
        with self.guard():
            rows = self.client.hgetall(self.p + "limits")
        return {name.decode(): Limits(**orjson.loads(body)) for name, body in rows.items()}

    def set_limits(self, name: str, limits: Limits | None) -> None:
        """Set (or with None, remove) the limits of a domain or of `_total`."""
        with self.guard():
            if limits is None:
                self.client.hdel(self.p + "limits", name)
            else:
                body = orjson.dumps({
                    "max_rx_bitrate": limits.max_rx_bitrate,
                    "max_tx_bitrate": limits.max_tx_bitrate,
                    "max_clicks_per_s": limits.max_clicks_per_s,
                })  # fmt: skip
                self.client.hset(self.p + "limits", name, body)

    def count_request(self) -> None:
        """Count one HTTP request; counts reach Redis on the next tick or `request_count`."""
        self._requests[int(self.clock())] += 1

    def _flush_requests(self) -> None:
        pending, self._requests = self._requests, Counter()
        by_minute: dict[int, list[int]] = {}
        for second, count in pending.items():
            by_minute.setdefault(second // MINUTE, []).extend((second, count))
        try:
            for minute, pairs in by_minute.items():
                key = f"{self.p}q:{minute}"
                self._run("count", [key], [self.retention + MINUTE, *pairs])
                for second in pairs[0::2]:
                    del pending[second]
        finally:
            self._requests.update(pending)  # what Redis did not take is tried again

    # Reads --------------------------------------------------------------------------------

    def request_count(self, seconds: int) -> int:
        """Return the HTTP requests all processes received in the `seconds` ending now."""
        self._flush_requests()
        last = int(self.clock())
        first = last - seconds + 1
        keys = [f"{self.p}q:{m}" for m in range(first // MINUTE, last // MINUTE + 1)]
        return int(self._run("requests", keys, [first, last]))

    def top(self, seconds: int, limit: int, by: str, offload: Offload | None = None) -> TopResult:
        """Return the top `limit` domains by `by` over the `seconds` ending now (in Redis)."""
        now = self.clock()
        start, slots = self._window(seconds, now)
        keys = self._keys("z:" + LETTERS[METRICS.index(by)], slots)
        tmp = f"{self.p}tmp:{os.urandom(8).hex()}"
        flat = self._run("top", [tmp, *keys], [limit])
        items = [(flat[i].decode(), _number(flat[i + 1])) for i in range(0, len(flat), 2)]
        items.sort(key=lambda item: (-item[1], item[0]))
        return TopResult(start, now, items)

    def _scores(self, name: str, groups: list[tuple[str, list[str]]]) -> list[int]:
        keys = [key for _, group in groups for key in group]
        args = [name, *(f"{mode}{len(group)}" for mode, group in groups)]
        return [_number(v) for v in self._run("scores", keys, args)]

    def _metric_groups(self, seconds: int, now: float) -> list[tuple[str, list[str]]]:
        _, slots = self._window(seconds, now)
        return [("s", self._keys("z:" + letter, slots)) for letter in LETTERS]

    def domain_totals(self, name: str, seconds: int) -> dict[str, int]:
        """Return one domain's clicks and bytes over the `seconds` ending now."""
        values = self._scores(name, self._metric_groups(seconds, self.clock()))
        return dict(zip(METRICS, values, strict=True))

    def summary(self, seconds: int) -> WindowSummary:
        """Return the clicks, bytes and distinct active domains of the `seconds` ending now."""
        _, slots = self._window(seconds, self.clock())
        sets = [key for letter in LETTERS for key in self._keys("z:" + letter, slots)]
        tmp = f"{self.p}tmp:{os.urandom(8).hex()}"
        answer = self._run("summary", [tmp, *self._keys("t", slots), *sets], [len(slots)])
        clicks, bytes_in, bytes_out = (_number(v) for v in answer[:3])
        return WindowSummary(clicks, int(answer[3]), bytes_in, bytes_out)

    def _sample_peaks(self, now: float) -> None:
        """Fold the current rates into this minute's peaks (once a second, for everyone)."""
        second = int(now)
        _, slots = self._window(RATE_SPAN, now)
        keys = [
            self.p + "pk:stamp",
            f"{self.p}tmp:{os.urandom(8).hex()}",
            f"{self.p}pk:i:{second // MINUTE}",
            f"{self.p}pk:o:{second // MINUTE}",
            *self._keys("z:i", slots),
            *self._keys("z:o", slots),
        ]
        self._run("peaks", keys, [second, len(slots), PEAK_KEEP])

    def domain_stats(self, name: str) -> DomainStats | None:
        """Return a domain's totals, rates and peaks, or None if it has no data."""
        with self.guard():
            if self.client.zscore(self.p + "seen", name) is None:
                return None
        now = self.clock()
        self._sample_peaks(now)
        groups = [g for period in PERIODS for g in self._metric_groups(period.seconds, now)]
        groups += self._metric_groups(RATE_SPAN, now)
        minutes = range(int(now) // MINUTE - 59, int(now) // MINUTE + 1)
        groups += [("m", [f"{self.p}pk:{letter}:{m}" for m in minutes]) for letter in "io"]
        values = self._scores(name, groups)
        totals = {
            period.name: dict(zip(METRICS, values[3 * n : 3 * n + 3], strict=True))
            for n, period in enumerate(PERIODS)
        }
        clicks, bytes_in, bytes_out, peak_in, peak_out = values[3 * len(PERIODS) :]
        return DomainStats(
            totals=totals,
            rx_bitrate=bytes_in * 8 / RATE_SPAN,
            tx_bitrate=bytes_out * 8 / RATE_SPAN,
            clicks_per_s=clicks / RATE_SPAN,
            peak_rx_bitrate=peak_in * 8 / RATE_SPAN,
            peak_tx_bitrate=peak_out * 8 / RATE_SPAN,
        )

    def total_rates(self) -> tuple[float, float, float]:
        """Return all traffic's (rx bit/s, tx bit/s, clicks/s) over the rate span."""
        total = self.summary(RATE_SPAN)
        return (
            total.bytes_in * 8 / RATE_SPAN,
            total.bytes_out * 8 / RATE_SPAN,
            total.clicks / RATE_SPAN,
        )

    def series(
        self, names: list[str], start: int, end: int, step: int, by: str
    ) -> dict[str, list[int]]:
        """Per-step sums of `by` for each domain, steps from `start` (aligned) up to `end`."""
        resolution = self.step_resolution(start, step)
        count = (end - start) // step + 1
        out = {name: [0] * count for name in names}
        if not names:
            return out
        slots = range(start // resolution, (start + count * step - 1) // resolution + 1)
        letter = LETTERS[METRICS.index(by)]
        with self.guard():
            pipe = self.client.pipeline(transaction=False)
            for slot in slots:
                pipe.zmscore(f"{self.p}z:{letter}:{resolution}:{slot}", names)
            rows = pipe.execute()
        for slot, row in zip(slots, rows, strict=True):
            point = (slot * resolution - start) // step
            for name, value in zip(names, row, strict=True):
                if value is not None:
                    out[name][point] += int(value)
        return out

    def step_resolution(self, start: int, step: int) -> int:
        """Return the bucket width that serves steps of `step` from `start`, or raise ValueError."""
        now = int(self.clock())
        return step_resolution(now, start, step, self.retention, self.seconds_kept)

    def maintain(self) -> float:
        """Send this process's request counts, sample peaks, forget old names; return now."""
        now = self.clock()
        self._flush_requests()
        self._sample_peaks(now)
        with self.guard():
            self.client.zremrangebyscore(self.p + "seen", "-inf", f"({int(now) - self.history}")
        return now

    def tracked_domains(self) -> int:
        """Return how many distinct domains sent clicks within the history."""
        with self.guard():
            return int(self.client.zcard(self.p + "seen"))

    # Coordination of many processes -------------------------------------------------------

    def lead(self, name: str, seconds: float) -> bool:
        """Take or keep the lease `name` for `seconds`; True while this process holds it."""
        answer = self._run("lead", [f"{self.p}lease:{name}"], [self.id, int(seconds * 1000)])
        return bool(answer)

    def publish(self, name: str, value: bytes, seconds: float) -> None:
        """Share `value` with the other processes for `seconds`."""
        with self.guard():
            self.client.set(f"{self.p}shared:{name}", value, px=int(seconds * 1000))

    def fetch(self, names: Sequence[str]) -> list[bytes | None]:
        """Return what was shared under `names` (None where nothing is)."""
        with self.guard():
            return self.client.mget([f"{self.p}shared:{name}" for name in names])

    def close(self) -> None:
        """Send the last request counts and disconnect."""
        try:
            self._flush_requests()
        except StorageError:
            logger.warning("request counts not sent: Redis at %s is unavailable", self.where)
        self.client.close()
