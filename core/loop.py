"""A background loop kept apart from the unit of work it runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import gevent

logger = logging.getLogger(__name__)


class Periodic:
    """Run `work` every `interval` seconds in a greenlet: drift-corrected, surviving errors."""

    def __init__(self, work: Callable[[], object], interval: float, name: str) -> None:
        self.work = work
        self.interval = interval
        self.name = name
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def _run(self) -> None:
        next_tick = time.monotonic()
        while True:
            try:
                self.work()
            except Exception:
                # Never let the loop die: a broken round is logged and the next one runs.
                logger.exception("%s failed", self.name)
            next_tick += self.interval
            delay = next_tick - time.monotonic()
            if delay < 0:
                # Fell behind (a slow round): skip the missed rounds instead of bursting.
                next_tick -= delay
                delay = 0
            gevent.sleep(delay)
