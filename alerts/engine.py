"""Alert rules, their state and their notifications, kept in SQLite.

`evaluate()` is the unit of work of the background tick: it computes every rule's value from
the store, moves its state (ok, pending, firing) and, in the same transaction, records events
and the notifications they owe in an outbox. `deliver_due()` sends what the outbox holds,
retrying with backoff until a notification succeeds or ages out. So a restart neither forgets
a firing alert nor notifies twice for one crossing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from alerts.stores import AlertStore, Notification
from core.metrics import Metrics
from core.timeutil import isoformat
from storage.base import Storage

logger = logging.getLogger(__name__)

PER = {"second": 1, "minute": 60, "hour": 3600}
#: How long an undelivered notification is retried before it is dropped (and counted).
MAX_AGE = 24 * 3600
MAX_BACKOFF = 300
__all__ = ["AlertEngine", "Notification", "period_start"]


def period_start(period: str, now: float) -> tuple[str, int]:
    """Return the name and start (Unix seconds) of the hour, day or month holding `now`."""
    moment = datetime.fromtimestamp(int(now), UTC)
    if period == "hour":
        moment = moment.replace(minute=0, second=0)
        return moment.strftime("%Y-%m-%dT%H"), int(moment.timestamp())
    if period == "day":
        moment = moment.replace(hour=0, minute=0, second=0)
        return moment.strftime("%Y-%m-%d"), int(moment.timestamp())
    moment = moment.replace(day=1, hour=0, minute=0, second=0)
    return moment.strftime("%Y-%m"), int(moment.timestamp())


class AlertEngine:
    """Evaluates rules against the storage; rules, state and outbox live in `store`."""

    def __init__(
        self,
        storage: Storage,
        store: AlertStore,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        dashboard_url: str = "http://127.0.0.1:5000",
    ) -> None:
        self.storage = storage
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.dashboard_url = dashboard_url.rstrip("/")

    # Rules ------------------------------------------------------------------------------

    def rules(self) -> list[dict[str, Any]]:
        """Every rule, with its id."""
        return self.store.rules()

    def rule(self, rule_id: int) -> dict[str, Any] | None:
        return self.store.rule(rule_id) if 0 < rule_id < 2**63 else None

    def add_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        return {"id": self.store.add_rule(rule), **rule}

    def replace_rule(self, rule_id: int, rule: dict[str, Any]) -> bool:
        """Replace a rule; its state starts over (a changed rule is a new question)."""
        return 0 < rule_id < 2**63 and self.store.replace_rule(rule_id, rule)

    def delete_rule(self, rule_id: int) -> bool:
        return 0 < rule_id < 2**63 and self.store.delete_rule(rule_id)

    # Evaluation -------------------------------------------------------------------------

    def _window_total(self, rule: dict[str, Any], seconds: int) -> float:
        metric, domain = rule["metric"], rule["domain"]
        if metric == "requests":
            return self.storage.request_count(seconds)
        if domain == "*":
            summary = self.storage.summary(seconds)
            return {
                "clicks": summary.clicks,
                "bytes_in": summary.bytes_in,
                "bytes_out": summary.bytes_out,
            }[metric]
        return self.storage.domain_totals(domain, seconds)[metric]

    def evaluate(self) -> None:
        """Evaluate every rule once, now; one broken rule never stops the others."""
        now = self.clock()
        states = self.store.states()
        for rule in self.rules():
            try:
                if "quota" in rule:
                    self._evaluate_quota(rule, now)
                else:
                    self._evaluate_threshold(rule, states.get(rule["id"]), now)
            except Exception:
                logger.exception("evaluating alert rule %s failed", rule["id"])

    def _evaluate_threshold(
        self, rule: dict[str, Any], old: tuple[str, float, float] | None, now: float
    ) -> None:
        window = rule["window"]
        hits = self._window_total(rule, window)
        value = hits / window * PER[rule.get("per", "second")]
        threshold = rule["threshold"]
        clear = rule.get("recover_below", threshold)
        hold = rule.get("for", 0)
        state, since = old[:2] if old else ("ok", now)
        new_state, event = state, None
        if state in ("ok", "pending") and value > threshold:
            if state == "ok":
                new_state, since = "pending", now
            if now - since >= hold:
                new_state, event = "firing", "firing"
        elif state == "pending":
            new_state = "ok"
        elif state == "firing" and value <= clear:
            new_state, event = "ok", "recovered"
        if new_state != state or not old:
            since = now if new_state != "pending" else since
        events, notes = [], []
        if event is not None:
            name = rule.get("name") or f"rule {rule['id']}"
            if event == "firing":
                message = (
                    f"{name}: High traffic generated an alert - hits = {hits:g}, "
                    f"triggered at {isoformat(now)}"
                )
            else:
                message = f"{name}: High traffic alert recovered at {isoformat(now)}"
            events, notes = self._record(rule, event, value, threshold, now, message)
        self.store.commit(rule["id"], (new_state, since, value), (), events, notes)

    def _evaluate_quota(self, rule: dict[str, Any], now: float) -> None:
        period, start = period_start(rule["period"], now)
        used = self._window_total(rule, max(1, int(now) - start + 1))
        share = used / rule["quota"] * 100
        done = self.store.quota_done(rule["id"], period)
        due = [lv for lv in sorted(rule["levels"]) if share >= lv and lv not in done]
        if not due:
            return
        name = rule.get("name") or f"rule {rule['id']}"
        events, notes = [], []
        for level in due:
            message = (
                f"{name}: {rule['domain']} used {level}% of its {rule['metric']} quota for "
                f"{period} ({used:g} of {rule['quota']:g}, {share:.1f}%) at {isoformat(now)}"
            )
            more = self._record(rule, f"quota {level}%", used, rule["quota"], now, message)
            events += more[0]
            notes += more[1]
        self.store.commit(rule["id"], None, [(period, level) for level in due], events, notes)

    def _record(
        self, rule: dict, state: str, value: float, threshold: float, now: float, message: str
    ) -> tuple[list[dict[str, Any]], list[Notification]]:
        """Return the event of a state change and the notifications it owes."""
        name = rule.get("name") or f"rule {rule['id']}"
        event = {
            "rule_id": rule["id"],
            "rule": name,
            "state": state,
            "value": value,
            "threshold": threshold,
            "at": now,
            "message": message,
        }
        logger.warning("alert: %s", message)
        domain = rule["domain"]
        link = self.dashboard_url + ("/" if domain == "*" else f"/ui/domains/{domain}")
        payload = {**event, "domain": domain, "metric": rule["metric"], "at": isoformat(now)}
        payload["dashboard"] = link
        body = (
            f"{message}\n\nRule: {name} (id {rule['id']})\nDomain: {domain}\n"
            f"Metric: {rule['metric']}\nValue: {value:g}\nThreshold: {threshold:g}\n"
            f"Time: {isoformat(now)}\nDashboard: {link}\n"
        )
        subject = f"[domainstats] {name}: {state}"
        notes = [
            Notification(0, target, subject, body, payload, 0, now)
            for target in rule.get("notify", [])
        ]
        return [event], notes

    # Reads ------------------------------------------------------------------------------

    def firing(self) -> list[dict[str, Any]]:
        """Alerts firing now."""
        rules = {rule["id"]: rule for rule in self.rules()}
        out = []
        for rule_id, (state, since, value) in sorted(self.store.states().items()):
            rule = rules.get(rule_id)
            if rule is not None and state == "firing":
                name = rule.get("name") or f"rule {rule_id}"
                out.append({
                    "rule": name,
                    "rule_id": rule_id,
                    "state": "firing",
                    "value": value,
                    "threshold": rule["threshold"],
                    "at": isoformat(since),
                })  # fmt: skip
        return out

    def history(self, limit: int = 100) -> list[dict[str, Any]]:
        """The most recent events, newest first."""
        return [{**event, "at": isoformat(event["at"])} for event in self.store.history(limit)]

    # Delivery ---------------------------------------------------------------------------

    def due(self) -> list[Notification]:
        """Notifications whose next attempt is due; those too old are dropped (and counted)."""
        now = self.clock()
        expired, notes = self.store.due(now, now - MAX_AGE)
        for target in expired:
            logger.error("notification to %s dropped after %d s of failures", target, MAX_AGE)
            if self.metrics:
                self.metrics.notifications.labels(target.partition(":")[0], "expired").inc()
        return notes

    def delivered(self, note: Notification) -> None:
        self.store.delivered(note.id)
        logger.info("notification %s sent to %s", note.subject, note.target)
        if self.metrics:
            self.metrics.notifications.labels(note.target.partition(":")[0], "sent").inc()

    def failed(self, note: Notification, error: str) -> None:
        """Schedule a retry: 1 s, 2 s, 4 s ... up to MAX_BACKOFF."""
        delay = min(MAX_BACKOFF, 2**note.attempts)
        self.store.failed(note.id, self.clock() + delay, error)
        logger.warning("notification to %s failed (%s); retry in %d s", note.target, error, delay)
        if self.metrics:
            self.metrics.notifications.labels(note.target.partition(":")[0], "failed").inc()

    def pending(self) -> int:
        return self.store.pending()

    def close(self) -> None:
        self.store.close()
