"""Time series, rates, limits and the summary, through the test client on a fake clock."""

from __future__ import annotations

import csv
import io

import pytest

from app import create_app
from tests.conftest import T0

MINUTE0 = T0 // 60 * 60  # 11:49:00


def post(client, body):
    response = client.post("/domains", json=body)
    assert response.status_code == 200, response.json
    return response


def test_series_sums_each_step_with_late_clicks(client, clock):
    post(client, [
        {"timestamp": T0, "a.com": 1},
        {"timestamp": T0 - 60, "a.com": 2},
        {"timestamp": T0 - 65, "a.com": 3, "b.com": 9},
        {"timestamp": T0 - 600, "a.com": 4},
    ])  # fmt: skip
    body = client.get("/domains/a.com/series?lookback=10m&step=1m").json
    assert body["step"] == 60
    assert body["from"] == "2022-02-09T11:39:00Z"
    assert body["to"] == "2022-02-09T11:50:00Z"
    values = [p["value"] for p in body["points"]]
    assert values == [4, 0, 0, 0, 0, 0, 0, 0, 3, 2, 1]
    assert body["points"][-1]["partial"] is True
    assert all("partial" not in p for p in body["points"][:-1])
    # Late clicks arriving now land in their own minute.
    post(client, {"timestamp": T0 - 300, "A.com.": 7})
    values = [p["value"] for p in client.get("/domains/a.com/series?lookback=10m").json["points"]]
    assert values == [4, 0, 0, 0, 0, 7, 0, 0, 3, 2, 1]


def test_second_steps_and_from_to(client):
    post(client, [{"timestamp": T0 - 2, "a.com": 2}, {"timestamp": T0, "a.com": 5}])
    body = client.get(f"/domains/a.com/series?from={T0 - 3}&to={T0}&step=1s").json
    assert [p["value"] for p in body["points"]] == [0, 2, 0, 5]
    iso = client.get(
        "/domains/a.com/series?from=2022-02-09T11:49:01Z&to=2022-02-09T11:49:04Z&step=1s"
    ).json
    assert [p["value"] for p in iso["points"]] == [0, 2, 0, 5]


def test_bytes_and_several_domains_and_csv(client):
    post(client, {
        "timestamp": T0,
        "a.com": {"clicks": 1, "bytes_out": 500},
        "b.com": {"bytes_out": 900},
        "c.com": 50,
    })  # fmt: skip
    body = client.get("/series?domains=a.com,b.com&metric=bytes_out&lookback=2m").json
    assert [(s["domain"], [p["value"] for p in s["points"]]) for s in body["series"]] == [
        ("a.com", [0, 0, 500]),
        ("b.com", [0, 0, 900]),
    ]
    top = client.get("/series?top=2&window=1h&metric=bytes_out&lookback=1m").json
    assert [s["domain"] for s in top["series"]] == ["b.com", "a.com"]
    text = client.get("/series?domains=a.com,c.com&lookback=1m&format=csv")
    assert text.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(text.get_data(as_text=True))))
    assert rows == [
        ["time", "a.com", "c.com", "partial"],
        ["2022-02-09T11:48:00Z", "0", "0", ""],
        ["2022-02-09T11:49:00Z", "1", "50", "true"],
    ]


def test_series_across_a_restart(tmp_path, clock):
    config = {"TESTING": True, "CLOCK": clock, "START_BACKGROUND": False,
              "DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    app = create_app(config)
    post(app.test_client(), [{"timestamp": T0, "a.com": 1}, {"timestamp": T0 - 60, "a.com": 2}])
    before = app.test_client().get("/domains/a.com/series?lookback=3m").json
    app.extensions["domainstats"].close()
    app = create_app(config)
    assert app.test_client().get("/domains/a.com/series?lookback=3m").json == before
    assert [p["value"] for p in before["points"]] == [0, 0, 2, 1]
    app.extensions["domainstats"].close()


def test_rollups_answer_a_week_after_the_hot_buckets_expired(client, clock):
    post(client, [{"timestamp": T0, "a.com": 3}, {"timestamp": T0 - 3 * 86400, "a.com": 4}])
    assert client.get("/domains/top?window=7d").json["domains"] == {"a.com": 7}
    clock.tick(2 * 86400)  # T0's minute is past the 25 h retention: only roll-ups hold it
    client.get("/health")
    assert client.get("/domains/top?window=1d").json["domains"] == {}
    assert client.get("/domains/top?window=7d").json["domains"] == {"a.com": 7}
    body = client.get("/domains/a.com/series?lookback=6d&step=1d").json
    assert sum(p["value"] for p in body["points"]) == 7
    assert client.get("/domains/a.com/series?lookback=3d&step=1h").status_code == 200
    refused = client.get("/domains/a.com/series?lookback=3d&step=1m")
    assert refused.status_code == 422
    assert "whole hours" in refused.json["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lookback=1d&step=1s", "step"),  # 86,401 points
        ("lookback=1h&step=0", "step"),
        ("lookback=1h&step=2d", "step"),
        ("lookback=1d&step=90s", "step"),
        (f"from={T0}&to={T0 - 10}", "from"),
        ("from=yesterday", "from"),
        ("metric=visits", "metric"),
        ("format=xml", "format"),
    ],
)
def test_series_rejects(client, query, field):
    response = client.get(f"/domains/a.com/series?{query}")
    assert response.status_code == 422
    assert field in response.json["errors"]["query"]


def test_multi_series_needs_domains_or_top(client):
    assert client.get("/series").status_code == 422
    assert client.get("/series?domains=a.com&top=3").status_code == 422
    assert client.get("/series?domains=a%20b").status_code == 422


def test_rates_from_known_byte_counts(client, clock):
    post(client, [
        {"timestamp": T0 - 5, "a.com": {"clicks": 20, "bytes_in": 1000, "bytes_out": 5000}},
        {"timestamp": T0, "a.com": {"clicks": 10, "bytes_in": 250}},
    ])  # fmt: skip
    body = client.get("/domains/a.com").json
    assert body["rates"] == {"rx_bitrate": 1000.0, "tx_bitrate": 4000.0, "clicks_per_s": 3.0}
    assert body["peaks"] == {"rx_bitrate": 1000.0, "tx_bitrate": 4000.0}
    assert body["totals"]["min"] == {"clicks": 30, "bytes_in": 1250, "bytes_out": 5000}
    clock.tick(6)  # the T0 - 5 batch leaves the 10 s rate window; the peak stays for the hour
    body = client.get("/domains/a.com").json
    assert body["rates"] == {"rx_bitrate": 200.0, "tx_bitrate": 0.0, "clicks_per_s": 1.0}
    assert body["peaks"] == {"rx_bitrate": 1000.0, "tx_bitrate": 4000.0}
    clock.tick(3700)
    assert client.get("/domains/a.com").json["peaks"] == {"rx_bitrate": 0.0, "tx_bitrate": 0.0}


@pytest.mark.parametrize(("limit", "over"), [(3999.0, True), (4000.0, False), (0, False)])
def test_exceeded_flips_exactly_at_the_limit(client, limit, over):
    post(client, {"timestamp": T0, "a.com": {"bytes_out": 5000}})  # 4000 bit/s over 10 s
    put = client.put("/limits/a.com", json={"max_tx_bitrate": limit})
    assert put.status_code == 200
    assert client.get("/domains/a.com").json["exceeded"] == {
        "rx_bitrate": False,
        "tx_bitrate": over,
        "clicks_per_s": False,
    }
    exceeded = client.get("/summary").json["exceeded"]
    expected = [{"domain": "a.com", "limit": "max_tx_bitrate", "value": 4000.0, "max": limit}]
    assert exceeded == (expected if over else [])


def test_limits_api(client):
    assert client.get("/limits").json == {"status": "ok", "limits": {}}
    assert client.put("/limits/Example.COM", json={"max_clicks_per_s": 5}).json["domain"] == (
        "example.com"
    )
    assert client.put("/limits/_total", json={"max_rx_bitrate": 1e6}).status_code == 200
    assert client.get("/limits").json["limits"] == {
        "_total": {"max_rx_bitrate": 1e6, "max_tx_bitrate": 0.0, "max_clicks_per_s": 0.0},
        "example.com": {"max_rx_bitrate": 0.0, "max_tx_bitrate": 0.0, "max_clicks_per_s": 5.0},
    }
    assert client.get("/domains/example.com").json["limits"]["max_clicks_per_s"] == 5.0
    assert client.put("/limits/a.com", json={"max_rx_bitrate": -1}).status_code == 422
    assert client.put("/limits/a.com", json={"speed": 1}).status_code == 422
    assert client.put("/limits/a%20b", json={}).status_code == 422
    assert client.delete("/limits/example.com").status_code == 204
    assert client.delete("/limits/example.com").status_code == 404
    assert client.get("/limits/example.com").status_code == 404


def test_limits_survive_a_restart(tmp_path, clock):
    config = {"TESTING": True, "CLOCK": clock, "START_BACKGROUND": False,
              "DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    app = create_app(config)
    app.test_client().put("/limits/_total", json={"max_clicks_per_s": 2})
    app.extensions["domainstats"].close()
    app = create_app(config)
    assert app.test_client().get("/limits/_total").json["max_clicks_per_s"] == 2
    app.extensions["domainstats"].close()


def test_summary(client):
    post(client, [
        {"timestamp": T0, "a.com": {"clicks": 10, "bytes_in": 100}, "b.com": 30},
        {"timestamp": T0 - 120, "old.com": 5},
    ])  # fmt: skip
    client.put("/limits/_total", json={"max_clicks_per_s": 3.5})
    body = client.get("/summary").json
    assert body["totals"]["min"] == {"clicks": 40, "bytes_in": 100, "bytes_out": 0}
    assert body["totals"]["hour"]["clicks"] == 45
    assert body["rates"] == {"rx_bitrate": 80.0, "tx_bitrate": 0.0, "clicks_per_s": 4.0}
    assert body["active_domains"] == 2
    assert body["top"]["clicks"] == {"b.com": 30, "a.com": 10}
    assert body["exceeded"] == [
        {"domain": "_total", "limit": "max_clicks_per_s", "value": 4.0, "max": 3.5}
    ]


def test_unknown_domain_is_404(client):
    assert client.get("/domains/nobody.example").status_code == 404
