"""WSGI layers in front of Flask: request accounting, and the two hot endpoints.

Flask's own dispatch (request context, routing, hooks) costs more than everything else a
cached top-N answer needs, so `GET /domains/{period}` and `POST /domains` are answered here by
the same functions the Flask views call. Anything else, and every GET that is not a plain
valid one, goes to Flask unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from api.domains import post_domains, query_errors, top_body
from api.services import Services
from core.model import PERIOD_BY_NAME

#: Where the endpoint label of a request's latency is left in the WSGI environ.
ENDPOINT_KEY = "domainstats.endpoint"
_PERIODS = {f"/domains/{name}": period for name, period in PERIOD_BY_NAME.items()}
_STATUS = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class Accounting:
    """Count every request (durably) before it is handled, and time it."""

    def __init__(self, wsgi: WSGIApp, services: Services) -> None:
        self.wsgi = wsgi
        self.storage = services.storage
        self.histogram = services.metrics.request_seconds
        self._children: dict[tuple[str, str, str], Any] = {}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        self.storage.count_request()
        started = time.perf_counter()
        status = "500"

        def start(line: str, headers: list, exc_info: Any = None) -> Callable:
            nonlocal status
            status = line[:3]
            return start_response(line, headers, exc_info)

        try:
            return self.wsgi(environ, start)
        finally:
            labels = (environ["REQUEST_METHOD"], environ.get(ENDPOINT_KEY, "unmatched"), status)
            child = self._children.get(labels)
            if child is None:
                child = self._children[labels] = self.histogram.labels(*labels)
            child.observe(time.perf_counter() - started)


class FastPath:
    """Answer plain `GET /domains/{period}` and `POST /domains` without Flask."""

    def __init__(self, wsgi: WSGIApp, services: Services, config: Mapping[str, Any]) -> None:
        self.wsgi = wsgi
        self.services = services
        self.config = config

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if method == "GET" and path in _PERIODS:
            body = self._top(_PERIODS[path], environ.get("QUERY_STRING", ""))
            if body is not None:
                environ[ENDPOINT_KEY] = path
                return _send(start_response, 200, body, {})
        elif method == "POST" and path == "/domains":
            length = environ.get("CONTENT_LENGTH") or ""
            limit = self.config["MAX_CONTENT_LENGTH"]
            # Bodies of unknown or too large length go to Flask, which answers 413.
            if length.isdigit() and (limit is None or int(length) <= limit):
                environ[ENDPOINT_KEY] = "/domains"
                body = environ["wsgi.input"].read(int(length))
                key = environ.get("HTTP_IDEMPOTENCY_KEY")
                return _send(start_response, *post_domains(self.services, body, key))
        return self.wsgi(environ, start_response)

    def _top(self, period: Any, query: str) -> bytes | None:
        args: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            args.setdefault(name, value)
        limit, by = args.get("limit", "10"), args.get("by", "clicks")
        if query_errors(limit, by):
            return None  # Flask words the error
        ready = self.services.aggregator.ready(period, by)
        return top_body(ready, period.name, period.seconds, int(limit))


def _send(start_response: Callable, status: int, body: bytes, headers: dict) -> list[bytes]:
    start_response(
        _STATUS[status],
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *headers.items(),
        ],
    )
    return [body]
