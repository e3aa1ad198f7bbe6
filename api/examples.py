"""Example answers shown in the OpenAPI document (/docs)."""

POINTS = [
    {"time": "2022-02-09T11:47:00Z", "value": 0},
    {"time": "2022-02-09T11:48:00Z", "value": 12},
    {"time": "2022-02-09T11:49:00Z", "value": 80, "partial": True},
]
SERIES = {
    "status": "ok", "domain": "example1.com", "metric": "clicks", "step": 60,
    "from": "2022-02-09T11:47:00Z", "to": "2022-02-09T11:50:00Z", "points": POINTS,
}  # fmt: skip
MULTI_SERIES = {
    "status": "ok", "metric": "clicks", "step": 60,
    "from": "2022-02-09T11:47:00Z", "to": "2022-02-09T11:50:00Z",
    "series": [{"domain": "example1.com", "points": POINTS}],
}  # fmt: skip
COUNTS = {"clicks": 80, "bytes_in": 1200, "bytes_out": 56000}
RATES = {"rx_bitrate": 960.0, "tx_bitrate": 44800.0, "clicks_per_s": 8.0}
DOMAIN_STATS = {
    "status": "ok", "domain": "example1.com",
    "totals": {"min": COUNTS, "hour": COUNTS, "day": COUNTS},
    "rates": RATES, "peaks": {"rx_bitrate": 960.0, "tx_bitrate": 44800.0},
    "limits": {"max_rx_bitrate": 0.0, "max_tx_bitrate": 40000.0, "max_clicks_per_s": 0.0},
    "exceeded": {"rx_bitrate": False, "tx_bitrate": True, "clicks_per_s": False},
}  # fmt: skip
SUMMARY = {
    "status": "ok",
    "totals": {"min": COUNTS, "hour": COUNTS, "day": COUNTS},
    "rates": RATES,
    "active_domains": 3,
    "top": {"clicks": {"example1.com": 80, "example3": 12}, "bytes_in": {}, "bytes_out": {}},
    "exceeded": [
        {"domain": "example1.com", "limit": "max_tx_bitrate", "value": 44800.0, "max": 40000.0}
    ],
}
LIMITS = {
    "status": "ok", "domain": "example1.com",
    "max_rx_bitrate": 0.0, "max_tx_bitrate": 40000.0, "max_clicks_per_s": 100.0,
}  # fmt: skip
ALERTS = {
    "status": "ok",
    "firing": [{
        "rule": "High traffic", "rule_id": 1, "state": "firing", "value": 12.4,
        "threshold": 10.0, "at": "2019-02-07T21:12:36Z",
    }],
    "history": [{
        "rule": "High traffic", "rule_id": 1, "state": "firing", "value": 10.05,
        "threshold": 10.0, "at": "2019-02-07T21:12:36Z",
        "message": "High traffic: High traffic generated an alert - hits = 1206, "
        "triggered at 2019-02-07T21:12:36Z",
    }],
}  # fmt: skip
STATS = {"status": "ok", "window": 60, "requestCount": 4, "clicks": 97, "domains": 3}
SOURCES = {
    "status": "ok",
    "sources": [{
        "url": "http://127.0.0.1:9542/metrics", "interval": 15.0, "key": "service", "up": True,
        "last_scrape": "2026-11-24T20:52:25Z", "last_duration": 0.0057, "last_error": None,
        "scrapes": 2, "failures": 0,
    }],
}  # fmt: skip
