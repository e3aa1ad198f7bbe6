"""Limits per domain and for all traffic (`_total`), stored durably."""

from __future__ import annotations

from dataclasses import asdict

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from api import examples
from api.schemas import LimitsListSchema, LimitsSchema, NamedLimitsSchema
from api.series import domain_name
from api.services import services
from storage import Limits

blp = Blueprint("limits", __name__, description="Bitrate and click-rate limits.")

TOTAL = "_total"


def limit_key(domain: str) -> str:
    """`_total` as it is, any other name normalised."""
    return TOTAL if domain == TOTAL else domain_name(domain)


@blp.route("/limits")
class LimitsList(MethodView):
    @blp.response(200, LimitsListSchema)
    def get(self) -> dict:
        """List every limit set."""
        limits = services().storage.limits
        return {"status": "ok", "limits": {name: asdict(v) for name, v in sorted(limits.items())}}


@blp.route("/limits/<domain:domain>")
class DomainLimits(MethodView):
    @blp.response(200, NamedLimitsSchema, example=examples.LIMITS)
    def get(self, domain: str) -> dict:
        """Show the limits of a domain, or of all traffic with `_total`."""
        key = limit_key(domain)
        limits = services().storage.limits.get(key)
        if limits is None:
            abort(404, message=f"no limits set for {key}")
        return {"status": "ok", "domain": key, **asdict(limits)}

    @blp.arguments(LimitsSchema(), required=False)
    @blp.response(200, NamedLimitsSchema, example=examples.LIMITS)
    def put(self, args: dict, domain: str) -> dict:
        """Set the limits of a domain (`_total` for all traffic); 0 or absent is unlimited."""
        key = limit_key(domain)
        limits = Limits(**args)
        services().storage.set_limits(key, limits)
        return {"status": "ok", "domain": key, **asdict(limits)}

    @blp.response(204)
    def delete(self, domain: str) -> None:
        """Remove the limits of a domain."""
        key = limit_key(domain)
        if key not in services().storage.limits:
            abort(404, message=f"no limits set for {key}")
        services().storage.set_limits(key, None)
