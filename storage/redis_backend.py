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

import gevent
import orjson
import redis
from gevent.event import AsyncResult
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
from storage.memory_backend import (
    HOUR,
    MINUTE,
    RATE_SPAN,
    SECOND_SPAN,
    rates,
    stats_from_counts,
    step_resolution,
)

logger = logging.getLogger(__name__)

#: One letter per metric in key names, in METRICS order.
LETTERS = ("c", "i", "o")
#: How long a per-minute peak is kept: the hour `domain_stats` reports, and a minute more.
PEAK_KEEP = HOUR + MINUTE

# Where a count is written, and where a window reads it. A count goes to the finest bucket
# still kept (second, minute, hour), and the background tick rolls each finished minute's
# seconds into the minute and each finished hour's minutes into the hour ("sealing"): so an
# ingest costs one ZINCRBY per domain, not three. A count arriving late for a sealed slot is
# also added to the sealed parents. A read of an unsealed minute (or hour) takes its own key
# plus its children's, of a sealed one its own key only: every count is read exactly once.
# `sealed` (hash: m, h) holds the last sealed minute and hour; scripts read it atomically.
COMMON = """
local function sealed(p)
  local v = redis.call('HMGET', p .. 'sealed', 'm', 'h')
  return tonumber(v[1]) or -1, tonumber(v[2]) or -1
end
local function expand(p, kind, res, slot, sm, sh, out)
  out[#out + 1] = p .. kind .. ':' .. res .. ':' .. slot
  if kind:sub(1, 3) == 'pk:' then
    return  -- peaks are kept per minute only
  elseif res == 60 and slot > sm then
    for s = slot * 60, slot * 60 + 59 do out[#out + 1] = p .. kind .. ':1:' .. s end
  elseif res == 3600 and slot > sh then
    for m = slot * 60, slot * 60 + 59 do expand(p, kind, 60, m, sm, sh, out) end
  end
end
-- The keys of a window given as [[resolution, first slot, last slot], ...].
local function window(p, kind, ranges, sm, sh)
  local out = {}
  for _, r in ipairs(ranges) do
    for slot = r[2], r[3] do expand(p, kind, r[1], slot, sm, sh, out) end
  end
  return out
end
-- ZUNIONSTORE of any number of keys (unpack has a limit), into `dest`.
local function union(dest, keys)
  redis.call('DEL', dest)
  for i = 1, #keys, 1000 do
    local j = math.min(i + 999, #keys)
    redis.call('ZUNIONSTORE', dest, j - i + 2, dest, unpack(keys, i, j))
  end
end
local LETTERS = {'c', 'i', 'o'}
local FIELDS = {'clicks', 'bytes_in', 'bytes_out'}
"""

# Apply the batches of a group of requests and keep their receipts, all or nothing. Counts
# for the same bucket and domain are summed first, so a busy group costs one ZINCRBY per
# distinct (bucket, domain). A request whose idempotency key another process has kept gets
# that receipt back instead. The call's token keeps its answer for a minute: a call retried
# after a dropped connection gets the first answer and changes nothing.
# ARGV: prefix, oldest receipt kept, receipt ttl, now, seconds, minutes and hours kept, JSON
# [[receipt key, receipt, [[timestamp, totals, names, values (flat)], ...]], ...], token.
# Returns per request: {0} applied, {1, receipt} the receipt kept for its key.
ADD = (
    COMMON
    + """
local p, oldest, rttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local token = p .. 'tok:' .. ARGV[9]
local answered = redis.call('GET', token)
if answered then return cjson.decode(answered) end
local now, skeep, mkeep, hkeep = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7])
local sm, sh = sealed(p)
local results, counts, totals, ttls, seen = {}, {}, {}, {}, {}
local function add(suffix, ttl, sums, names, values)
  ttls[suffix] = ttl
  local t = totals[suffix] or {0, 0, 0}
  totals[suffix] = t
  for k = 1, 3 do
    if sums[k] ~= 0 then
      t[k] = t[k] + sums[k]
      local key = suffix .. '|' .. k
      local c = counts[key] or {}
      counts[key] = c
      for d = 1, #names do
        local v = values[3 * d + k - 3]
        if v ~= 0 then c[names[d]] = (c[names[d]] or 0) + v end
      end
    end
  end
end
for r, request in ipairs(cjson.decode(ARGV[8])) do
  local rkey, receipt, batches = unpack(request)
  local kept = rkey ~= '' and redis.call('GET', p .. 'r:' .. rkey)
  if kept and tonumber(kept:match('^%d+')) >= oldest then
    results[r] = {1, kept}
  else
    results[r] = {0}
    if rkey ~= '' then redis.call('SET', p .. 'r:' .. rkey, receipt, 'EX', rttl) end
    for _, batch in ipairs(batches) do
      local ts, sums, names, values = unpack(batch)
      local m, h = math.floor(ts / 60), math.floor(ts / 3600)
      local sttl = ts + 1 + skeep - now
      local mttl = (m + 1) * 60 + mkeep - now
      local httl = (h + 1) * 3600 + hkeep - now
      if sttl > 0 then
        -- An unsealed second lives until its minute holds it.
        add('1:' .. ts, m <= sm and sttl or math.max(sttl, mttl), sums, names, values)
      end
      if mttl > 0 and (sttl <= 0 or m <= sm) then add('60:' .. m, mttl, sums, names, values) end
      if httl > 0 and (mttl <= 0 or ((sttl <= 0 or m <= sm) and h <= sh)) then
        add('3600:' .. h, httl, sums, names, values)
      end
      for d = 1, #names do seen[names[d]] = math.max(seen[names[d]] or 0, ts) end
    end
  end
end
for key, c in pairs(counts) do
  local suffix, k = key:match('^(.*)|(%d)$')
  local zkey = p .. 'z:' .. LETTERS[tonumber(k)] .. ':' .. suffix
  for name, v in pairs(c) do redis.call('ZINCRBY', zkey, v, name) end
  redis.call('EXPIRE', zkey, ttls[suffix])
end
for suffix, t in pairs(totals) do
  local tkey = p .. 't:' .. suffix
  for k = 1, 3 do
    if t[k] ~= 0 then redis.call('HINCRBYFLOAT', tkey, FIELDS[k], t[k]) end
  end
  redis.call('EXPIRE', tkey, ttls[suffix])
end
local args = {}
for name, ts in pairs(seen) do
  args[#args + 1] = ts
  args[#args + 1] = name
  if #args == 2000 then
    redis.call('ZADD', p .. 'seen', 'GT', unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('ZADD', p .. 'seen', 'GT', unpack(args)) end
redis.call('SET', token, cjson.encode(results), 'EX', 60)
return results
"""
)

# Seal finished minutes and hours, in order, at most ARGV[6] of them; safe to run from many
# processes at once (each slot is sealed once). ARGV: prefix, now, seconds, minutes and hours
# kept, most slots. Returns the last sealed minute and hour.
SEAL = (
    COMMON
    + """
local p, now = ARGV[1], tonumber(ARGV[2])
local skeep, mkeep, hkeep, most = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]),
  tonumber(ARGV[6])
local v = redis.call('HMGET', p .. 'sealed', 'm', 'h')
local sm, sh = tonumber(v[1]), tonumber(v[2])
if not sm then
  -- Nothing kept yet: every slot whose children cannot be kept counts as sealed.
  sm = math.floor((now - skeep) / 60) - 1
  sh = math.floor((now - mkeep) / 3600) - 1
end
local function roll(parent, ttl, child, first, child_ttl)
  for k = 1, 3 do
    local dest = p .. 'z:' .. LETTERS[k] .. ':' .. parent
    local keys = {dest}
    for c = first, first + 59 do keys[#keys + 1] = p .. 'z:' .. LETTERS[k] .. ':' .. child .. c end
    if redis.call('ZUNIONSTORE', dest, #keys, unpack(keys)) > 0 then
      redis.call('EXPIRE', dest, ttl)
    end
  end
  local tdest = p .. 't:' .. parent
  for c = first, first + 59 do
    local row = redis.call('HGETALL', p .. 't:' .. child .. c)
    for i = 1, #row, 2 do redis.call('HINCRBYFLOAT', tdest, row[i], row[i + 1]) end
    if child_ttl then
      -- The parent holds their sum now: the children go back to their own expiry.
      local ttl_c = child_ttl(c)
      for k = 1, 3 do redis.call('EXPIRE', p .. 'z:' .. LETTERS[k] .. ':' .. child .. c, ttl_c) end
      redis.call('EXPIRE', p .. 't:' .. child .. c, ttl_c)
    end
  end
  redis.call('EXPIRE', tdest, ttl)
end
local done = 0
local last_minute = math.floor(now / 60) - 1
while sm < last_minute and done < most do
  local m = sm + 1
  local ttl = (m + 1) * 60 + mkeep - now
  if ttl > 0 then
    roll('60:' .. m, ttl, '1:', m * 60, function(s) return s + 1 + skeep - now end)
  end
  sm, done = m, done + 1
end
local last_hour = math.floor(now / 3600) - 1
while sh < last_hour and (sh + 2) * 60 - 1 <= sm and done < most do
  local h = sh + 1
  local ttl = (h + 1) * 3600 + hkeep - now
  if ttl > 0 then roll('3600:' .. h, ttl, '60:', h * 60, nil) end
  sh, done = h, done + 1
end
redis.call('HSET', p .. 'sealed', 'm', sm, 'h', sh)
return {sm, sh}
"""
)

# The `limit` largest members of a window, ties broken by name (ascending).
# KEYS[1]: a scratch key; ARGV: prefix, kind, limit, JSON ranges.
TOP = (
    COMMON
    + """
local tmp, p, limit = KEYS[1], ARGV[1], tonumber(ARGV[3])
local sm, sh = sealed(p)
union(tmp, window(p, ARGV[2], cjson.decode(ARGV[4]), sm, sh))
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
)

# One member's score summed (mode 's') or maxed ('m') over each group of windows.
# ARGV: prefix, member, JSON [[mode, kind, ranges], ...].
SCORES = (
    COMMON
    + """
local p, name = ARGV[1], ARGV[2]
local sm, sh = sealed(p)
local out = {}
for _, group in ipairs(cjson.decode(ARGV[3])) do
  local acc = 0
  for _, key in ipairs(window(p, group[2], group[3], sm, sh)) do
    local s = redis.call('ZSCORE', key, name)
    if s then
      if group[1] == 's' then acc = acc + tonumber(s) else acc = math.max(acc, tonumber(s)) end
    end
  end
  out[#out + 1] = string.format('%.17g', acc)
end
return out
"""
)

# Totals of a window: clicks, bytes in, bytes out and the distinct domains with any.
# KEYS[1]: a scratch key; ARGV: prefix, JSON ranges.
SUMMARY = (
    COMMON
    + """
local tmp, p = KEYS[1], ARGV[1]
local sm, sh = sealed(p)
local ranges = cjson.decode(ARGV[2])
local sums = {0, 0, 0}
for _, key in ipairs(window(p, 't', ranges, sm, sh)) do
  local row = redis.call('HMGET', key, unpack(FIELDS))
  for k = 1, 3 do if row[k] then sums[k] = sums[k] + tonumber(row[k]) end end
end
local sets = {}
for k = 1, 3 do
  for _, key in ipairs(window(p, 'z:' .. LETTERS[k], ranges, sm, sh)) do sets[#sets + 1] = key end
end
union(tmp, sets)
local domains = redis.call('ZCARD', tmp)
redis.call('DEL', tmp)
local f = '%.17g'
return {string.format(f, sums[1]), string.format(f, sums[2]), string.format(f, sums[3]), domains}
"""
)

# Per slot of one resolution, each member's score. ARGV: prefix, kind, resolution, first
# slot, slots, then the members. Returns the scores slot by slot (members in order).
SERIES = (
    COMMON
    + """
local p, kind, res, first, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local names = {unpack(ARGV, 6)}
local sm, sh = sealed(p)
local out = {}
for slot = first, first + count - 1 do
  local sums = {}
  for i = 1, #names do sums[i] = 0 end
  local keys = {}
  expand(p, kind, res, slot, sm, sh, keys)
  for _, key in ipairs(keys) do
    if redis.call('EXISTS', key) == 1 then
      local scores = redis.call('ZMSCORE', key, unpack(names))
      for i = 1, #names do
        if scores[i] then sums[i] = sums[i] + tonumber(scores[i]) end
      end
    end
  end
  for i = 1, #names do out[#out + 1] = string.format('%.17g', sums[i]) end
end
return out
"""
)

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
                "seal": SEAL,
                "series": SERIES,
                "peaks": PEAKS,
                "requests": REQUESTS,
                "count": COUNT,
                "lead": LEAD,
            }.items()
        }
        self._pending: list[tuple[list[Any], AsyncResult]] = []
        self._writer: gevent.Greenlet | None = None
        #: Requests counted here and not yet added in Redis, by second.
        self._requests: Counter[int] = Counter()
        self.id = f"{os.uname().nodename}:{os.getpid()}:{os.urandom(4).hex()}"
        self.seal()

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

    def _window(self, seconds: int, now: float) -> tuple[int, list[tuple[int, int, int]]]:
        """Return the start of the window of `seconds` ending now and its slots, as
        (resolution, first, last) runs: the same windows as `MemoryStorage`, with the whole
        hours inside a window of minutes read from their hourly bucket."""
        if seconds > self.retention:
            last = int(now) // HOUR
            first = last - math.ceil(seconds / HOUR) + 1
            # The current hour by its minutes: what lies ahead of now is not counted yet.
            return first * HOUR, [(HOUR, first, last - 1), (MINUTE, last * 60, int(now) // MINUTE)]
        resolution = 1 if seconds <= self.seconds_kept else MINUTE
        last = int(now) // resolution
        first = last - max(1, math.ceil(seconds / resolution)) + 1
        if resolution == 1:
            return first, [(1, first, last)]
        hours = range(-(-first // 60), (last + 1) // 60)  # the hours wholly inside
        if not hours:
            return first * MINUTE, [(MINUTE, first, last)]
        runs = [(MINUTE, first, hours[0] * 60 - 1), (HOUR, hours[0], hours[-1])]
        runs.append((MINUTE, (hours[-1] + 1) * 60, last))
        return first * MINUTE, [run for run in runs if run[1] <= run[2]]

    # Writes -------------------------------------------------------------------------------

    def add(self, batches: Sequence[Batch], receipt: Receipt | None = None) -> None:
        """Apply validated batches and keep `receipt`, atomically; return once Redis has them.

        Requests arriving while a write is on its way go together in the next script call
        (group commit): one round trip for all of them, their counts summed in Redis.
        """
        if receipt is None:
            request: list[Any] = ["", ""]
        else:
            head = f"{receipt.created}\n{receipt.digest.hex()}\n"
            request = [receipt.key, head + receipt.response.decode()]
        spec = []
        for batch in batches:
            # Floats: a sum may pass 64 bits; Redis keeps doubles anyway (exact to 2**53).
            totals = [float(sum(batch.values[m::3])) for m in range(3)]
            spec.append((batch.timestamp, totals, batch.domains, batch.values))
        request.append(spec)
        done = AsyncResult()
        self._pending.append((request, done))
        if self._writer is None or self._writer.dead:
            self._writer = gevent.spawn(self._write_pending)
        answer = done.get()
        if answer[0] == 1:
            raise Replayed(_receipt(receipt.key, answer[1]))

    def _write_pending(self) -> None:
        while self._pending:
            group, self._pending = self._pending, []
            try:
                answers = self._apply([request for request, _ in group], os.urandom(12).hex())
            except StorageError as exc:
                for _, done in group:
                    done.set_exception(exc)
                continue
            for (_, done), answer in zip(group, answers, strict=True):
                done.set(answer)

    def _apply(self, requests: list[list[Any]], token: str) -> list[list[Any]]:
        """Run ADD for `requests`; a second call with the same token answers the same."""
        now = int(self.clock())
        args = [self.p, now - self.retention, self.retention, now, *self.keep.values()]
        args += [orjson.dumps(requests), token]
        return self._run("add", [self.p + "seen"], args)

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
        start, runs = self._window(seconds, now)
        kind = "z:" + LETTERS[METRICS.index(by)]
        args = [self.p, kind, limit, orjson.dumps(runs)]
        flat = self._run("top", [self._scratch()], args)
        items = [(flat[i].decode(), _number(flat[i + 1])) for i in range(0, len(flat), 2)]
        items.sort(key=lambda item: (-item[1], item[0]))
        return TopResult(start, now, items)

    def _scratch(self) -> str:
        return f"{self.p}tmp:{os.urandom(8).hex()}"

    def _scores(self, name: str, groups: list[tuple[str, str, list]]) -> list[int]:
        answer = self._run("scores", [self.p + "seen"], [self.p, name, orjson.dumps(groups)])
        return [_number(v) for v in answer]

    def _metric_groups(self, seconds: int, now: float) -> list[tuple[str, str, list]]:
        _, runs = self._window(seconds, now)
        return [("s", "z:" + letter, runs) for letter in LETTERS]

    def domain_totals(self, name: str, seconds: int) -> dict[str, int]:
        """Return one domain's clicks and bytes over the `seconds` ending now."""
        values = self._scores(name, self._metric_groups(seconds, self.clock()))
        return dict(zip(METRICS, values, strict=True))

    def summary(self, seconds: int) -> WindowSummary:
        """Return the clicks, bytes and distinct active domains of the `seconds` ending now."""
        _, runs = self._window(seconds, self.clock())
        answer = self._run("summary", [self._scratch()], [self.p, orjson.dumps(runs)])
        clicks, bytes_in, bytes_out = (_number(v) for v in answer[:3])
        return WindowSummary(clicks, int(answer[3]), bytes_in, bytes_out)

    def _sample_peaks(self, now: float) -> None:
        """Fold the current rates into this minute's peaks (once a second, for everyone)."""
        second = int(now)
        slots = [(1, s) for s in range(second - RATE_SPAN + 1, second + 1)]
        keys = [
            self.p + "pk:stamp",
            self._scratch(),
            f"{self.p}pk:i:60:{second // MINUTE}",
            f"{self.p}pk:o:60:{second // MINUTE}",
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
        minute = int(now) // MINUTE
        groups += [("m", f"pk:{letter}", [(60, minute - 59, minute)]) for letter in "io"]
        values = self._scores(name, groups)
        totals = {
            period.name: dict(zip(METRICS, values[3 * n : 3 * n + 3], strict=True))
            for n, period in enumerate(PERIODS)
        }
        return stats_from_counts(totals, *values[3 * len(PERIODS) :])

    def total_rates(self) -> tuple[float, float, float]:
        """Return all traffic's (rx bit/s, tx bit/s, clicks/s) over the rate span."""
        total = self.summary(RATE_SPAN)
        return rates(total.clicks, total.bytes_in, total.bytes_out)

    def series(
        self, names: list[str], start: int, end: int, step: int, by: str
    ) -> dict[str, list[int]]:
        """Per-step sums of `by` for each domain, steps from `start` (aligned) up to `end`."""
        resolution = self.step_resolution(start, step)
        count = (end - start) // step + 1
        out = {name: [0] * count for name in names}
        if not names:
            return out
        first = start // resolution
        slots = (start + count * step - 1) // resolution + 1 - first
        kind = "z:" + LETTERS[METRICS.index(by)]
        args = [self.p, kind, resolution, first, slots, *names]
        values = self._run("series", [self.p + "seen"], args)
        for n, value in enumerate(values):
            if value != b"0":
                slot, at = divmod(n, len(names))
                out[names[at]][((first + slot) * resolution - start) // step] += _number(value)
        return out

    def step_resolution(self, start: int, step: int) -> int:
        """Return the bucket width that serves steps of `step` from `start`, or raise ValueError."""
        now = int(self.clock())
        return step_resolution(now, start, step, self.retention, self.seconds_kept)

    def seal(self) -> None:
        """Roll finished seconds into their minute and minutes into their hour (see SEAL)."""
        now = int(self.clock())
        # Enough for a day and more of catching up at once; a tick normally seals one minute.
        args = [self.p, now, *self.keep.values(), 2000]
        self._run("seal", [self.p + "sealed"], args)

    def maintain(self) -> float:
        """Seal finished slots, send this process's request counts, sample peaks, forget old
        names; return now."""
        now = self.clock()
        self.seal()
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
        """Finish the writes on their way, send the last request counts and disconnect."""
        if self._writer is not None:
            self._writer.join()
        try:
            self._flush_requests()
        except StorageError:
            logger.warning("request counts not sent: Redis at %s is unavailable", self.where)
        self.client.close()
