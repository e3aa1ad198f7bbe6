"""POST /domains and the top-N endpoints, through the test client."""

from __future__ import annotations

import json

import pytest

from tests.conftest import T0

SEED = {"timestamp": T0, "example1.com": 80, "example2.com": 5, "example3": 12}


def state(app):
    """Everything a rejected request must leave alone."""
    store = app.extensions["domainstats"].storage
    tops = [
        store.top(s, 1000, by).items for s in (60, 3600, 86400) for by in ("clicks", "bytes_in")
    ]
    return store.tracked_domains(), tops


def test_seed_batch_round_trip(client, rebuild):
    response = client.post("/domains", json=SEED)
    assert response.status_code == 200
    assert response.json == {"status": "ok", "message": "OK", "accepted": 3}
    rebuild()
    body = client.get("/domains/min").json
    assert body["domains"] == {"example1.com": 80, "example3": 12, "example2.com": 5}
    assert list(body["domains"]) == ["example1.com", "example3", "example2.com"]
    assert body["status"] == "ok"
    assert body["period"] == "min"
    assert body["window"] == 60
    assert body["from"] == "2022-02-09T11:48:05Z"
    assert body["to"] == body["updated_at"] == "2022-02-09T11:49:04Z"


def test_body_is_read_whatever_the_content_type(client, rebuild):
    # Seed-era scripts used `curl -d`, which says application/x-www-form-urlencoded.
    response = client.post("/domains", data=json.dumps(SEED), content_type="text/plain")
    assert response.status_code == 200


def test_bulk_array_and_value_objects(client, rebuild):
    body = [
        {"timestamp": T0, "a.com": {"clicks": 2, "bytes_in": 100, "bytes_out": 900}},
        {"timestamp": T0 - 10, "a.com": 3, "b.com": {"bytes_out": 50}},
    ]
    assert client.post("/domains", json=body).json["accepted"] == 3
    rebuild()
    assert client.get("/domains/min").json["domains"] == {"a.com": 5}
    assert client.get("/domains/min?by=bytes_out").json["domains"] == {"a.com": 900, "b.com": 50}
    assert client.get("/domains/hour?by=bytes_in").json["domains"] == {"a.com": 100}


def test_spellings_of_one_domain_add_up(client, rebuild):
    body = {"timestamp": T0, "Example.com": 1, " example.COM. ": 2, "bücher.example": 4}
    assert client.post("/domains", json=body).json["accepted"] == 2
    rebuild()
    assert client.get("/domains/min").json["domains"] == {
        "xn--bcher-kva.example": 4,
        "example.com": 3,
    }


@pytest.mark.parametrize("alias", ["min", "minute", "1m", "hour", "1h", "day", "24h", "1d"])
def test_period_aliases(client, rebuild, alias):
    client.post("/domains", json=SEED)
    rebuild()
    body = client.get(f"/domains/{alias}?limit=1").json
    assert body["domains"] == {"example1.com": 80}
    assert body["period"] in ("min", "hour", "day")


def test_limit_and_ties(client, rebuild):
    client.post("/domains", json={"timestamp": T0, "b.com": 5, "a.com": 5, "c.com": 9})
    rebuild()
    assert client.get("/domains/day?limit=2").json["domains"] == {"c.com": 9, "a.com": 5}


def test_answers_are_served_from_the_last_rebuild(client, rebuild, clock):
    rebuild()
    client.post("/domains", json=SEED)
    assert client.get("/domains/min").json["domains"] == {}
    clock.tick(1)
    rebuild()
    assert client.get("/domains/min").json["domains"]["example1.com"] == 80


def test_hour_and_day_rebuild_within_their_interval(client, rebuild, clock):
    rebuild()
    client.post("/domains", json=SEED)
    clock.tick(1)
    rebuild()
    assert client.get("/domains/hour").json["domains"] == {}
    clock.tick(4)
    rebuild()
    assert client.get("/domains/hour").json["domains"]["example1.com"] == 80
    assert client.get("/domains/day").json["domains"]["example1.com"] == 80


def test_any_window_on_request(client, clock):
    client.post("/domains", json={"timestamp": T0 - 80, "old.com": 1})
    client.post("/domains", json={"timestamp": T0, "new.com": 2})
    body = client.get("/domains/top?window=90s&limit=5").json
    assert body["domains"] == {"new.com": 2, "old.com": 1}
    assert body["period"] == "90s"
    assert body["window"] == 90
    assert client.get("/domains/top?window=1m").json["domains"] == {"new.com": 2}
    assert client.get("/domains/top?window=2h&by=bytes_in").json["domains"] == {}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("window=0s", "window"),
        ("window=91d", "window"),
        ("window=abc", "window"),
        ("window=1w", "window"),
        ("", "window"),
        ("window=1m&limit=0", "limit"),
        ("window=1m&limit=1001", "limit"),
        ("window=1m&by=visits", "by"),
    ],
)
def test_any_window_rejects(client, query, field):
    response = client.get(f"/domains/top?{query}")
    assert response.status_code == 422
    assert response.json["status"] == "error"
    assert field in response.json["errors"]["query"]


NOW_ISH = T0
BAD = [
    # (body, status, offending key in the errors)
    (b"{not json", 400, "body"),
    (b"", 400, "body"),
    (b"42", 400, "body"),
    (b'"text"', 400, "body"),
    (b"null", 400, "body"),
    ({"a.com": 1}, 422, "timestamp"),
    ({"timestamp": None, "a.com": 1}, 422, "timestamp"),
    ({"timestamp": True, "a.com": 1}, 422, "timestamp"),
    ({"timestamp": 1644407344.0, "a.com": 1}, 422, "timestamp"),
    ({"timestamp": "1644407344", "a.com": 1}, 422, "timestamp"),
    ({"timestamp": T0 - 90 * 86400 - 1, "a.com": 1}, 422, "timestamp"),
    ({"timestamp": T0 + 301, "a.com": 1}, 422, "timestamp"),
    ({"timestamp": T0, "a.com": -1}, 422, "a.com"),
    ({"timestamp": T0, "a.com": 1.5}, 422, "a.com"),
    ({"timestamp": T0, "a.com": True}, 422, "a.com"),
    ({"timestamp": T0, "a.com": "5"}, 422, "a.com"),
    ({"timestamp": T0, "a.com": None}, 422, "a.com"),
    ({"timestamp": T0, "a.com": [1]}, 422, "a.com"),
    ({"timestamp": T0, "a.com": 2**53}, 422, "a.com"),
    ({"timestamp": T0, "a.com": {"clicks": -1}}, 422, "a.com"),
    ({"timestamp": T0, "a.com": {"visits": 1}}, 422, "a.com"),
    ({"timestamp": T0, "a.com": {"bytes_in": 0.5}}, 422, "a.com"),
    ({"timestamp": T0, "ok.com": 1, "": 1}, 422, ""),
    ({"timestamp": T0, "ok.com": 1, "a b.com": 1}, 422, "a b.com"),
    ({"timestamp": T0, "ok.com": 1, "a.com/x": 1}, 422, "a.com/x"),
    ({"timestamp": T0, "ok.com": 1, "a.com:80": 1}, 422, "a.com:80"),
    ({"timestamp": T0, "ok.com": 1, "a\x01.com": 1}, 422, "a\x01.com"),
    ({"timestamp": T0, "ok.com": 1, "x" * 254: 1}, 422, "x" * 254),
    ([{"timestamp": T0, "ok.com": 1}, {"timestamp": T0, "a.com": -1}], 422, "1"),
    ([{"timestamp": T0, "ok.com": 1}, 7], 422, "1"),
    (b'{"timestamp": 1644407344, "a.com": 100000000000000000000000}', 422, "a.com"),
    (b'{"timestamp": 1644407344, "a.com": NaN}', 422, "a.com"),
]


@pytest.mark.parametrize(("body", "status", "key"), BAD)
def test_bad_input_is_rejected_and_changes_nothing(app, client, body, status, key):
    client.post("/domains", json={"timestamp": T0 - 5, "before.com": 3})
    before = state(app)
    if isinstance(body, bytes):
        response = client.post("/domains", data=body, content_type="application/json")
    else:
        response = client.post("/domains", json=body)
    assert response.status_code == status
    payload = response.json
    assert payload["status"] == "error"
    assert payload["message"]
    assert key in payload["errors"]
    assert state(app) == before


def test_body_over_the_limit_is_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 100
    before = state(app)
    body = {"timestamp": T0, **{f"d{i}.com": 1 for i in range(20)}}
    response = client.post("/domains", json=body)
    assert response.status_code == 413
    assert response.json["status"] == "error"
    assert state(app) == before


def test_unknown_period_is_a_json_404(client):
    response = client.get("/domains/week")
    assert response.status_code == 404
    assert response.json["status"] == "error"


def test_wrong_method_is_a_json_405_with_allow(client):
    response = client.delete("/domains/min")
    assert response.status_code == 405
    assert response.json["status"] == "error"
    assert "GET" in response.headers["Allow"]


def test_rejections_are_counted(client):
    client.post("/domains", data=b"{")
    client.post("/domains", json={"timestamp": "x"})
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'domainstats_rejections_total{reason="malformed"} 1.0' in metrics
    assert 'domainstats_rejections_total{reason="invalid"} 1.0' in metrics
