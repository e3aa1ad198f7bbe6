"""GET /health: is the service up, and how big is it."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from api.schemas import HealthSchema
from api.services import services

blp = Blueprint("health", __name__, description="Liveness.")


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict:
        """Report that the service is up."""
        svc = services()
        return {
            "status": "ok",
            "storage": svc.storage_name,
            "tracked_domains": svc.storage.tracked_domains(),
            "uptime": round(svc.clock() - svc.started_at, 3),
        }
