"""Click batches in (POST /domains) and top domains out (GET /domains/...)."""

from __future__ import annotations

import hashlib

import orjson
from apispec import APISpec
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint, abort
from gevent.event import Event

from aggregation import Ready
from api.errors import error_payload
from api.ingest import BadBody, InvalidBatch, load_json, parse_batches
from api.schemas import (
    CLICK_BATCH,
    DOMAIN_COUNTS,
    MAX_LIMIT,
    ErrorSchema,
    IngestResultSchema,
    TopDomainsSchema,
    TopQueryArgsSchema,
    WindowTopQueryArgsSchema,
)
from api.services import Services, services
from core.model import METRICS, PERIOD_BY_NAME
from core.timeutil import isoformat, parse_duration
from storage import Receipt, Replayed, StorageError

blp = Blueprint("domains", __name__, description="Click batches and top domains.")


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
        body = request.get_data(cache=False)
        status, answer, headers = post_domains(
            services(), body, request.headers.get("Idempotency-Key")
        )
        return Response(answer, status, headers, mimetype="application/json")


#: (status, JSON body, extra headers): an answer both Flask and the fast path can send.
Answer = tuple[int, bytes, dict[str, str]]


def _error(status: int, message: str, errors: dict) -> Answer:
    return status, orjson.dumps(error_payload(message, errors)), {}


def post_domains(svc: Services, body: bytes, key: str | None) -> Answer:
    """Validate and store a POST /domains body, honouring an Idempotency-Key."""
    if key is None:
        return _ingest(svc, body, None)
    if not (0 < len(key) <= 255 and key.isascii() and key.isprintable()):
        message = "Idempotency-Key must be 1 to 255 printable ASCII characters"
        return _error(400, message, {"Idempotency-Key": [message]})
    digest = hashlib.blake2b(body, digest_size=16).digest()
    # A retry racing the original waits for it, then gets its answer.
    while (pending := svc.inflight.get(key)) is not None:
        pending.wait()
    try:
        receipt = svc.storage.receipt(key)
    except StorageError as exc:
        return _error(503, f"storage unavailable: {exc}", {})
    if receipt is None:
        svc.inflight[key] = done = Event()
        try:
            return _ingest(svc, body, (key, digest))
        except Replayed as exc:
            receipt = exc.receipt  # another process took this key in the meantime
        finally:
            del svc.inflight[key]
            done.set()
    if receipt.digest != digest:
        message = f"Idempotency-Key {key!r} was already used for another body"
        return _error(422, message, {"Idempotency-Key": [message]})
    svc.metrics.replays.inc()
    return 200, receipt.response, {"Idempotent-Replayed": "true"}


def _ingest(svc: Services, body: bytes, key: tuple[str, bytes] | None) -> Answer:
    now = svc.clock()
    try:
        batches = parse_batches(load_json(body), now=now, retention=svc.history, future=svc.future)
    except BadBody as exc:
        svc.metrics.rejections.labels("malformed").inc()
        return _error(400, str(exc), {"body": [str(exc)]})
    except InvalidBatch as exc:
        svc.metrics.rejections.labels("invalid").inc()
        return _error(422, str(exc), exc.errors)
    entries = sum(len(b) for b in batches)
    answer = orjson.dumps({"status": "ok", "message": "OK", "accepted": entries})
    receipt = key and Receipt(key[0], int(now), key[1], answer)
    try:
        svc.storage.add(batches, receipt)
    except StorageError as exc:
        return _error(503, f"storage unavailable: {exc}", {})
    svc.metrics.batches.inc(len(batches))
    svc.metrics.entries.inc(entries)
    svc.metrics.clicks.inc(sum(sum(b.values[0::3]) for b in batches))
    return 200, answer, {}


def query_errors(limit: str, by: str) -> dict[str, list[str]]:
    """Say what is wrong with the `limit` and `by` query arguments (empty when nothing)."""
    errors = {}
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT):
        errors["limit"] = [f"Must be an integer from 1 to {MAX_LIMIT}."]
    if by not in METRICS:
        errors["by"] = [f"Must be one of: {', '.join(METRICS)}."]
    return errors


def _top_args() -> tuple[int, str]:
    """Read `limit` and `by` by hand: webargs costs more than the rest of a cached answer."""
    limit, by = request.args.get("limit", "10"), request.args.get("by", "clicks")
    errors = query_errors(limit, by)
    if errors:
        abort(422, errors={"query": errors})
    return int(limit), by


def _top_response(ready: Ready, period: str, window: int, limit: int) -> Response:
    return Response(top_body(ready, period, window, limit), mimetype="application/json")


def top_body(ready: Ready, period: str, window: int, limit: int) -> bytes:
    """Return the serialised answer, built once per rebuild and limit."""
    body = ready.bodies.get((period, limit))
    if body is None:
        # orjson keeps the ranking order of `domains`; the bytes are kept with the answer.
        body = ready.bodies[(period, limit)] = orjson.dumps(
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
    return body


class PeriodTop(MethodView):
    @blp.doc(parameters=[{"in": "query", "schema": TopQueryArgsSchema}])
    @blp.response(200, TopDomainsSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="Bad `limit` or `by`.")
    def get(self, period: str) -> Response:
        """Top domains of the last minute, hour or day, from the answers kept ready."""
        limit, by = _top_args()
        chosen = PERIOD_BY_NAME[period]
        ready = services().aggregator.ready(chosen, by)
        return _top_response(ready, chosen.name, chosen.seconds, limit)


# One literal path per period and alias: unlike a `{period}` template, they cannot be
# mistaken for `/domains/{domain}`.
for _name in PERIOD_BY_NAME:
    blp.route(f"/domains/{_name}", defaults={"period": _name})(PeriodTop)


@blp.route("/domains/top")
class WindowTop(MethodView):
    @blp.doc(parameters=[{"in": "query", "schema": WindowTopQueryArgsSchema}])
    @blp.response(200, TopDomainsSchema)
    @blp.alt_response(422, schema=ErrorSchema, description="Bad `window`, `limit` or `by`.")
    def get(self) -> Response:
        """Top domains of any window from 1 s to the history, computed on request."""
        svc = services()
        raw = request.args.get("window")
        try:
            window = parse_duration(raw) if raw is not None else None
        except ValueError as exc:
            abort(422, errors={"query": {"window": [str(exc)]}})
        if window is None:
            abort(422, errors={"query": {"window": ["Missing data for required field."]}})
        svc.window(window)
        limit, by = _top_args()
        result = svc.storage.top(window, limit, by)
        ready = Ready(by, result.start, result.end, result.end, result.items)
        return _top_response(ready, raw, window, limit)
