"""Health, metrics, the OpenAPI document and the offline Swagger UI."""

from __future__ import annotations

import io
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import Client
from werkzeug.wrappers import Response

from tests.conftest import T0


def test_health(app, client, clock):
    client.post("/domains", json={"timestamp": T0, "a.com": 1})
    clock.tick(2.5)
    assert client.get("/health").json == {
        "status": "ok",
        "storage": app.config["STORAGE_URL"].partition(":")[0],
        "tracked_domains": 1,
        "uptime": 2.5,
    }


def test_metrics_parse_as_prometheus_text(client, rebuild):
    client.post("/domains", json=[{"timestamp": T0, "a.com": 3, "b.com": 4}, {"timestamp": T0}])
    rebuild()
    client.get("/domains/min")
    response = client.get("/metrics")
    assert response.content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }
    assert samples[("domainstats_batches_ingested_total", ())] == 2
    assert samples[("domainstats_clicks_ingested_total", ())] == 7
    assert samples[("domainstats_domain_entries_ingested_total", ())] == 2
    assert samples[("domainstats_tracked_domains", ())] == 2
    assert samples[("domainstats_rebuild_seconds_count", (("period", "min"),))] == 1
    latency = (
        "domainstats_request_seconds_count",
        (("endpoint", "/domains/min"), ("method", "GET"), ("status", "200")),
    )
    assert samples[latency] == 1


def test_openapi_documents_every_endpoint(client):
    spec = client.get("/openapi.json").json
    assert set(spec["paths"]) == {
        "/domains",
        *(f"/domains/{p}" for p in ("min", "minute", "1m", "hour", "1h", "day", "24h", "1d")),
        "/domains/top",
        "/domains/{domain}",
        "/domains/{domain}/series",
        "/series",
        "/limits",
        "/limits/{domain}",
        "/summary",
        "/alerts",
        "/alerts/rules",
        "/alerts/rules/{rule_id}",
        "/sources",
        "/stats",
        "/health",
        "/metrics",
    }
    post = spec["paths"]["/domains"]["post"]
    assert {"200", "400", "413", "422"} <= set(post["responses"])
    assert post["requestBody"]["content"]["application/json"]["examples"]
    assert "ClickBatch" in spec["components"]["schemas"]


def test_swagger_ui_is_served_offline(client):
    page = client.get("/docs").get_data(as_text=True)
    assets = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert assets, page
    for asset in assets:
        assert asset.startswith("/docs/static/"), asset
        with client.get(asset) as response:
            assert response.status_code == 200
    assert "http://" not in page and "https://" not in page


def test_fast_path_and_flask_answer_alike(app, client, rebuild):
    fast_post = client.post("/domains", json={"timestamp": T0, "a.com": 3, "b.com": 4})
    # A body of unknown length (chunked) goes through Flask's view.
    flask_post = client.post(
        "/domains",
        input_stream=io.BytesIO(b'{"timestamp": 1644407344, "c.com": 1}'),
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert fast_post.json == {"status": "ok", "message": "OK", "accepted": 2}
    assert flask_post.json == {"status": "ok", "message": "OK", "accepted": 1}
    rebuild()
    flask_only = Client(app.wsgi_app.wsgi.wsgi, Response)  # under Accounting and FastPath
    for query in ("", "?limit=2&by=clicks", "?by=bytes_out&limit=1000"):
        fast = client.get(f"/domains/hour{query}")
        slow = flask_only.get(f"/domains/hour{query}")
        assert fast.status_code == slow.status_code == 200
        assert fast.data == slow.data
        assert fast.headers["Content-Type"] == slow.headers["Content-Type"]
    assert client.get("/domains/hour?limit=0").status_code == 422
    metrics = client.get("/metrics").text
    assert 'endpoint="/domains/hour",method="GET",status="200"} 3.0' in metrics
    assert 'endpoint="/domains/hour",method="GET",status="422"} 1.0' in metrics
    assert 'endpoint="/domains",method="POST",status="200"} 2.0' in metrics


@pytest.mark.parametrize(
    "path",
    ["/domains/{domain}", "/domains/{domain}/series", "/series", "/summary", "/alerts", "/stats",
     "/sources", "/limits/{domain}"],
)  # fmt: skip
def test_answers_are_documented_with_examples(client, path):
    spec = client.get("/openapi.json").json
    content = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
    assert content.get("example"), path


def test_dashboard_pages_are_html(client):
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "domainstats.dashboard()" in page.get_data(as_text=True)
    domain = client.get("/ui/domains/Example.COM")
    assert 'data-domain="example.com"' in domain.get_data(as_text=True)
    bad = client.get("/ui/domains/not%20a%20domain")
    assert bad.status_code == 404 and bad.mimetype == "text/html"
    assert "is not a domain" in bad.get_data(as_text=True)
    # Every asset the pages load is served here (nothing from a CDN).
    for asset in ("app.js", "app.css", "vendor/uplot/uPlot.iife.min.js", "vendor/uplot/LICENSE"):
        with client.get(f"/ui/static/{asset}") as response:
            assert response.status_code == 200, asset
