"""Two apps on one Redis, in one test process: the same answers, one leader, one alert."""

from __future__ import annotations

import time

import pytest

from app import create_app
from core.model import Batch
from storage import Receipt, Replayed
from tests.conftest import T0
from tests.test_alerts import Receiver
from tests.test_scraper import Gateway


@pytest.fixture
def pair(redis_url, clock, tmp_path):
    """Two apps (two server processes, as far as Redis can tell) on one Redis and one clock."""
    yield from make_pair(redis_url, clock, tmp_path)


def make_pair(redis_url, clock, tmp_path, **config):
    """Yield two apps on one Redis and one clock, then close them."""
    settings = {
        "TESTING": True,
        "CLOCK": clock,
        "START_BACKGROUND": False,
        "STORAGE_URL": redis_url,
        "REBUILD_INTERVAL": 0.1,
        **config,
    }
    apps = [create_app({**settings, "DATA_DIR": str(tmp_path / name)}) for name in "ab"]
    yield apps
    for app in apps:
        app.extensions["domainstats"].close()


def tick(apps, clock, seconds=1):
    """Let time pass, each app running its background tick, delivery and scraping, as its
    loops would."""
    for _ in range(seconds):
        clock.tick(1)
        for app in apps:
            svc = app.extensions["domainstats"]
            svc.aggregator.rebuild_once()
            svc.notifier.deliver_due()
            svc.scraper.scrape_due()


def test_round_robin_posts_give_the_same_answers_everywhere(pair, clock):
    clients = [app.test_client() for app in pair]
    for i in range(40):
        body = {"timestamp": T0 - i * 97, f"d{i % 7}.com": i + 1, "all.com": 1}
        assert clients[i % 2].post("/domains", json=body).status_code == 200
    tick(pair, clock)
    leaders = [app.extensions["domainstats"].aggregator.leader for app in pair]
    assert sorted(leaders) == [False, True]
    for path in (
        "/domains/min",
        "/domains/hour?limit=3",
        "/domains/day?by=clicks",
        "/domains/d3.com",
        "/domains/d3.com/series?window=1h&step=300",
        "/summary",
    ):
        a, b = (client.get(path).json for client in clients)
        assert a == b, path
    day = clients[1].get("/domains/day").json["domains"]
    assert day["all.com"] == 40 and sum(day.values()) == 40 + sum(range(1, 41))
    tick(pair, clock)  # each process sends its request counts on its tick
    a, b = (client.get("/stats?window=1d").json for client in clients)
    assert (a["clicks"], a["domains"]) == (b["clicks"], b["domains"]) == (860, 8)
    # Both count every request of both: b's answer also counts a's /stats and its own.
    assert b["requestCount"] == a["requestCount"] + 1 == 40 + 2 * 6 + 1 + 2


def test_the_follower_serves_what_the_leader_published(pair, clock):
    a, b = pair
    a.test_client().post("/domains", json={"timestamp": T0, "x.com": 5})
    tick([a], clock)  # a leads and publishes
    b.extensions["domainstats"].aggregator.rebuild_once()
    assert b.extensions["domainstats"].aggregator.leader is False
    ready_a = a.extensions["domainstats"].aggregator._ready
    ready_b = b.extensions["domainstats"].aggregator._ready
    assert ready_b == ready_a and ready_b[("min", "clicks")].items == [("x.com", 5)]


def test_the_lease_moves_when_the_leader_stops(pair, clock):
    a, b = pair
    tick(pair, clock)
    assert a.extensions["domainstats"].aggregator.leader
    assert not b.extensions["domainstats"].aggregator.leader
    # The lease lives on Redis's own clock (3 ticks of 0.1 s here): a stops renewing it.
    time.sleep(0.4)
    tick([b], clock)
    assert b.extensions["domainstats"].aggregator.leader
    tick([a], clock)
    assert not a.extensions["domainstats"].aggregator.leader


def test_an_alert_fires_once_whatever_the_number_of_processes(pair, clock):
    receiver = Receiver()
    try:
        rule = {
            "domain": "*",
            "metric": "clicks",
            "window": "10s",
            "threshold": 1,
            "notify": [f"webhook:{receiver.url}"],
        }
        clients = [app.test_client() for app in pair]
        assert clients[1].post("/alerts/rules", json=rule).status_code == 201
        for i in range(10):
            body = {"timestamp": int(clock.now), "hot.com": 100}
            clients[i % 2].post("/domains", json=body)
            tick(pair, clock)
        for _ in range(20):
            tick(pair, clock)
        states = [body["state"] for body in receiver.bodies]
        assert states == ["firing", "recovered"]
        for client in clients:
            history = client.get("/alerts").json["history"]
            assert [event["state"] for event in history] == ["recovered", "firing"]
    finally:
        receiver.close()


def test_an_idempotency_key_is_honoured_by_every_process(pair):
    a, b = (app.test_client() for app in pair)
    body = {"timestamp": T0, "k.com": 3}
    headers = {"Idempotency-Key": "batch-1"}
    assert a.post("/domains", json=body, headers=headers).status_code == 200
    again = b.post("/domains", json=body, headers=headers)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    other = b.post("/domains", json={"timestamp": T0, "k.com": 4}, headers=headers)
    assert other.status_code == 422
    assert b.get("/domains/k.com").json["totals"]["min"]["clicks"] == 3


def test_a_key_taken_meanwhile_by_another_process_changes_nothing(pair):
    a, b = (app.extensions["domainstats"].storage for app in pair)
    receipt = Receipt("race", T0, b"d" * 16, b'{"status":"ok"}')
    a.add([Batch(T0, ["r.com"], [1, 0, 0])], receipt)
    with pytest.raises(Replayed) as raised:
        b.add([Batch(T0, ["r.com"], [5, 0, 0])], Receipt("race", T0, b"e" * 16, b"{}"))
    assert raised.value.receipt == receipt
    assert b.domain_totals("r.com", 60)["clicks"] == 1


def test_one_process_scrapes_for_all(redis_url, clock, tmp_path):
    gateway = Gateway()
    try:
        apps = make_pair(redis_url, clock, tmp_path, SCRAPE=gateway.url)
        pair = next(apps)
        gateway.traffic("shop", "cart", hits=5, rx=100, tx=1000)
        tick(pair, clock, 20)  # the leader's first scrape is the baseline
        gateway.traffic("shop", "cart", hits=3, rx=50, tx=700)
        tick(pair, clock, 20)
        totals = pair[0].extensions["domainstats"].storage.domain_totals("shop", 3600)
        assert totals == {"clicks": 3, "bytes_in": 50, "bytes_out": 700}
        next(apps, None)
    finally:
        gateway.stop()
