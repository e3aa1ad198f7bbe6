"""Time series for charts: one domain, several, or the current top N; JSON or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint, abort

from api import examples
from api.schemas import (
    MultiSeriesQueryArgsSchema,
    MultiSeriesSchema,
    SeriesQueryArgsSchema,
    SeriesSchema,
)
from api.services import Services, services
from core.domains import normalize_domain
from core.timeutil import isoformat

blp = Blueprint("series", __name__, description="Time series for charts.")

MAX_POINTS = 10_000
MAX_DOMAINS = 50


def _json_or_csv(schema: str, example: dict) -> dict:
    """The 200 answer documented with both of its content types."""
    content = {
        "application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema}"},
            "example": example,
        },
        "text/csv": {"schema": {"type": "string"}, "example": "time,a.com,partial\n"},
    }
    return {"200": {"description": "OK", "content": content}}


def domain_name(raw: str, field: str = "domain") -> str:
    """Normalise a domain from a URL or query, or abort with 422."""
    try:
        return normalize_domain(raw)
    except ValueError as exc:
        abort(422, errors={field: [f"{raw!r}: {exc}"]})


def _steps(svc: Services, args: dict) -> tuple[int, int, int]:
    """Return (first point, last point, step), all aligned to the step, or abort with 422."""
    step = args["step"]
    now = int(svc.clock())
    end = args.get("to", now)
    start = args["from_"] if "from_" in args else end - args["lookback"]
    errors: dict[str, list[str]] = {}
    if not 1 <= step <= 86400:
        errors["step"] = ["must be from 1 s to 1 d"]
    elif start > end:
        errors["from"] = ["must not be after `to`"]
    else:
        first, last = start // step * step, end // step * step
        count = (last - first) // step + 1
        if count > MAX_POINTS:
            errors["step"] = [
                f"{count} points asked for, more than {MAX_POINTS}: use a longer step or a "
                "shorter range"
            ]
        else:
            try:
                svc.storage.step_resolution(first, step)
            except ValueError as exc:
                errors["step"] = [str(exc)]
    if errors:
        abort(422, errors={"query": errors})
    return first, last, step


def _points(values: list[int], first: int, step: int, now: float) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [
        {"time": isoformat(first + i * step), "value": v} for i, v in enumerate(values)
    ]
    if points and first + len(points) * step > now:
        points[-1]["partial"] = True
    return points


def _answer(svc: Services, names: list[str], args: dict, single: bool) -> Response | dict:
    first, last, step = _steps(svc, args)
    values = svc.storage.series(names, first, last, step, args["metric"])
    now = svc.clock()
    if args["format"] == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["time", *names, "partial"])
        for i in range((last - first) // step + 1):
            partial = "true" if first + (i + 1) * step > now else ""
            writer.writerow([isoformat(first + i * step), *(values[n][i] for n in names), partial])
        return Response(out.getvalue(), mimetype="text/csv")
    head = {
        "status": "ok",
        "metric": args["metric"],
        "step": step,
        "from_": isoformat(first),  # dumped as "from"
        "to": isoformat(last + step),
    }
    if single:
        return {**head, "domain": names[0], "points": _points(values[names[0]], first, step, now)}
    series = [{"domain": n, "points": _points(values[n], first, step, now)} for n in names]
    return {**head, "series": series}


@blp.route("/domains/<domain:domain>/series")
class DomainSeries(MethodView):
    @blp.arguments(SeriesQueryArgsSchema(), location="query")
    @blp.response(200, SeriesSchema)
    @blp.doc(responses=_json_or_csv("Series", examples.SERIES))
    def get(self, args: dict, domain: str) -> Any:
        """A domain's series: every step of the range, 0 where nothing happened."""
        svc = services()
        return _answer(svc, [domain_name(domain)], args, single=True)


@blp.route("/series")
class ManySeries(MethodView):
    @blp.arguments(MultiSeriesQueryArgsSchema(), location="query")
    @blp.response(200, MultiSeriesSchema)
    @blp.doc(responses=_json_or_csv("MultiSeries", examples.MULTI_SERIES))
    def get(self, args: dict) -> Any:
        """Several domains' series at once: listed in `domains`, or the current `top` N."""
        svc = services()
        if ("domains" in args) == ("top" in args):
            abort(422, errors={"query": {"domains": ["give either `domains` or `top`"]}})
        if "top" in args:
            window = svc.window(args["window"])
            names = [n for n, _ in svc.storage.top(window, args["top"], args["metric"]).items]
        else:
            raw = [d for d in args["domains"].split(",") if d.strip()]
            if not 1 <= len(raw) <= MAX_DOMAINS:
                abort(422, errors={"query": {"domains": [f"1 to {MAX_DOMAINS} domains"]}})
            names = list(dict.fromkeys(domain_name(d, "domains") for d in raw))
        return _answer(svc, names, args, single=False)
