"""The access-log monitor: stats every interval of log time, high-traffic alerts, forwarding.

Usage: ./monitor.sh [FILE | -] [--follow] [--json] [--post URL] ... (see --help)
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

import orjson

from core.timeutil import isoformat
from sources.logs import FORMATS, BadLine, Hit, detect, parse

#: Per-second key: (host, method, section, status class, vhost).
Key = tuple[str, str, str, str, str]
_CLASSES = [f"{i}xx" for i in range(10)]


class LogMonitor:
    """Turns hits into per-interval stats and alert events, in log time.

    Lines arrive a few seconds out of order: second t is evaluated once a line later than
    t + lateness has been read (or at the end), each second once, in order, so the order of
    lines never makes an alert flap. A line for a second already evaluated counts as late.
    """

    def __init__(
        self,
        emit: Callable[[dict[str, Any]], None],
        *,
        interval: int = 10,
        window: int = 120,
        threshold: float = 10.0,
        lateness: int = 5,
        on_second: Callable[[int, Counter, dict], None] | None = None,
    ) -> None:
        self.emit = emit
        self.interval = interval
        self.window = window
        self.threshold = threshold
        self.lateness = lateness
        self.on_second = on_second
        self._pending: dict[int, tuple[Counter, dict]] = {}
        self._next: int | None = None  # the next second to evaluate
        self._latest: int | None = None
        self._recent: deque[tuple[int, int]] = deque()  # (second, hits) inside the window
        self._window_hits = 0
        self.alerting = False
        self._interval_start: int | None = None
        self._interval: Counter = Counter()
        self._interval_bytes = 0
        self.late = 0

    def add(self, hit: Hit) -> None:
        """Count one hit, then evaluate every second that can no longer change."""
        t = hit.time
        if self._next is not None and t < self._next:
            self.late += 1
            return
        slot = self._pending.get(t)
        if slot is None:
            slot = self._pending[t] = (Counter(), {})
        key = (hit.host, hit.method, hit.section, _CLASSES[hit.status // 100 % 10], hit.vhost)
        slot[0][key] += 1
        slot[1][key] = slot[1].get(key, 0) + hit.bytes
        if self._latest is None or t > self._latest:
            self._latest = t
            self.advance(t - self.lateness)

    def advance(self, upto: int) -> None:
        """Evaluate every second up to `upto`, in order, empty seconds included."""
        if self._next is None:
            # Start only once the earliest second seen is past the lateness too.
            if not self._pending or min(self._pending) > upto:
                return
            self._next = min(self._pending)
        while self._next <= upto:
            t = self._next
            counts, sizes = self._pending.pop(t, (Counter(), {}))
            self._second(t, counts, sizes)
            self._next = t + 1

    def finish(self) -> None:
        """At the end of input: evaluate the remaining seconds and close the last interval."""
        if self._latest is not None:
            self.advance(self._latest)
        if self._interval_start is not None:
            self._close_interval()

    def _second(self, t: int, counts: Counter, sizes: dict) -> None:
        if self.on_second is not None:
            self.on_second(t, counts, sizes)
        start = t - t % self.interval
        if self._interval_start is not None and start != self._interval_start:
            self._close_interval()
        self._interval_start = start
        self._interval.update(counts)
        self._interval_bytes += sum(sizes.values())
        hits = sum(counts.values())
        self._recent.append((t, hits))
        self._window_hits += hits
        while self._recent[0][0] <= t - self.window:
            self._window_hits -= self._recent.popleft()[1]
        average = self._window_hits / self.window
        if not self.alerting and average > self.threshold:
            self.alerting = True
            self.emit({
                "type": "alert",
                "state": "firing",
                "hits": self._window_hits,
                "average": average,
                "at": isoformat(t),
                "message": f"High traffic generated an alert - hits = {self._window_hits}, "
                f"triggered at {isoformat(t)}",
            })  # fmt: skip
        elif self.alerting and average <= self.threshold:
            self.alerting = False
            self.emit({
                "type": "alert",
                "state": "recovered",
                "hits": self._window_hits,
                "average": average,
                "at": isoformat(t),
                "message": f"High traffic alert recovered at {isoformat(t)}",
            })  # fmt: skip

    def _close_interval(self) -> None:
        counts, start = self._interval, self._interval_start
        total = sum(counts.values())
        by: dict[int, Counter] = {i: Counter() for i in range(4)}
        for key, n in counts.items():
            for i in range(4):
                by[i][key[i]] += n
        self.emit({
            "type": "stats",
            "start": isoformat(start),
            "end": isoformat(start + self.interval),
            "requests": total,
            "bytes": self._interval_bytes,
            "sections": [[name, n, round(n / total, 4)] for name, n in _ranked(by[2])[:5]],
            "methods": dict(_ranked(by[1])),
            "statuses": dict(sorted(by[3].items())),
            "hosts": _ranked(by[0])[:5],
            "late": self.late,
        })  # fmt: skip
        self._interval = Counter()
        self._interval_bytes = 0
        self.late = 0


def _ranked(counts: Counter) -> list[tuple[str, int]]:
    """Most first, ties by name: the same whatever the order of the lines."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def render(event: dict[str, Any]) -> str:
    """One event as text for a person."""
    if event["type"] == "alert":
        return event["message"]
    if event["type"] == "malformed":
        return f"malformed line {event['line']}: {event['error']}"
    sections = ", ".join(f"{s} {n} ({share:.0%})" for s, n, share in event["sections"])
    hosts = ", ".join(f"{h} {n}" for h, n in event["hosts"])
    statuses = " ".join(f"{k}:{v}" for k, v in event["statuses"].items())
    methods = " ".join(f"{k}:{v}" for k, v in event["methods"].items())
    late = f" | late lines {event['late']}" if event["late"] else ""
    return (
        f"[{event['start']} - {event['end']}] {event['requests']} requests, "
        f"{event['bytes']} bytes | sections: {sections or '-'} | methods: {methods or '-'} | "
        f"status: {statuses or '-'} | hosts: {hosts or '-'}{late}"
    )


class Forwarder:
    """Posts each evaluated second as a click batch, with an Idempotency-Key and retries."""

    def __init__(self, url: str, key: str, per_post: int = 60) -> None:
        import requests

        self.url = url.rstrip("/") + "/domains"
        self.key = key
        self.shift = 0  # seconds added to log time (--rebase)
        self.per_post = per_post
        self.session = requests.Session()
        self.run = uuid.uuid4().hex[:12]
        self._batches: list[dict[str, Any]] = []
        self.posted = 0

    def _name(self, key: Key) -> str | None:
        host, _, section, _, vhost = key
        if self.key == "section":
            # Domain keys cannot hold "/": "/api" is sent as "api", "/" as "_root".
            return section.strip("/") or "_root"
        if self.key == "vhost":
            return vhost or None
        return host.replace(":", "-")

    def second(self, t: int, counts: Counter, sizes: dict) -> None:
        if not counts:
            return
        batch: dict[str, Any] = {"timestamp": t + self.shift}
        for key, n in counts.items():
            name = self._name(key)
            if name is None:
                continue
            entry = batch.setdefault(name, {"clicks": 0, "bytes_out": 0})
            entry["clicks"] += n
            entry["bytes_out"] += sizes[key]
        self._batches.append(batch)
        if len(self._batches) >= self.per_post:
            self.flush()

    def flush(self) -> None:
        """Post what is buffered; a retry carries the same key, so it counts once."""
        if not self._batches:
            return
        body = orjson.dumps(self._batches)
        key = f"monitor-{self.run}-{self._batches[0]['timestamp']}-{len(self._batches)}"
        for attempt in range(8):
            try:
                response = self.session.post(
                    self.url,
                    data=body,
                    headers={"Content-Type": "application/json", "Idempotency-Key": key},
                    timeout=10,
                )
            except OSError as exc:
                error = str(exc)
            else:
                if response.status_code < 500:
                    if response.status_code >= 400:
                        raise SystemExit(f"the server refused a batch: {response.text}")
                    self.posted += len(self._batches)
                    self._batches = []
                    return
                error = f"HTTP {response.status_code}"
            print(f"posting failed ({error}), retrying", file=sys.stderr)
            time.sleep(min(10, 0.2 * 2**attempt))
        raise SystemExit(f"could not post to {self.url}")


def follow(path: str, on_idle: Callable[[], None], poll: float = 0.2) -> Iterator[str]:
    """Lines of a growing file, surviving rotation like `tail -F`; `on_idle` when none come."""
    handle, inode = None, None
    while True:
        if handle is None:
            try:
                handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
                inode = os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                on_idle()
                time.sleep(poll)
                continue
        line = handle.readline()
        if line:
            yield line
            continue
        try:
            stat = os.stat(path)
            rotated = stat.st_ino != inode or stat.st_size < handle.tell()
        except FileNotFoundError:
            rotated = False
        if rotated:
            # Read what the old file still held, then move to the new one.
            yield from handle
            handle.close()
            handle = None
            continue
        on_idle()
        time.sleep(poll)


class Progress:
    """A progress bar on stderr while a file is replayed to a terminal."""

    def __init__(self, stream: Any, total: int) -> None:
        self.stream, self.total, self.shown = stream, total, -1

    def update(self, done: int) -> None:
        percent = done * 100 // max(self.total, 1)
        if percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4)
            print(f"\r[{bar:<25}] {percent:3d}%", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        print(file=sys.stderr)


class _Counted:
    """Lines, counting them: the parser reads one line a row, so `number` is the current one."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = iter(lines)
        self.number = 0
        self.head: list[str] = []

    def peek(self, count: int) -> list[str]:
        while len(self.head) < count:
            line = next(self.lines, None)
            if line is None:
                break
            self.head.append(line)
        return self.head

    def __iter__(self) -> Iterator[str]:
        for line in self.head:
            self.number += 1
            yield line
        for line in self.lines:
            self.number += 1
            yield line


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """Run the monitor; return the exit code."""

    def emit(event: dict[str, Any]) -> None:
        print(orjson.dumps(event).decode() if args.json else render(event), file=out, flush=True)

    forwarder = Forwarder(args.post, args.key) if args.post else None
    monitor = LogMonitor(
        emit,
        interval=args.interval,
        window=args.window,
        threshold=args.threshold,
        lateness=args.lateness,
        on_second=forwarder.second if forwarder else None,
    )
    idle = {"since": time.monotonic()}

    def on_idle() -> None:
        # In --follow, a quiet log still lets its last seconds through after the lateness.
        if time.monotonic() - idle["since"] > args.lateness and monitor._latest is not None:
            monitor.advance(monitor._latest)
            if forwarder:
                forwarder.flush()

    progress = None
    if args.input == "-":
        source: Iterable[str] = io.TextIOWrapper(sys.stdin.buffer, errors="replace")
    elif args.follow:
        source = follow(args.input, on_idle)
    else:
        source = open(args.input, encoding="utf-8", errors="replace")  # noqa: SIM115
        if sys.stderr.isatty():
            progress = Progress(source, os.path.getsize(args.input))
    try:
        return _monitor(args, source, monitor, forwarder, emit, idle, progress)
    finally:
        close = getattr(source, "close", None)
        if close is not None and args.input != "-":
            close()


def _monitor(args, source, monitor, forwarder, emit, idle, progress) -> int:  # noqa: ANN001
    lines = _Counted(source)
    fmt = detect(lines.peek(5)) if args.format == "auto" else args.format
    malformed: list[tuple[int, str]] = []
    bad = 0
    for hit in parse(lines, fmt):
        idle["since"] = time.monotonic()
        if isinstance(hit, BadLine):
            bad += 1
            if args.strict:
                emit({"type": "malformed", "line": lines.number, "error": str(hit)})
                return 2
            if len(malformed) < 5:
                malformed.append((lines.number, str(hit)))
            continue
        if forwarder and args.rebase and forwarder.shift == 0:
            forwarder.shift = int(time.time()) - hit.time
        monitor.add(hit)
        if progress and lines.number % 8192 == 0:
            progress.update(source.buffer.tell())  # type: ignore[attr-defined]
    monitor.finish()
    if progress:
        progress.update(progress.total)
        progress.close()
    if forwarder:
        forwarder.flush()
    for number, error in malformed:
        emit({"type": "malformed", "line": number, "error": error})
    if bad:
        print(f"{bad} malformed lines (first {len(malformed)} shown)", file=sys.stderr)
    if forwarder:
        print(f"posted {forwarder.posted} seconds of traffic to {args.post}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="monitor.sh", description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default="-", help="a log file, or - for stdin")
    parser.add_argument("--format", choices=("auto", *FORMATS), default="auto")
    parser.add_argument("--follow", action="store_true", help="keep reading a growing file")
    parser.add_argument("--interval", type=int, default=10, help="stats every N s of log time")
    parser.add_argument("--window", type=int, default=120, help="alert window, seconds")
    parser.add_argument("--threshold", type=float, default=10, help="alert above N req/s")
    parser.add_argument("--lateness", type=int, default=5, help="seconds lines may lag")
    parser.add_argument("--post", metavar="URL", help="also send the traffic to domainstats")
    parser.add_argument("--key", choices=("section", "host", "vhost"), default="section")
    parser.add_argument(
        "--rebase", action="store_true", help="with --post: shift log time so it starts now"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad line")
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BadLine as exc:
        print(f"monitor: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `| head`: the reader has all it wanted
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
