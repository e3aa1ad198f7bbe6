"""Alert rules against a real SMTP server (aiosmtpd) and a real HTTP receiver, fake clock."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from app import create_app
from tests.server import free_port


class Inbox:
    """An aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    @property
    def subjects(self) -> list[str]:
        return [m["Subject"] for m in self.messages]


@pytest.fixture
def smtp_port():
    return free_port()


@pytest.fixture
def inbox(smtp_port):
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    yield inbox
    controller.stop()


class Receiver:
    """A real HTTP server on loopback that records JSON posts; can fail the first ones."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures > 0:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def make_app(tmp_path, clock, smtp_port):
    apps = []

    def make_app(storage="sqlite://"):
        app = create_app({
            "TESTING": True,
            "CLOCK": clock,
            "START_BACKGROUND": False,
            "DATA_DIR": str(tmp_path / "data"),
            "STORAGE_URL": storage,
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        })  # fmt: skip
        apps.append(app)
        return app

    yield make_app
    for app in apps:
        try:
            app.extensions["domainstats"].close()
        except Exception:
            pass


def tick(app, clock, seconds=1):
    """Let time pass one second at a time, running the background tick and delivery."""
    svc = app.extensions["domainstats"]
    for _ in range(seconds):
        clock.tick(1)
        svc.aggregator.rebuild_once()
        svc.notifier.deliver_due()


def events(client):
    return [(e["state"], e["at"][-9:]) for e in reversed(client.get("/alerts").json["history"])]


def test_threshold_rule_fires_and_recovers_at_the_right_seconds(make_app, clock, inbox):
    app = make_app()
    client = app.test_client()
    rule = client.post("/alerts/rules", json={
        "name": "busy", "domain": "*", "metric": "clicks", "window": "10s", "threshold": 2,
        "notify": ["email:ops@example.com"],
    })  # fmt: skip
    assert rule.status_code == 201
    for second in range(8):  # 3 clicks a second: the 10 s average passes 2/s at the 7th second
        client.post("/domains", json={"timestamp": int(clock.now), "a.com": 3})
        tick(app, clock)
        firing = client.get("/alerts").json["firing"]
        assert bool(firing) == (second >= 6), second
    assert firing[0]["value"] == pytest.approx(2.4)  # now; it fired at 2.1
    assert firing[0]["at"] == "2022-02-09T11:49:11Z"
    tick(app, clock, 3)  # 24, then 21 (still above), then 18 clicks in the window: 1.8/s
    assert events(client) == [("firing", "11:49:11Z"), ("recovered", "11:49:15Z")]
    history = client.get("/alerts").json["history"]
    assert (
        history[1]["message"] == "busy: High traffic generated an alert - hits = 21, "
        "triggered at 2022-02-09T11:49:11Z"
    )
    assert history[0]["message"] == "busy: High traffic alert recovered at 2022-02-09T11:49:15Z"
    assert inbox.subjects == ["[domainstats] busy: firing", "[domainstats] busy: recovered"]
    body = inbox.messages[0].get_payload()
    assert "Threshold: 2" in body and "Dashboard: http://127.0.0.1:5000/" in body


def test_recover_below_stops_flapping_at_the_threshold(make_app, clock):
    app = make_app()
    client = app.test_client()
    client.post("/alerts/rules", json={
        "domain": "a.com", "metric": "clicks", "window": "1s", "threshold": 10,
        "recover_below": 5,
    })  # fmt: skip
    for clicks in (11, 10, 11, 9, 11, 6, 11, 5, 4):  # hovers at 10, then falls to 5
        client.post("/domains", json={"timestamp": int(clock.now) + 1, "a.com": clicks})
        tick(app, clock)
    assert [state for state, _ in events(client)] == ["firing", "recovered"]


def test_for_needs_the_rise_to_last(make_app, clock):
    app = make_app()
    client = app.test_client()
    client.post("/alerts/rules", json={
        "domain": "*", "metric": "clicks", "window": "1s", "threshold": 10, "for": "3s",
    })  # fmt: skip
    for clicks in (20, 20, 0, 20, 20, 20, 20):  # seconds :05 to :11
        client.post("/domains", json={"timestamp": int(clock.now) + 1, "a.com": clicks})
        tick(app, clock)
    # Above from :08 on (the rise at :05 ended at :07): 3 s later, at :11, it fires.
    assert events(client) == [("firing", "11:49:11Z")]


def test_requests_metric_counts_http_requests(make_app, clock):
    app = make_app()
    client = app.test_client()
    client.post("/alerts/rules", json={
        "domain": "*", "metric": "requests", "window": "1s", "threshold": 4,
    })  # fmt: skip
    clock.tick(1)
    for _ in range(5):
        client.get("/health")
    app.extensions["domainstats"].aggregator.rebuild_once()
    assert [s for s, _ in events(client)] == ["firing"]


def test_quota_mails_once_per_level_and_period(make_app, clock, inbox):
    app = make_app()
    client = app.test_client()
    client.post("/alerts/rules", json={
        "name": "egress", "domain": "a.com", "metric": "bytes_out", "period": "hour",
        "quota": 1000, "levels": [80, 90, 100], "notify": ["email:ops@example.com"],
    })  # fmt: skip
    for sent in (500, 350, 10, 100, 50, 300):  # 50%, 85%, 86%, 96%, 101%, 131%
        client.post("/domains", json={"timestamp": int(clock.now), "a.com": {"bytes_out": sent}})
        tick(app, clock)
    assert inbox.subjects == [
        "[domainstats] egress: quota 80%",
        "[domainstats] egress: quota 90%",
        "[domainstats] egress: quota 100%",
    ]
    assert (
        "a.com used 80% of its bytes_out quota for 2022-02-09T11" in inbox.messages[0].get_payload()
    )
    clock.tick(3600 - int(clock.now) % 3600)  # the next hour: the levels start over
    client.post("/domains", json={"timestamp": int(clock.now), "a.com": {"bytes_out": 950}})
    tick(app, clock, 2)
    assert len(inbox.subjects) == 5
    assert inbox.subjects[3:] == [
        "[domainstats] egress: quota 80%",
        "[domainstats] egress: quota 90%",
    ]


def test_webhook_is_retried_with_backoff_until_it_answers(make_app, clock):
    receiver = Receiver(failures=2)
    try:
        app = make_app()
        client = app.test_client()
        client.post("/alerts/rules", json={
            "domain": "*", "metric": "clicks", "window": "5s", "threshold": 0,
            "notify": [f"webhook:{receiver.url}"],
        })  # fmt: skip
        client.post("/domains", json={"timestamp": int(clock.now) + 1, "a.com": 1})
        tick(app, clock)  # fires; attempt 1 fails, next in 1 s
        tick(app, clock)  # attempt 2 fails, next in 2 s
        tick(app, clock)  # not yet due
        assert receiver.bodies == []
        tick(app, clock)  # attempt 3 succeeds
        assert len(receiver.bodies) == 1
        assert receiver.bodies[0]["state"] == "firing"
        assert receiver.bodies[0]["rule_id"] == 1
        tick(app, clock, 5)
        assert len(receiver.bodies) == 2 and receiver.bodies[1]["state"] == "recovered"
        metrics = client.get("/metrics").text
        assert 'domainstats_notifications_total{kind="webhook",outcome="failed"} 2.0' in metrics
        assert 'domainstats_notifications_total{kind="webhook",outcome="sent"} 2.0' in metrics
    finally:
        receiver.close()


def test_smtp_down_then_up_delivers_late(make_app, clock, smtp_port):
    app = make_app()
    client = app.test_client()
    client.post("/alerts/rules", json={
        "domain": "*", "metric": "clicks", "window": "1s", "threshold": 0,
        "notify": ["email:ops@example.com"],
    })  # fmt: skip
    client.post("/domains", json={"timestamp": int(clock.now) + 1, "a.com": 1})
    tick(app, clock, 4)  # nothing listens on the SMTP port yet
    assert app.extensions["domainstats"].alerts.pending() == 2  # firing, recovered
    assert 'kind="email",outcome="failed"' in client.get("/metrics").text
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        tick(app, clock, 10)
        assert sorted(inbox.subjects) == [
            "[domainstats] rule 1: firing",
            "[domainstats] rule 1: recovered",
        ]
        assert app.extensions["domainstats"].alerts.pending() == 0
    finally:
        controller.stop()


def test_a_restart_mid_alert_neither_forgets_nor_repeats(make_app, clock, inbox):
    app = make_app()
    client = app.test_client()
    client.post("/alerts/rules", json={
        "domain": "*", "metric": "clicks", "window": "10s", "threshold": 1,
        "notify": ["email:ops@example.com"],
    })  # fmt: skip
    client.post("/domains", json={"timestamp": int(clock.now) + 1, "a.com": 50})
    tick(app, clock, 2)
    assert inbox.subjects == ["[domainstats] rule 1: firing"]
    app.extensions["domainstats"].close()

    app = make_app()
    client = app.test_client()
    assert [a["state"] for a in client.get("/alerts").json["firing"]] == ["firing"]
    tick(app, clock, 3)
    assert inbox.subjects == ["[domainstats] rule 1: firing"]
    tick(app, clock, 10)
    assert inbox.subjects == ["[domainstats] rule 1: firing", "[domainstats] rule 1: recovered"]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"domain": "*", "metric": "visits", "window": "1m", "threshold": 1}, "metric"),
        ({"domain": "*", "metric": "clicks", "window": "1m", "threshold": -1}, "threshold"),
        ({"domain": "*", "metric": "clicks", "window": "soon", "threshold": 1}, "window"),
        ({"domain": "*", "metric": "clicks", "threshold": 1}, "window"),
        ({"domain": "*", "metric": "clicks", "window": "1m"}, "threshold"),
        (
            {"domain": "*", "metric": "clicks", "window": "1m", "threshold": 5, "recover_below": 6},
            "recover_below",
        ),
        (
            {
                "domain": "*",
                "metric": "clicks",
                "window": "1m",
                "threshold": 1,
                "notify": ["pager:ops"],
            },
            "notify",
        ),
        (
            {
                "domain": "*",
                "metric": "clicks",
                "window": "1m",
                "threshold": 1,
                "notify": ["webhook:ftp://x"],
            },
            "notify",
        ),
        (
            {
                "domain": "*",
                "metric": "clicks",
                "window": "1m",
                "threshold": 1,
                "notify": ["email:nobody"],
            },
            "notify",
        ),
        ({"domain": "a.com", "metric": "requests", "window": "1m", "threshold": 1}, "metric"),
        ({"domain": "a.com", "metric": "bytes_out", "quota": 0, "period": "day"}, "quota"),
        ({"domain": "a.com", "metric": "bytes_out", "quota": 10}, "period"),
        ({"domain": "a.com", "metric": "bytes_out", "quota": 10, "period": "week"}, "period"),
    ],
)
def test_bad_rules_are_refused(make_app, rule, field):
    response = make_app().test_client().post("/alerts/rules", json=rule)
    assert response.status_code == 422
    assert field in response.json["errors"]["json"]


def test_rules_crud(make_app):
    client = make_app().test_client()
    rule = {"domain": "A.com", "metric": "clicks", "window": "2m", "threshold": 10, "per": "minute"}
    created = client.post("/alerts/rules", json=rule).json
    assert created["domain"] == "a.com" and created["window"] == "120s"
    assert client.get(f"/alerts/rules/{created['id']}").json == created
    rule["threshold"] = 20
    assert client.put(f"/alerts/rules/{created['id']}", json=rule).json["threshold"] == 20
    assert [r["threshold"] for r in client.get("/alerts/rules").json["rules"]] == [20]
    assert client.delete(f"/alerts/rules/{created['id']}").status_code == 204
    assert client.get(f"/alerts/rules/{created['id']}").status_code == 404
    assert client.put("/alerts/rules/99", json=rule).status_code == 404
