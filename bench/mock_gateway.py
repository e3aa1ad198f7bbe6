"""A demo gateway: Kong-style Prometheus counters that move, served by prometheus_client.

Usage: .venv/bin/python bench/mock_gateway.py [PORT]   (default 9542)
Then: ./start.sh --scrape http://127.0.0.1:9542/metrics
"""

from __future__ import annotations

import random
import sys
import time

from prometheus_client import CollectorRegistry, Counter, start_http_server

SERVICES = {"shop": ["cart", "checkout"], "blog": ["posts"], "api": ["v1", "v2"]}


def main(port: int = 9542) -> None:
    registry = CollectorRegistry()
    bandwidth = Counter(
        "kong_bandwidth_bytes",
        "Total bandwidth in bytes (ingress/egress) by service and route.",
        ["service", "route", "direction"],
        registry=registry,
    )
    requests = Counter(
        "kong_http_requests",
        "HTTP requests by service, route and status.",
        ["service", "route", "code"],
        registry=registry,
    )
    start_http_server(port, addr="127.0.0.1", registry=registry)
    print(f"serving Kong-style counters on http://127.0.0.1:{port}/metrics", flush=True)
    weights = {"shop": 5, "blog": 1, "api": 3}
    while True:
        for service, routes in SERVICES.items():
            for route in routes:
                hits = random.randint(0, 10 * weights[service])
                requests.labels(service, route, "200").inc(hits)
                bandwidth.labels(service, route, "ingress").inc(hits * random.randint(200, 800))
                bandwidth.labels(service, route, "egress").inc(hits * random.randint(2000, 90000))
        time.sleep(1)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9542)
