"""Marshmallow schemas: the shapes of query arguments and responses (and so the OpenAPI doc)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from core.model import MAX_COUNT, METRICS
from core.timeutil import parse_duration

DURATION_PATTERN = r"^\d+[smhd]?$"
MAX_LIMIT = 1000


class ErrorSchema(ma.Schema):
    """The one error shape of every endpoint."""

    status = fields.String(required=True, metadata={"example": "error"})
    message = fields.String(required=True, metadata={"example": "timestamp: must be an integer"})
    errors = fields.Dict(
        required=True,
        metadata={"description": "Details by field (or by batch index, then field)."},
    )


class Duration(fields.Field):
    """A duration such as `90s`, `15m`, `2h`, `1d` or plain seconds, loaded as whole seconds."""

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"type": "string", "pattern": DURATION_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise ma.ValidationError(str(exc)) from None


class TopQueryArgsSchema(ma.Schema):
    """Query arguments of the top-N endpoints."""

    limit = fields.Integer(
        load_default=10,
        validate=validate.Range(1, MAX_LIMIT),
        metadata={"description": "How many domains to return (1 to 1000)."},
    )
    by = fields.String(
        load_default="clicks",
        validate=validate.OneOf(METRICS),
        metadata={"description": "The metric to rank by."},
    )


class WindowTopQueryArgsSchema(TopQueryArgsSchema):
    """Query arguments of the any-window top-N endpoint."""

    window = Duration(
        required=True,
        metadata={
            "description": "Window length ending now: seconds, or a number with s, m, h or d "
            "(1 s up to the retention).",
            "example": "90s",
        },
    )


class TopDomainsSchema(ma.Schema):
    """The top domains of a sliding window ending now."""

    status = fields.String(required=True, metadata={"example": "ok"})
    period = fields.String(required=True, metadata={"example": "min"})
    window = fields.Integer(
        required=True, metadata={"description": "Window length in seconds.", "example": 60}
    )
    from_ = fields.String(
        data_key="from",
        required=True,
        metadata={"description": "Start of the first bucket counted (ISO-8601 UTC)."},
    )
    to = fields.String(required=True, metadata={"description": "End of the window (ISO-8601 UTC)."})
    updated_at = fields.String(
        required=True, metadata={"description": "When this answer was computed (ISO-8601 UTC)."}
    )
    by = fields.String(required=True, metadata={"example": "clicks"})
    domains = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        required=True,
        metadata={
            "description": "Domain to value, by value descending, ties by domain ascending.",
            "example": {"example3": 144, "example1.com": 110, "example2.com": 95},
        },
    )


class IngestResultSchema(ma.Schema):
    """The answer to an accepted click batch."""

    status = fields.String(required=True, metadata={"example": "ok"})
    message = fields.String(required=True, metadata={"example": "OK"})
    accepted = fields.Integer(
        required=True, metadata={"description": "Domain entries accepted.", "example": 3}
    )


class StatsQueryArgsSchema(ma.Schema):
    """Query arguments of the moving-window counter."""

    window = Duration(
        load_default=60,
        metadata={
            "description": "Window length ending now (1 s up to the retention).",
            "example": "60s",
        },
    )


class StatsSchema(ma.Schema):
    """Requests, clicks and domains of a moving window ending now."""

    status = fields.String(required=True, metadata={"example": "ok"})
    window = fields.Integer(required=True, metadata={"example": 60})
    # camelCase as in the movingwindow seed's answer.
    requestCount = fields.Integer(
        required=True,
        metadata={"description": "HTTP requests received in the window, this one included."},
    )
    clicks = fields.Integer(
        required=True, metadata={"description": "Clicks with timestamps in the window."}
    )
    domains = fields.Integer(
        required=True, metadata={"description": "Distinct domains with traffic in the window."}
    )


class HealthSchema(ma.Schema):
    """Liveness and a few vital figures."""

    status = fields.String(required=True, metadata={"example": "ok"})
    storage = fields.String(required=True, metadata={"example": "memory"})
    tracked_domains = fields.Integer(required=True)
    uptime = fields.Float(required=True, metadata={"description": "Seconds since start."})


# The POST /domains body has domain names as keys, which marshmallow cannot describe: plain
# OpenAPI, registered as components by the domains blueprint.
DOMAIN_COUNTS = {
    "type": "object",
    "description": "Counts for one domain; every field is optional and defaults to 0.",
    "properties": {m: {"type": "integer", "minimum": 0, "maximum": MAX_COUNT} for m in METRICS},
    "additionalProperties": False,
}
CLICK_BATCH = {
    "type": "object",
    "description": "Clicks at one Unix second: `timestamp` plus one key per domain, whose value "
    "is a click count or a DomainCounts object.",
    "required": ["timestamp"],
    "properties": {"timestamp": {"type": "integer", "description": "Unix seconds."}},
    "additionalProperties": {
        "oneOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_COUNT},
            {"$ref": "#/components/schemas/DomainCounts"},
        ]
    },
    "example": {"timestamp": 1644407344, "example1.com": 80, "example2.com": 5, "example3": 12},
}
