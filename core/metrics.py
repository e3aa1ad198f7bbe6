"""Prometheus metrics of one app, in a registry of its own (never the global one)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """The counters and timings the service exports at /metrics."""

    def __init__(self, tracked_domains: Callable[[], float]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batches = Counter(
            "domainstats_batches_ingested", "Click batches accepted.", registry=r
        )
        self.clicks = Counter("domainstats_clicks_ingested", "Clicks accepted.", registry=r)
        self.entries = Counter(
            "domainstats_domain_entries_ingested", "Domain entries accepted.", registry=r
        )
        self.replays = Counter(
            "domainstats_idempotent_replays",
            "Retries answered from a stored response (Idempotency-Key).",
            registry=r,
        )
        self.rejections = Counter(
            "domainstats_rejections", "Requests rejected, by reason.", ["reason"], registry=r
        )
        self.rebuild_seconds = Histogram(
            "domainstats_rebuild_seconds",
            "Time to rebuild the ready top-N of one period.",
            ["period"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.rebuild_errors = Counter(
            "domainstats_rebuild_errors", "Rebuilds that failed.", registry=r
        )
        self.request_seconds = Histogram(
            "domainstats_request_seconds",
            "HTTP request latency.",
            ["method", "endpoint", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
            registry=r,
        )
        self.notifications = Counter(
            "domainstats_notifications",
            "Alert notifications by kind (email, webhook) and outcome (sent, failed, expired).",
            ["kind", "outcome"],
            registry=r,
        )
        self.scrapes = Counter(
            "domainstats_scrapes",
            "Prometheus scrapes by outcome (ok, failed).",
            ["outcome"],
            registry=r,
        )
        Gauge(
            "domainstats_tracked_domains", "Distinct domains known (seen since start).", registry=r
        ).set_function(tracked_domains)
