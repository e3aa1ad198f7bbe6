"""The Prometheus scraper against a real endpoint served by prometheus_client."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from sources.scraper import Scraper, Target, load_targets
from storage import MemoryStorage
from tests.server import free_port


class Gateway:
    """Kong-style counters on a loopback port, with a fresh registry on `restart()`."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.server = None
        self.restart()

    def restart(self) -> None:
        self.stop()
        self.registry = CollectorRegistry()
        self.bandwidth = Counter(
            "kong_bandwidth_bytes", "bytes", ["service", "route", "direction"],
            registry=self.registry,
        )  # fmt: skip
        self.requests = Counter(
            "kong_http_requests", "requests", ["service", "route", "code"], registry=self.registry
        )
        self.server, self.thread = start_http_server(
            self.port, addr="127.0.0.1", registry=self.registry
        )

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def traffic(self, service: str, route: str, hits: int, rx: int, tx: int) -> None:
        self.requests.labels(service, route, "200").inc(hits)
        self.bandwidth.labels(service, route, "ingress").inc(rx)
        self.bandwidth.labels(service, route, "egress").inc(tx)


@pytest.fixture
def gateway():
    gateway = Gateway()
    yield gateway
    gateway.stop()


@pytest.fixture
def store(clock):
    return MemoryStorage(clock=clock)


def totals(store, name):
    return store.domain_totals(name, 3600)


def test_counters_become_deltas_after_a_baseline(gateway, store, clock):
    scraper = Scraper(store, [Target(gateway.url, interval=15)], clock=clock)
    gateway.traffic("shop", "cart", hits=5, rx=100, tx=1000)
    scraper.scrape_due()  # the baseline: nothing counted yet
    assert store.tracked_domains() == 0
    gateway.traffic("shop", "cart", hits=3, rx=50, tx=700)
    gateway.traffic("shop", "checkout", hits=2, rx=10, tx=20)
    clock.tick(10)
    scraper.scrape_due()  # not due before the interval
    assert store.tracked_domains() == 0
    clock.tick(5)
    scraper.scrape_due()
    # checkout's series is new in this scrape: it only sets its baseline.
    assert totals(store, "shop") == {"clicks": 3, "bytes_in": 50, "bytes_out": 700}
    gateway.traffic("shop", "checkout", hits=4, rx=1, tx=2)
    clock.tick(15)
    scraper.scrape_due()
    assert totals(store, "shop") == {"clicks": 7, "bytes_in": 51, "bytes_out": 702}
    (status,) = scraper.status()
    assert status["up"] is True and status["scrapes"] == 3 and status["failures"] == 0


def test_service_and_route_keys(gateway, store, clock):
    scraper = Scraper(store, [Target(gateway.url, key="service.route")], clock=clock)
    gateway.traffic("shop", "cart", 1, 1, 1)
    scraper.scrape_due()
    gateway.traffic("shop", "cart", 2, 0, 30)
    clock.tick(15)
    scraper.scrape_due()
    assert totals(store, "shop.cart") == {"clicks": 2, "bytes_in": 0, "bytes_out": 30}


def test_a_counter_that_goes_down_was_reset(gateway, store, clock):
    scraper = Scraper(store, [Target(gateway.url)], clock=clock)
    gateway.traffic("blog", "posts", 100, 0, 0)
    scraper.scrape_due()
    gateway.restart()  # the gateway restarted: its counters start from zero
    gateway.traffic("blog", "posts", 4, 0, 0)
    clock.tick(15)
    scraper.scrape_due()
    assert totals(store, "blog")["clicks"] == 4


def test_a_target_down_is_retried_with_backoff_and_comes_back(gateway, store, clock):
    scraper = Scraper(store, [Target(gateway.url, interval=15)], clock=clock)
    gateway.traffic("api", "v1", 100, 0, 0)
    scraper.scrape_due()
    gateway.stop()
    clock.tick(15)
    scraper.scrape_due()
    (status,) = scraper.status()
    assert status["up"] is False and status["failures"] == 1
    assert "Error" in status["last_error"]
    attempts = []
    for _ in range(8):  # retries at 1 s, 2 s, 4 s ... not once per second
        clock.tick(1)
        before = scraper.status()[0]["scrapes"]
        scraper.scrape_due()
        attempts.append(scraper.status()[0]["scrapes"] - before)
    assert attempts == [1, 0, 1, 0, 0, 0, 1, 0]
    gateway.restart()
    gateway.traffic("api", "v1", 6, 0, 0)
    clock.tick(8)
    scraper.scrape_due()
    (status,) = scraper.status()
    assert status["up"] is True and status["last_error"] is None
    # A restarted gateway's counters are below the last value seen: a reset, counted whole.
    assert totals(store, "api")["clicks"] == 6


def test_targets_from_a_config_file(tmp_path):
    config = tmp_path / "scrape.toml"
    config.write_text(
        '[[target]]\nurl = "http://127.0.0.1:9/metrics"\ninterval = 5\nkey = "service.route"\n'
    )
    targets = load_targets(["http://127.0.0.1:8/metrics"], str(config))
    assert [(t.url, t.interval, t.key) for t in targets] == [
        ("http://127.0.0.1:8/metrics", 15.0, "service"),
        ("http://127.0.0.1:9/metrics", 5.0, "service.route"),
    ]


def test_sources_endpoint_and_metrics(gateway, tmp_path, clock):
    from app import create_app

    app = create_app({
        "TESTING": True, "CLOCK": clock, "START_BACKGROUND": False,
        "STORAGE_URL": "memory://", "SCRAPE": gateway.url,
    })  # fmt: skip
    client = app.test_client()
    app.extensions["domainstats"].scraper.scrape_due()
    body = client.get("/sources").json
    assert body["sources"][0]["url"] == gateway.url and body["sources"][0]["up"] is True
    assert 'domainstats_scrapes_total{outcome="ok"} 1.0' in client.get("/metrics").text
    app.extensions["domainstats"].close()
