"""Marshmallow schemas: the shapes of query arguments and responses (and so the OpenAPI doc)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from core.model import MAX_COUNT, METRICS
from core.timeutil import parse_duration, parse_time

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


class Parsed(fields.Field):
    """A string read by `parse` (which raises ValueError on bad input), documented as a string."""

    parse: Callable[[Any], int]
    pattern: str | None = None

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"type": "string", **kwargs.pop("metadata", {})}
        if self.pattern:
            metadata["pattern"] = self.pattern
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> int:
        try:
            return type(self).parse(value)
        except ValueError as exc:
            raise ma.ValidationError(str(exc)) from None


class Duration(Parsed):
    """A duration such as `90s`, `15m`, `2h`, `1d` or plain seconds, loaded as whole seconds."""

    parse = staticmethod(parse_duration)
    pattern = DURATION_PATTERN

    def _serialize(self, value: Any, attr: Any, obj: Any, **kwargs: Any) -> str | None:
        return None if value is None else f"{value}s"


class TimeArg(Parsed):
    """A moment as ISO-8601 or Unix seconds, loaded as Unix seconds."""

    parse = staticmethod(parse_time)


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
            "(1 s up to the history, 90 days by default).",
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
            "description": "Window length ending now (1 s up to the history, 90 days by default).",
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


class SeriesQueryArgsSchema(ma.Schema):
    """Query arguments of a time series."""

    lookback = Duration(
        load_default=3600,
        metadata={"description": "Length of the range ending now (or at `to`).", "example": "1h"},
    )
    step = Duration(
        load_default=60,
        metadata={
            "description": "Width of each point, 1 s to 1 d. Points older than 10 minutes need "
            "whole minutes; older than the retention, whole hours.",
            "example": "1m",
        },
    )
    metric = fields.String(load_default="clicks", validate=validate.OneOf(METRICS))
    from_ = TimeArg(
        data_key="from",
        metadata={"description": "Start (ISO-8601 or Unix seconds); instead of `lookback`."},
    )
    to = TimeArg(metadata={"description": "End (ISO-8601 or Unix seconds); default now."})
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "`csv`: a header row, then one row per point."},
    )


class MultiSeriesQueryArgsSchema(SeriesQueryArgsSchema):
    """Query arguments of several series at once."""

    domains = fields.String(
        metadata={"description": "Comma-separated domains.", "example": "a.com,b.com"}
    )
    top = fields.Integer(
        validate=validate.Range(1, 50),
        metadata={"description": "Instead of `domains`: the current top N (by `metric`)."},
    )
    window = Duration(
        load_default=3600,
        metadata={"description": "The window `top` ranks over.", "example": "1h"},
    )


class PointSchema(ma.Schema):
    time = fields.String(required=True, metadata={"example": "2022-02-09T11:49:00Z"})
    value = fields.Integer(required=True)
    partial = fields.Boolean(metadata={"description": "On the last point while its step is open."})


class SeriesSchema(ma.Schema):
    """One domain's series."""

    status = fields.String(required=True, metadata={"example": "ok"})
    domain = fields.String(required=True)
    metric = fields.String(required=True)
    step = fields.Integer(required=True, metadata={"example": 60})
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(required=True)
    points = fields.List(fields.Nested(PointSchema), required=True)


class DomainSeriesSchema(ma.Schema):
    domain = fields.String(required=True)
    points = fields.List(fields.Nested(PointSchema), required=True)


class MultiSeriesSchema(ma.Schema):
    """Several domains' series over one range."""

    status = fields.String(required=True, metadata={"example": "ok"})
    metric = fields.String(required=True)
    step = fields.Integer(required=True)
    from_ = fields.String(data_key="from", required=True)
    to = fields.String(required=True)
    series = fields.List(fields.Nested(DomainSeriesSchema), required=True)


class LimitsSchema(ma.Schema):
    """Limits; 0 or absent means unlimited. Exceeded means strictly above."""

    max_rx_bitrate = fields.Float(
        load_default=0, validate=validate.Range(0), metadata={"example": 8e6}
    )
    max_tx_bitrate = fields.Float(
        load_default=0, validate=validate.Range(0), metadata={"example": 0}
    )
    max_clicks_per_s = fields.Float(
        load_default=0, validate=validate.Range(0), metadata={"example": 100}
    )


class NamedLimitsSchema(LimitsSchema):
    status = fields.String(required=True, metadata={"example": "ok"})
    domain = fields.String(required=True, metadata={"example": "example1.com"})


class LimitsListSchema(ma.Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    limits = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(LimitsSchema),
        required=True,
        metadata={"description": "By domain; `_total` is all traffic."},
    )


class CountsSchema(ma.Schema):
    clicks = fields.Integer(required=True)
    bytes_in = fields.Integer(required=True)
    bytes_out = fields.Integer(required=True)


class RatesSchema(ma.Schema):
    rx_bitrate = fields.Float(required=True, metadata={"description": "bit/s from bytes_in."})
    tx_bitrate = fields.Float(required=True, metadata={"description": "bit/s from bytes_out."})
    clicks_per_s = fields.Float(required=True)


class PeaksSchema(ma.Schema):
    rx_bitrate = fields.Float(required=True, metadata={"description": "Highest rx bit/s."})
    tx_bitrate = fields.Float(required=True, metadata={"description": "Highest tx bit/s."})


class ExceededSchema(ma.Schema):
    rx_bitrate = fields.Boolean(required=True)
    tx_bitrate = fields.Boolean(required=True)
    clicks_per_s = fields.Boolean(required=True)


class DomainStatsSchema(ma.Schema):
    """A domain's totals, rates over the last 10 s, peaks of the last hour, limits."""

    status = fields.String(required=True, metadata={"example": "ok"})
    domain = fields.String(required=True)
    totals = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(CountsSchema),
        required=True,
        metadata={"description": "By period: min, hour, day."},
    )
    rates = fields.Nested(RatesSchema, required=True)
    peaks = fields.Nested(PeaksSchema, required=True)
    limits = fields.Nested(LimitsSchema, required=True)
    exceeded = fields.Nested(ExceededSchema, required=True)


class ExceededLimitSchema(ma.Schema):
    domain = fields.String(required=True, metadata={"example": "_total"})
    limit = fields.String(required=True, metadata={"example": "max_rx_bitrate"})
    value = fields.Float(required=True)
    max = fields.Float(required=True)


class SummarySchema(ma.Schema):
    """All traffic now: totals, rates, top domains, active domains, exceeded limits."""

    status = fields.String(required=True, metadata={"example": "ok"})
    totals = fields.Dict(keys=fields.String(), values=fields.Nested(CountsSchema), required=True)
    rates = fields.Nested(RatesSchema, required=True)
    active_domains = fields.Integer(
        required=True, metadata={"description": "Domains with any traffic in the last 60 s."}
    )
    top = fields.Dict(
        keys=fields.String(),
        values=fields.Dict(keys=fields.String(), values=fields.Integer()),
        required=True,
        metadata={"description": "Top 10 of the last minute, by metric."},
    )
    exceeded = fields.List(fields.Nested(ExceededLimitSchema), required=True)


class AlertRuleSchema(ma.Schema):
    """A threshold rule (`threshold`) or a quota rule (`quota`)."""

    name = fields.String(validate=validate.Length(max=200), metadata={"example": "hot site"})
    domain = fields.String(
        required=True,
        metadata={"description": "A domain, or `*` for all traffic.", "example": "*"},
    )
    metric = fields.String(
        required=True,
        validate=validate.OneOf([*METRICS, "requests"]),
        metadata={"description": "`requests` (HTTP requests to this server) needs `*`."},
    )
    notify = fields.List(
        fields.String(),
        load_default=list,
        metadata={"example": ["email:ops@example.com", "webhook:http://127.0.0.1:9000/hook"]},
    )
    # Threshold rules
    window = Duration(metadata={"description": "Averaging window.", "example": "2m"})
    threshold = fields.Float(
        validate=validate.Range(min=0),
        metadata={"description": "Fire when the average rises above this.", "example": 10},
    )
    per = fields.String(validate=validate.OneOf(["second", "minute", "hour"]))
    recover_below = fields.Float(
        validate=validate.Range(min=0),
        metadata={"description": "Recover at or below this (default: the threshold)."},
    )
    for_ = Duration(
        data_key="for",
        metadata={"description": "How long the rise must last before firing.", "example": "30s"},
    )
    # Quota rules
    period = fields.String(validate=validate.OneOf(["hour", "day", "month"]))
    quota = fields.Float(validate=validate.Range(min=0, min_inclusive=False))
    levels = fields.List(
        fields.Integer(validate=validate.Range(1, 1000)),
        validate=validate.Length(min=1, max=20),
        metadata={
            "description": "Percentages of the quota to notify at.",
            "example": [80, 90, 100],
        },
    )
    id = fields.Integer(dump_only=True)

    @ma.validates_schema
    def _check(self, data: dict, **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        if ("threshold" in data) == ("quota" in data):
            errors["threshold"] = ["give `threshold` (threshold rule) or `quota` (quota rule)"]
        elif "threshold" in data:
            if not data.get("window") or data["window"] <= 0:
                errors["window"] = ["a threshold rule needs a window, e.g. 2m"]
            clear = data.get("recover_below")
            if clear is not None and clear > data["threshold"]:
                errors["recover_below"] = ["must not be above the threshold"]
        else:
            if "period" not in data:
                errors["period"] = ["a quota rule needs a period: hour, day or month"]
            data.setdefault("levels", [80, 90, 100])
        if data.get("metric") == "requests" and data.get("domain") != "*":
            errors["metric"] = ["`requests` counts all requests: use domain `*`"]
        if errors:
            raise ma.ValidationError(errors)


class AlertRulesSchema(ma.Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    rules = fields.List(fields.Nested(AlertRuleSchema), required=True)


class AlertSchema(ma.Schema):
    rule = fields.String(required=True)
    rule_id = fields.Integer(required=True)
    state = fields.String(required=True, metadata={"example": "firing"})
    value = fields.Float(required=True)
    threshold = fields.Float(required=True)
    at = fields.String(required=True)
    message = fields.String()


class AlertsSchema(ma.Schema):
    """Firing alerts and the recent history (newest first)."""

    status = fields.String(required=True, metadata={"example": "ok"})
    firing = fields.List(fields.Nested(AlertSchema), required=True)
    history = fields.List(fields.Nested(AlertSchema), required=True)


class SourceSchema(ma.Schema):
    url = fields.String(required=True)
    interval = fields.Float(required=True)
    key = fields.String(required=True, metadata={"example": "service"})
    up = fields.Boolean(allow_none=True, required=True)
    last_scrape = fields.String(allow_none=True, required=True)
    last_duration = fields.Float(allow_none=True, required=True)
    last_error = fields.String(allow_none=True, required=True)
    scrapes = fields.Integer(required=True)
    failures = fields.Integer(required=True)


class SourcesSchema(ma.Schema):
    """Scrape targets and how their last scrape went."""

    status = fields.String(required=True, metadata={"example": "ok"})
    sources = fields.List(fields.Nested(SourceSchema), required=True)
