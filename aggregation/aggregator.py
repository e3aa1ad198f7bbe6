"""The background work: rebuild the ready top-N of each period on a drift-corrected tick."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from core.loop import Periodic
from core.metrics import Metrics
from core.model import METRICS, PERIODS, Period
from storage.base import Coordinator, Offload, Storage, StorageError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ready:
    """A top-N answer as of `updated_at`, for the window [start, end]."""

    by: str
    start: int
    end: float
    updated_at: float
    items: list[tuple[str, int]]
    #: Serialised answers, by (period name, limit): built once per rebuild, then reused.
    bodies: dict[tuple[str, int], bytes] = field(default_factory=dict, compare=False)


class Aggregator:
    """Rebuilds the top `top_k` of each period and metric: `min` every tick, the rest less often.

    With a `coordinator` (a storage shared by many processes) one process at a time holds the
    lease: it rebuilds, publishes the answers and runs the tasks; the others read its answers.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
        slow_interval: float = 5.0,
        top_k: int = 1000,
        metrics: Metrics | None = None,
        offload: Offload | None = None,
        tasks: tuple[Callable[[], object], ...] = (),
        coordinator: Coordinator | None = None,
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.interval = interval
        self.slow_interval = slow_interval
        self.top_k = top_k
        self.metrics = metrics
        self.offload = offload
        #: More units of work run on each tick after the rebuild (alert evaluation, say).
        self.tasks = tasks
        self.coordinator = coordinator
        #: Whether this process did the last tick's work (always, without a coordinator).
        self.leader = coordinator is None
        self._ready: dict[tuple[str, str], Ready] = {}
        self._built_at: dict[str, float] = {}
        self._fetched: dict[str, bytes] = {}
        self._loop = Periodic(self.rebuild_once, interval, "aggregation tick")

    def ready(self, period: Period, by: str) -> Ready:
        """Return the ready answer, building it first if the loop has not yet."""
        answer = self._ready.get((period.name, by))
        if answer is None:
            self._rebuild(period, self.clock())
            answer = self._ready[(period.name, by)]
        return answer

    def rebuild_once(self) -> None:
        """Rebuild every period that is due; one failing period never stops the others."""
        now = self.clock()
        try:
            self.storage.maintain()
        except StorageError as exc:
            logger.warning("storage maintenance skipped: %s", exc)  # said once per tick
        except Exception:
            logger.exception("storage maintenance failed")
        if self.coordinator is not None:
            try:
                # A lease of a few ticks: a leader that dies is replaced within that time.
                self.leader = self.coordinator.lead("aggregator", 3 * self.interval)
                if not self.leader:
                    self._take_published()
            except StorageError as exc:
                self.leader = False
                logger.warning("aggregation tick skipped: %s", exc)
            if not self.leader:
                return
        for period in PERIODS:
            due = self._built_at.get(period.name, -float("inf")) + self.slow_interval
            if period.seconds <= 60 or now >= due:
                try:
                    self._rebuild(period, now)
                except Exception:
                    logger.exception("rebuilding the %s top-N failed", period.name)
                    if self.metrics:
                        self.metrics.rebuild_errors.inc()
        for task in self.tasks:
            try:
                task()
            except Exception:
                logger.exception("tick task %s failed", getattr(task, "__qualname__", task))

    def _rebuild(self, period: Period, now: float) -> None:
        started = time.perf_counter()
        shared = {}
        for by in METRICS:
            result = self.storage.top(period.seconds, self.top_k, by, self.offload)
            self._ready[(period.name, by)] = Ready(by, result.start, result.end, now, result.items)
            shared[by] = [result.start, result.end, now, result.items]
        self._built_at[period.name] = now
        if self.coordinator is not None:
            keep = 3 * max(self.interval, self.slow_interval)
            self.coordinator.publish("top:" + period.name, orjson.dumps(shared), keep)
        if self.metrics:
            self.metrics.rebuild_seconds.labels(period.name).observe(time.perf_counter() - started)

    def _take_published(self) -> None:
        """Use the answers the leader published (those that changed since the last look)."""
        names = [period.name for period in PERIODS]
        bodies = self.coordinator.fetch(["top:" + name for name in names])
        for name, body in zip(names, bodies, strict=True):
            if body is None or body == self._fetched.get(name):
                continue
            self._fetched[name] = body
            for by, (start, end, updated_at, items) in orjson.loads(body).items():
                pairs = [(domain, value) for domain, value in items]
                self._ready[(name, by)] = Ready(by, start, end, updated_at, pairs)
            self._built_at[name] = self.clock()

    def start(self) -> None:
        """Run `rebuild_once` every `interval` seconds in a greenlet until `stop`."""
        self._loop.start()

    def stop(self) -> None:
        """Stop the loop."""
        self._loop.stop()
