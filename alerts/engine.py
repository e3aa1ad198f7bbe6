"""Alert rules, their state and their notifications, kept in SQLite.

`evaluate()` is the unit of work of the background tick: it computes every rule's value from
the store, moves its state (ok, pending, firing) and, in the same transaction, records events
and the notifications they owe in an outbox. `deliver_due()` sends what the outbox holds,
retrying with backoff until a notification succeeds or ages out. So a restart neither forgets
a firing alert nor notifies twice for one crossing.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.metrics import Metrics
from core.timeutil import isoformat
from storage.base import Storage

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    rule_id INTEGER PRIMARY KEY, state TEXT NOT NULL, since REAL NOT NULL, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quota_levels (
    rule_id INTEGER NOT NULL, period TEXT NOT NULL, level INTEGER NOT NULL,
    PRIMARY KEY (rule_id, period, level));
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, rule_id INTEGER NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL,
    value REAL NOT NULL, threshold REAL NOT NULL, at REAL NOT NULL, message TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY, target TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL,
    payload BLOB NOT NULL, created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL, last_error TEXT);
"""
PER = {"second": 1, "minute": 60, "hour": 3600}
#: How long an undelivered notification is retried before it is dropped (and counted).
MAX_AGE = 24 * 3600
MAX_BACKOFF = 300
HISTORY_KEPT = 1000


@dataclass(frozen=True)
class Notification:
    """One message for one target (`email:...` or `webhook:...`)."""

    id: int
    target: str
    subject: str
    body: str
    payload: dict[str, Any]
    attempts: int


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
    """Rules, state and outbox in one SQLite database (a file, or memory)."""

    def __init__(
        self,
        storage: Storage,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
        dashboard_url: str = "http://127.0.0.1:5000",
    ) -> None:
        self.storage = storage
        self.clock = clock
        self.metrics = metrics
        self.dashboard_url = dashboard_url.rstrip("/")
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        # Used only from the event loop, and never across a yield: no lock needed.

    # Rules ------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _sql(self, query: str, args: tuple = ()) -> list[tuple]:
        return self._db.execute(query, args).fetchall()

    def rules(self) -> list[dict[str, Any]]:
        """Every rule, with its id."""
        rows = self._sql("SELECT id, body FROM rules ORDER BY id")
        return [{"id": rule_id, **orjson.loads(body)} for rule_id, body in rows]

    def rule(self, rule_id: int) -> dict[str, Any] | None:
        if not 0 < rule_id < 2**63:
            return None
        rows = self._sql("SELECT body FROM rules WHERE id = ?", (rule_id,))
        return {"id": rule_id, **orjson.loads(rows[0][0])} if rows else None

    def add_rule(self, rule: dict[str, Any]) -> dict[str, Any]:
        cursor = self._db.execute("INSERT INTO rules (body) VALUES (?)", (orjson.dumps(rule),))
        return {"id": cursor.lastrowid, **rule}

    def replace_rule(self, rule_id: int, rule: dict[str, Any]) -> bool:
        """Replace a rule; its state starts over (a changed rule is a new question)."""
        if not 0 < rule_id < 2**63:
            return False
        with self._transaction() as db:
            found = db.execute(
                "UPDATE rules SET body = ? WHERE id = ?", (orjson.dumps(rule), rule_id)
            ).rowcount
            db.execute("DELETE FROM state WHERE rule_id = ?", (rule_id,))
        return bool(found)

    def delete_rule(self, rule_id: int) -> bool:
        if not 0 < rule_id < 2**63:
            return False
        with self._transaction() as db:
            found = db.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount
            db.execute("DELETE FROM state WHERE rule_id = ?", (rule_id,))
            db.execute("DELETE FROM quota_levels WHERE rule_id = ?", (rule_id,))
        return bool(found)

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
        for rule in self.rules():
            try:
                if "quota" in rule:
                    self._evaluate_quota(rule, now)
                else:
                    self._evaluate_threshold(rule, now)
            except Exception:
                logger.exception("evaluating alert rule %s failed", rule["id"])

    def _evaluate_threshold(self, rule: dict[str, Any], now: float) -> None:
        window = rule["window"]
        hits = self._window_total(rule, window)
        value = hits / window * PER[rule.get("per", "second")]
        threshold = rule["threshold"]
        clear = rule.get("recover_below", threshold)
        hold = rule.get("for", 0)
        rows = self._sql("SELECT state, since FROM state WHERE rule_id = ?", (rule["id"],))
        state, since = rows[0] if rows else ("ok", now)
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
        if new_state != state or not rows:
            since = now if new_state != "pending" else since
        with self._transaction():
            self._write_state(rule, new_state, since, value, event, hits, threshold, now)

    def _write_state(
        self, rule: dict, new_state: str, since: float, value: float, event: str | None,
        hits: float, threshold: float, now: float,
    ) -> None:  # fmt: skip
        self._db.execute(
            "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)",
            (rule["id"], new_state, since, value),
        )
        if event is not None:
            name = rule.get("name") or f"rule {rule['id']}"
            if event == "firing":
                message = (
                    f"{name}: High traffic generated an alert - hits = {hits:g}, "
                    f"triggered at {isoformat(now)}"
                )
            else:
                message = f"{name}: High traffic alert recovered at {isoformat(now)}"
            self._record(rule, event, value, threshold, now, message)

    def _evaluate_quota(self, rule: dict[str, Any], now: float) -> None:
        period, start = period_start(rule["period"], now)
        used = self._window_total(rule, max(1, int(now) - start + 1))
        share = used / rule["quota"] * 100
        done = {
            level
            for (level,) in self._db.execute(
                "SELECT level FROM quota_levels WHERE rule_id = ? AND period = ?",
                (rule["id"], period),
            )
        }
        due = [lv for lv in sorted(rule["levels"]) if share >= lv and lv not in done]
        if not due:
            return
        name = rule.get("name") or f"rule {rule['id']}"
        with self._transaction() as db:
            for level in due:
                db.execute("INSERT INTO quota_levels VALUES (?, ?, ?)", (rule["id"], period, level))
                message = (
                    f"{name}: {rule['domain']} used {level}% of its {rule['metric']} quota for "
                    f"{period} ({used:g} of {rule['quota']:g}, {share:.1f}%) at {isoformat(now)}"
                )
                self._record(rule, f"quota {level}%", used, rule["quota"], now, message)

    def _record(
        self, rule: dict, state: str, value: float, threshold: float, now: float, message: str
    ) -> None:
        """Record an event and queue its notifications (inside the caller's transaction)."""
        name = rule.get("name") or f"rule {rule['id']}"
        self._db.execute(
            "INSERT INTO events (rule_id, rule, state, value, threshold, at, message) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rule["id"], name, state, value, threshold, now, message),
        )
        self._db.execute(
            "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?", (HISTORY_KEPT,)
        )
        logger.warning("alert: %s", message)
        domain = rule["domain"]
        link = self.dashboard_url + ("/" if domain == "*" else f"/ui/domains/{domain}")
        payload = {
            "rule": name,
            "rule_id": rule["id"],
            "domain": domain,
            "metric": rule["metric"],
            "state": state,
            "value": value,
            "threshold": threshold,
            "at": isoformat(now),
            "message": message,
            "dashboard": link,
        }
        body = (
            f"{message}\n\nRule: {name} (id {rule['id']})\nDomain: {domain}\n"
            f"Metric: {rule['metric']}\nValue: {value:g}\nThreshold: {threshold:g}\n"
            f"Time: {isoformat(now)}\nDashboard: {link}\n"
        )
        subject = f"[domainstats] {name}: {state}"
        for target in rule.get("notify", []):
            self._db.execute(
                "INSERT INTO outbox (target, subject, body, payload, created, next_attempt) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (target, subject, body, orjson.dumps(payload), now, now),
            )

    # Reads ------------------------------------------------------------------------------

    def firing(self) -> list[dict[str, Any]]:
        """Alerts firing now."""
        rules = {rule["id"]: rule for rule in self.rules()}
        rows = self._sql("SELECT rule_id, since, value FROM state WHERE state = 'firing'")
        out = []
        for rule_id, since, value in rows:
            rule = rules.get(rule_id)
            if rule is not None:
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
        rows = self._sql(
            "SELECT rule_id, rule, state, value, threshold, at, message FROM events "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        keys = ("rule_id", "rule", "state", "value", "threshold", "at", "message")
        return [{**dict(zip(keys, row, strict=True)), "at": isoformat(row[5])} for row in rows]

    # Delivery ---------------------------------------------------------------------------

    def due(self) -> list[Notification]:
        """Notifications whose next attempt is due; those too old are dropped (and counted)."""
        now = self.clock()
        expired = self._db.execute(
            "DELETE FROM outbox WHERE created < ? RETURNING target", (now - MAX_AGE,)
        ).fetchall()
        rows = self._db.execute(
            "SELECT id, target, subject, body, payload, attempts FROM outbox "
            "WHERE next_attempt <= ? ORDER BY id",
            (now,),
        ).fetchall()
        for (target,) in expired:
            logger.error("notification to %s dropped after %d s of failures", target, MAX_AGE)
            if self.metrics:
                self.metrics.notifications.labels(target.partition(":")[0], "expired").inc()
        return [
            Notification(i, target, subject, body, orjson.loads(payload), attempts)
            for i, target, subject, body, payload, attempts in rows
        ]

    def delivered(self, note: Notification) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (note.id,))
        logger.info("notification %s sent to %s", note.subject, note.target)
        if self.metrics:
            self.metrics.notifications.labels(note.target.partition(":")[0], "sent").inc()

    def failed(self, note: Notification, error: str) -> None:
        """Schedule a retry: 1 s, 2 s, 4 s ... up to MAX_BACKOFF."""
        delay = min(MAX_BACKOFF, 2**note.attempts)
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
            "WHERE id = ?",
            (self.clock() + delay, error, note.id),
        )
        logger.warning("notification to %s failed (%s); retry in %d s", note.target, error, delay)
        if self.metrics:
            self.metrics.notifications.labels(note.target.partition(":")[0], "failed").inc()

    def pending(self) -> int:
        return self._sql("SELECT count(*) FROM outbox")[0][0]

    def close(self) -> None:
        self._db.close()
