"""Click batches in (POST /domains) and top domains out (GET /domains/...)."""

from __future__ import annotations

import hashlib

import orjson
from apispec import APISpec
from flask import Response, current_app, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from gevent.event import Event

from aggregation import Ready
from api.ingest import BadBody, InvalidBatch, load_json, parse_batches
from api.schemas import (
    CLICK_BATCH,
    DOMAIN_COUNTS,
    ErrorSchema,
    IngestResultSchema,
    TopDomainsSchema,
    TopQueryArgsSchema,
    WindowTopQueryArgsSchema,
)
from api.services import Services, services
from core.model import PERIOD_BY_NAME
from core.timeutil import isoformat
from storage import Receipt

blp = Blueprint("domains", __name__, description="Click batches and top domains.")

PERIOD_RULE = "<any(" + ", ".join(f'"{name}"' for name in PERIOD_BY_NAME) + "):period>"


def register_components(spec: APISpec) -> None:
    """Add the body schemas marshmallow cannot describe to the OpenAPI components."""
    spec.components.schema("DomainCounts", DOMAIN_COUNTS)
    spec.components.schema("ClickBatch", CLICK_BATCH)


_BODY = {
    "required": True,
    "description": "One batch, or an array of batches applied all or nothing.",
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/ClickBatch"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/ClickBatch"}},
                ]
            },
            "examples": {
                "seed": {
                    "summary": "Clicks per domain",
                    "value": {"timestamp": 1644407344, "example1.com": 80, "example3": 12},
                },
                "bytes": {
                    "summary": "Clicks and bytes",
                    "value": {
                        "timestamp": 1644407344,
                        "example1.com": {"clicks": 80, "bytes_in": 1200, "bytes_out": 56000},
                    },
                },
            },
        }
    },
}


_IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "description": "Any string of up to 255 printable ASCII characters. A retry with a key "
    "already accepted (within the retention) gets the original answer and counts once; the "
    "same key with another body is a 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~ ]+$"},
}
_REPLAYED_HEADER = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request.",
        "schema": {"type": "string"},
    }
}


@blp.route("/domains")
class Domains(MethodView):
    @blp.doc(requestBody=_BODY, parameters=[_IDEMPOTENCY_HEADER])
    @blp.response(200, IngestResultSchema, headers=_REPLAYED_HEADER)
    @blp.alt_response(400, schema=ErrorSchema, description="Not JSON, or not an object/array.")
    @blp.alt_response(413, schema=ErrorSchema, description="Body larger than the limit.")
    @blp.alt_response(422, schema=ErrorSchema, description="An entry is invalid; nothing applied.")
    @blp.alt_response(503, schema=ErrorSchema, description="The storage could not commit.")
    def post(self) -> Response:
        """Add click batches; answered once durable, and a rejected request changes nothing."""
        svc = services()
        body = request.get_data(cache=False)
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return _ingest(svc, body, None)
        if not (0 < len(key) <= 255 and key.isascii() and key.isprintable()):
            message = "Idempotency-Key must be 1 to 255 printable ASCII characters"
            abort(400, message=message, errors={"Idempotency-Key": [message]})
        digest = hashlib.blake2b(body, digest_size=16).digest()
        # A retry racing the original waits for it, then gets its answer.
        while (pending := svc.inflight.get(key)) is not None:
            pending.wait()
        receipt = svc.storage.receipt(key)
        if receipt is None:
            svc.inflight[key] = done = Event()
            try:
                return _ingest(svc, body, (key, digest))
            finally:
                del svc.inflight[key]
                done.set()
        if receipt.digest != digest:
            message = f"Idempotency-Key {key!r} was already used for another body"
            abort(422, message=message, errors={"Idempotency-Key": [message]})
        svc.metrics.replays.inc()
        return Response(
            receipt.response, mimetype="application/json", headers={"Idempotent-Replayed": "true"}
        )


def _ingest(svc: Services, body: bytes, key: tuple[str, bytes] | None) -> Response:
    now = svc.clock()
    try:
        batches = parse_batches(
            load_json(body), now=now, retention=svc.retention, future=svc.future
        )
    except BadBody as exc:
        svc.metrics.rejections.labels("malformed").inc()
        abort(400, message=str(exc), errors={"body": [str(exc)]})
    except InvalidBatch as exc:
        svc.metrics.rejections.labels("invalid").inc()
        abort(422, message=str(exc), errors=exc.errors)
    entries = sum(len(b) for b in batches)
    answer = orjson.dumps({"status": "ok", "message": "OK", "accepted": entries})
    receipt = key and Receipt(key[0], int(now), key[1], answer)
    svc.storage.add(batches, receipt)
    svc.metrics.batches.inc(len(batches))
    svc.metrics.entries.inc(entries)
    svc.metrics.clicks.inc(sum(sum(b.values[0::3]) for b in batches))
    return Response(answer, mimetype="application/json")


def _top_response(ready: Ready, period: str, window: int, limit: int) -> Response:
    # Serialised by the app's JSON provider, which keeps the ranking order of `domains`.
    return current_app.json.response(
        {
            "status": "ok",
            "period": period,
            "window": window,
            "from": isoformat(ready.start),
            "to": isoformat(ready.end),
            "updated_at": isoformat(ready.updated_at),
            "by": ready.by,
            "domains": dict(ready.items[:limit]),
        }
    )


@blp.route(f"/domains/{PERIOD_RULE}")
class PeriodTop(MethodView):
    @blp.arguments(TopQueryArgsSchema, location="query")
    @blp.response(200, TopDomainsSchema)
    def get(self, args: dict, period: str) -> Response:
        """Top domains of the last minute, hour or day, from the answers kept ready."""
        chosen = PERIOD_BY_NAME[period]
        ready = services().aggregator.ready(chosen, args["by"])
        return _top_response(ready, chosen.name, chosen.seconds, args["limit"])


@blp.route("/domains/top")
class WindowTop(MethodView):
    @blp.arguments(WindowTopQueryArgsSchema, location="query")
    @blp.response(200, TopDomainsSchema)
    def get(self, args: dict) -> Response:
        """Top domains of any window from 1 s to the retention, computed on request."""
        svc = services()
        window = svc.window(args["window"])
        result = svc.storage.top(window, args["limit"], args["by"])
        ready = Ready(args["by"], result.start, result.end, result.end, result.items)
        return _top_response(ready, request.args["window"], window, args["limit"])
