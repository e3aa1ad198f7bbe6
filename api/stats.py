"""GET /stats: the moving-window counter (requests, clicks, domains), exact across restarts."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples
from api.schemas import StatsQueryArgsSchema, StatsSchema
from api.services import services

blp = Blueprint("stats", __name__, description="Moving-window counters.")


@blp.route("/stats")
class Stats(MethodView):
    @blp.arguments(StatsQueryArgsSchema(), location="query")
    @blp.response(200, StatsSchema, example=examples.STATS)
    def get(self, args: dict) -> dict:
        """Count the requests this server received, and the clicks and domains, in the window."""
        svc = services()
        window = svc.window(args["window"])
        summary = svc.storage.summary(window)
        return {
            "status": "ok",
            "window": window,
            "requestCount": svc.storage.request_count(window),
            "clicks": summary.clicks,
            "domains": summary.domains,
        }
