"""The state one app holds in `app.extensions["domainstats"]`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import current_app
from flask_smorest import abort
from gevent.event import Event

from aggregation import Aggregator
from alerts import AlertEngine, Notifier
from core.metrics import Metrics
from sources.scraper import Scraper
from storage import Storage


@dataclass
class Services:
    """Everything the views use, built once by `create_app`."""

    storage: Storage
    storage_name: str
    aggregator: Aggregator
    alerts: AlertEngine
    notifier: Notifier
    scraper: Scraper
    metrics: Metrics
    clock: Callable[[], float]
    started_at: float
    retention: int
    history: int
    future: int
    #: Idempotency keys of requests being committed right now.
    inflight: dict[str, Event] = field(default_factory=dict)

    def window(self, seconds: int) -> int:
        """Return `seconds` if it is a window this service can answer, else abort with 422."""
        if not 1 <= seconds <= self.history:
            message = f"window must be from 1 s to the history ({self.history} s)"
            abort(422, message=message, errors={"query": {"window": [message]}})
        return seconds

    def close(self) -> None:
        """Stop background work and release the storage."""
        self.aggregator.stop()
        self.notifier.stop()
        self.scraper.stop()
        self.alerts.close()
        self.storage.close()


def services() -> Services:
    """Return the current app's services."""
    return current_app.extensions["domainstats"]
