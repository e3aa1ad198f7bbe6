"""Alert rules (threshold and quota) and the alerts they raise."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint, abort

from alerts.notify import check_target
from api import examples
from api.schemas import AlertRuleSchema, AlertRulesSchema, AlertsSchema
from api.series import domain_name
from api.services import services

blp = Blueprint("alerts", __name__, description="Alert rules and alerts.")


def _stored(args: dict[str, Any]) -> dict[str, Any]:
    """Check what the schema cannot (notifiers, domain spelling); return the rule to store."""
    svc = services()
    errors = [e for t in args["notify"] if (e := check_target(t, svc.notifier.smtp_url))]
    if errors:
        abort(422, errors={"json": {"notify": errors}})
    rule = dict(args)
    if rule["domain"] != "*":
        rule["domain"] = domain_name(rule["domain"])
    if "for_" in rule:
        rule["for"] = rule.pop("for_")
    return rule


def _shown(rule: dict[str, Any]) -> dict[str, Any]:
    shown = dict(rule)
    if "for" in shown:
        shown["for_"] = shown.pop("for")
    return shown


@blp.route("/alerts/rules")
class Rules(MethodView):
    @blp.response(200, AlertRulesSchema)
    def get(self) -> dict:
        """List the alert rules."""
        return {"status": "ok", "rules": [_shown(r) for r in services().alerts.rules()]}

    @blp.arguments(AlertRuleSchema())
    @blp.response(201, AlertRuleSchema)
    def post(self, args: dict) -> dict:
        """Add a threshold rule (fires above `threshold`) or a quota rule (notifies at levels)."""
        return _shown(services().alerts.add_rule(_stored(args)))


@blp.route("/alerts/rules/<int:rule_id>")
class Rule(MethodView):
    @blp.response(200, AlertRuleSchema)
    def get(self, rule_id: int) -> dict:
        """Show one rule."""
        rule = services().alerts.rule(rule_id)
        if rule is None:
            abort(404, message=f"no alert rule {rule_id}")
        return _shown(rule)

    @blp.arguments(AlertRuleSchema())
    @blp.response(200, AlertRuleSchema)
    def put(self, args: dict, rule_id: int) -> dict:
        """Replace a rule; its alert state starts over."""
        rule = _stored(args)
        if not services().alerts.replace_rule(rule_id, rule):
            abort(404, message=f"no alert rule {rule_id}")
        return _shown({"id": rule_id, **rule})

    @blp.response(204)
    def delete(self, rule_id: int) -> None:
        """Delete a rule and its state."""
        if not services().alerts.delete_rule(rule_id):
            abort(404, message=f"no alert rule {rule_id}")


@blp.route("/alerts")
class Alerts(MethodView):
    @blp.response(200, AlertsSchema, example=examples.ALERTS)
    def get(self) -> dict:
        """Alerts firing now and the recent history of firing, recovery and quota events."""
        engine = services().alerts
        return {"status": "ok", "firing": engine.firing(), "history": engine.history()}
