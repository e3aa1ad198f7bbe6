"""The HTTP API: one blueprint per resource, one JSON error shape everywhere."""

from __future__ import annotations

import re
from typing import Any

import flask_smorest
import orjson
from flask import Flask, request
from flask.json.provider import JSONProvider
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import BaseConverter

from api import (
    alerts,
    docs,
    domains,
    health,
    limits,
    metrics,
    series,
    sources,
    stats,
    traffic,
)
from api.errors import error_payload, summarize
from api.fastpath import ENDPOINT_KEY
from api.schemas import ErrorSchema
from core.model import PERIOD_BY_NAME
from storage import StorageError

_RULE_ARGUMENT = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


class DomainConverter(BaseConverter):
    """A domain in a path, other than the words /domains/... already means (min, top, ...)."""

    reserved = ("top", *PERIOD_BY_NAME)
    regex = "(?!(?:" + "|".join(map(re.escape, reserved)) + ")(?:/|$))[^/]+"
    pattern = "^(?!(" + "|".join(map(re.escape, reserved)) + ")$)[^/]+$"


class OrjsonProvider(JSONProvider):
    """Fast JSON that keeps key order (top-N dicts are ordered by value)."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)


class Api(flask_smorest.Api):
    """flask-smorest's Api with our error shape and the `Allow` header kept on 405."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException) -> tuple[dict, int, dict]:
        data = getattr(error, "data", None) or {}
        errors = data.get("errors") or data.get("messages") or {}
        message = data.get("message") or (summarize(errors) if errors else error.description)
        payload = error_payload(message, errors)
        headers = dict(data.get("headers") or {})
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(sorted(error.valid_methods))
        return payload, error.code or 500, headers


def init_app(app: Flask) -> Api:
    """Register the blueprints and the OpenAPI doc on `app`."""
    app.json = OrjsonProvider(app)
    app.url_map.converters["domain"] = DomainConverter
    api = Api(app)

    @app.before_request
    def _label_endpoint() -> None:
        rule = request.url_rule
        # "/domains/<any(...):period>" -> "/domains/{period}", as in the OpenAPI paths.
        label = _RULE_ARGUMENT.sub(r"{\1}", rule.rule) if rule else "unmatched"
        request.environ[ENDPOINT_KEY] = label

    @app.errorhandler(StorageError)
    def storage_unavailable(error: StorageError) -> tuple[dict, int]:
        return error_payload(f"storage unavailable: {error}", {}), 503

    api.register_converter(
        DomainConverter, lambda converter: {"type": "string", "pattern": converter.pattern}
    )
    domains.register_components(api.spec)
    for module in (domains, series, traffic, limits, alerts, sources, stats, health, metrics):
        api.register_blueprint(module.blp)
    app.register_blueprint(docs.bp)
    return api
