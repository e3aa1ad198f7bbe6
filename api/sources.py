"""GET /sources: the Prometheus endpoints scraped, and how it goes."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api import examples
from api.schemas import SourcesSchema
from api.services import services

blp = Blueprint("sources", __name__, description="Scrape targets.")


@blp.route("/sources")
class Sources(MethodView):
    @blp.response(200, SourcesSchema, example=examples.SOURCES)
    def get(self) -> dict:
        """List scrape targets with their last scrape time, duration, `up` and last error."""
        return {"status": "ok", "sources": services().scraper.status()}
