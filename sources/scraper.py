"""Scrape Prometheus endpoints (Kong's bandwidth and request counters) into click batches.

Counters become deltas between scrapes: the first scrape of a series only sets its baseline,
and a counter that went down was reset, so its new value is the delta.
"""

from __future__ import annotations

import logging
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from core.domains import normalize_domain
from core.loop import Periodic
from core.metrics import Metrics
from core.model import Batch
from core.timeutil import isoformat
from storage.base import Offload, Storage

logger = logging.getLogger(__name__)

#: Sample name -> the metric it feeds; bandwidth splits by its direction label.
BANDWIDTH = {"kong_bandwidth_bytes", "kong_bandwidth_bytes_total", "kong_bandwidth"}
BANDWIDTH |= {"kong_bandwidth_total"}
REQUESTS = {"kong_http_requests_total", "kong_http_requests"}
DIRECTIONS = {"ingress": 1, "egress": 2}  # -> bytes_in, bytes_out


@dataclass
class Target:
    """One endpoint to scrape, and how it went."""

    url: str
    interval: float = 15.0
    key: str = "service"  # or "service.route"
    up: bool | None = None
    last_scrape: float | None = None
    last_duration: float | None = None
    last_error: str | None = None
    scrapes: int = 0
    failures: int = 0
    next_at: float = 0.0
    failing_in_a_row: int = 0
    baseline: dict[tuple, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "interval": self.interval,
            "key": self.key,
            "up": self.up,
            "last_scrape": None if self.last_scrape is None else isoformat(self.last_scrape),
            "last_duration": self.last_duration,
            "last_error": self.last_error,
            "scrapes": self.scrapes,
            "failures": self.failures,
        }


def load_targets(urls: list[str], config_path: str | None) -> list[Target]:
    """Targets from `--scrape URL` options and a TOML file of `[[target]]` tables."""
    targets = [Target(url) for url in urls if url]
    if config_path:
        with open(config_path, "rb") as f:
            config = tomllib.load(f)
        for entry in config.get("target", []):
            key = entry.get("key", "service")
            if key not in ("service", "service.route"):
                raise ValueError(f"{config_path}: key must be service or service.route")
            targets.append(Target(entry["url"], float(entry.get("interval", 15)), key))
    return targets


def _fetch(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode("utf-8", errors="replace")


class Scraper:
    """Scrapes due targets into the store; failures are logged, counted and retried."""

    def __init__(
        self,
        storage: Storage,
        targets: list[Target],
        *,
        clock: Callable[[], float] = time.time,
        offload: Offload | None = None,
        metrics: Metrics | None = None,
        gate: Callable[[], bool] | None = None,
    ) -> None:
        self.storage = storage
        self.targets = targets
        #: When given, targets are scraped only while it says True (one process of many).
        self.gate = gate
        self.clock = clock
        self.offload = offload
        self.metrics = metrics
        self._loop = Periodic(self.scrape_due, 0.5, "scraping")

    def scrape_due(self) -> None:
        """Scrape every target whose time has come (the unit of work of the loop)."""
        if self.gate is not None and not self.gate():
            for target in self.targets:
                # Another process scrapes meanwhile: start afresh if this one takes over.
                target.baseline.clear()
            return
        for target in self.targets:
            if self.clock() >= target.next_at:
                self.scrape(target)

    def scrape(self, target: Target) -> None:
        now = self.clock()
        started = time.perf_counter()
        try:
            timeout = min(10.0, target.interval)
            if self.offload is None:
                text = _fetch(target.url, timeout)
            else:
                text = self.offload(_fetch, (target.url, timeout))
            counts = self._deltas(target, text)
            if counts:
                self.storage.add([_batch(int(now), counts)])
        except Exception as exc:
            target.up = False
            target.failures += 1
            target.failing_in_a_row += 1
            target.last_error = f"{type(exc).__name__}: {exc}"
            # Retry sooner than the interval at first: 1 s, 2 s, 4 s ... up to the interval.
            target.next_at = now + min(target.interval, 2 ** (target.failing_in_a_row - 1))
            logger.warning("scraping %s failed: %s", target.url, target.last_error)
            outcome = "failed"
        else:
            target.up = True
            target.last_error = None
            target.failing_in_a_row = 0
            target.next_at = now + target.interval
            outcome = "ok"
        target.scrapes += 1
        target.last_scrape = now
        target.last_duration = round(time.perf_counter() - started, 6)
        if self.metrics:
            self.metrics.scrapes.labels(outcome).inc()

    def _deltas(self, target: Target, text: str) -> dict[str, list[int]]:
        """Per key: [clicks, bytes_in, bytes_out] since the last scrape."""
        counts: dict[str, list[int]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in REQUESTS:
                    column = 0
                elif sample.name in BANDWIDTH:
                    direction = sample.labels.get("direction") or sample.labels.get("type")
                    column = DIRECTIONS.get(direction or "")
                    if column is None:
                        continue
                else:
                    continue
                service = sample.labels.get("service")
                if not service:
                    continue
                key = service
                if target.key == "service.route":
                    key = f"{service}.{sample.labels.get('route') or '_'}"
                series = (sample.name, tuple(sorted(sample.labels.items())))
                last = target.baseline.get(series)
                target.baseline[series] = sample.value
                if last is None:
                    continue  # the first scrape only sets the baseline
                delta = sample.value - last if sample.value >= last else sample.value
                if delta <= 0:
                    continue
                try:
                    name = normalize_domain(key)
                except ValueError:
                    logger.warning("scraped key %r is not a valid domain key; skipped", key)
                    continue
                counts.setdefault(name, [0, 0, 0])[column] += round(delta)
        return counts

    def status(self) -> list[dict[str, Any]]:
        return [target.describe() for target in self.targets]

    def start(self) -> None:
        """Scrape due targets twice a second in a greenlet (none without targets)."""
        if self.targets:
            self._loop.start()

    def stop(self) -> None:
        self._loop.stop()


def _batch(timestamp: int, counts: dict[str, list[int]]) -> Batch:
    return Batch(timestamp, list(counts), [v for triple in counts.values() for v in triple])
