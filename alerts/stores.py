"""Where alert rules, their state, events and the notification outbox are kept.

`SqliteAlertStore` serves one process (a file beside the embedded store, or memory);
`RedisAlertStore` keeps everything in the Redis the storage uses, so that every process sees
the same rules and firing alerts. Each `commit` is one transaction in either.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from storage.redis_backend import RedisStorage

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
#: Events kept for the history.
HISTORY_KEPT = 1000
EVENT_FIELDS = ("rule_id", "rule", "state", "value", "threshold", "at", "message")


@dataclass(frozen=True)
class Notification:
    """One message for one target (`email:...` or `webhook:...`)."""

    id: int
    target: str
    subject: str
    body: str
    payload: dict[str, Any]
    attempts: int
    created: float = 0.0


#: (state, since, value) of a rule.
State = tuple[str, float, float]


class AlertStore(Protocol):
    """Rules, states, quota levels reached, events and the outbox."""

    def rules(self) -> list[dict[str, Any]]: ...
    def rule(self, rule_id: int) -> dict[str, Any] | None: ...
    def add_rule(self, rule: dict[str, Any]) -> int: ...
    def replace_rule(self, rule_id: int, rule: dict[str, Any]) -> bool: ...
    def delete_rule(self, rule_id: int) -> bool: ...
    def states(self) -> dict[int, State]: ...
    def quota_done(self, rule_id: int, period: str) -> set[int]: ...

    def commit(
        self,
        rule_id: int,
        state: State | None,
        levels: Sequence[tuple[str, int]],
        events: Sequence[dict[str, Any]],
        notes: Sequence[Notification],
    ) -> None:
        """Record a rule's new state, quota levels, events and notifications, all or nothing."""

    def history(self, limit: int) -> list[dict[str, Any]]: ...

    def due(self, now: float, oldest: float) -> tuple[list[str], list[Notification]]:
        """Drop notifications created before `oldest` (returning their targets); return those
        whose next attempt is due."""

    def delivered(self, note_id: int) -> None: ...
    def failed(self, note_id: int, next_attempt: float, error: str) -> None: ...
    def pending(self) -> int: ...
    def close(self) -> None: ...


class SqliteAlertStore:
    """Everything in one SQLite database (a file, or memory)."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        # Used only from the event loop, and never across a yield: no lock needed.

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
        rows = self._sql("SELECT id, body FROM rules ORDER BY id")
        return [{"id": rule_id, **orjson.loads(body)} for rule_id, body in rows]

    def rule(self, rule_id: int) -> dict[str, Any] | None:
        rows = self._sql("SELECT body FROM rules WHERE id = ?", (rule_id,))
        return {"id": rule_id, **orjson.loads(rows[0][0])} if rows else None

    def add_rule(self, rule: dict[str, Any]) -> int:
        cursor = self._db.execute("INSERT INTO rules (body) VALUES (?)", (orjson.dumps(rule),))
        return int(cursor.lastrowid or 0)

    def replace_rule(self, rule_id: int, rule: dict[str, Any]) -> bool:
        with self._transaction() as db:
            found = db.execute(
                "UPDATE rules SET body = ? WHERE id = ?", (orjson.dumps(rule), rule_id)
            ).rowcount
            db.execute("DELETE FROM state WHERE rule_id = ?", (rule_id,))
        return bool(found)

    def delete_rule(self, rule_id: int) -> bool:
        with self._transaction() as db:
            found = db.execute("DELETE FROM rules WHERE id = ?", (rule_id,)).rowcount
            db.execute("DELETE FROM state WHERE rule_id = ?", (rule_id,))
            db.execute("DELETE FROM quota_levels WHERE rule_id = ?", (rule_id,))
        return bool(found)

    def states(self) -> dict[int, State]:
        rows = self._sql("SELECT rule_id, state, since, value FROM state")
        return {rule_id: (state, since, value) for rule_id, state, since, value in rows}

    def quota_done(self, rule_id: int, period: str) -> set[int]:
        query = "SELECT level FROM quota_levels WHERE rule_id = ? AND period = ?"
        return {level for (level,) in self._sql(query, (rule_id, period))}

    def commit(
        self,
        rule_id: int,
        state: State | None,
        levels: Sequence[tuple[str, int]],
        events: Sequence[dict[str, Any]],
        notes: Sequence[Notification],
    ) -> None:
        with self._transaction() as db:
            if state is not None:
                db.execute("INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?)", (rule_id, *state))
            for period, level in levels:
                db.execute("INSERT INTO quota_levels VALUES (?, ?, ?)", (rule_id, period, level))
            for event in events:
                db.execute(
                    "INSERT INTO events (rule_id, rule, state, value, threshold, at, message) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    tuple(event[k] for k in EVENT_FIELDS),
                )
            if events:
                db.execute(
                    "DELETE FROM events WHERE id <= (SELECT max(id) FROM events) - ?",
                    (HISTORY_KEPT,),
                )
            for note in notes:
                db.execute(
                    "INSERT INTO outbox (target, subject, body, payload, created, next_attempt) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (note.target, note.subject, note.body, orjson.dumps(note.payload),
                     note.created, note.created),
                )  # fmt: skip

    def history(self, limit: int) -> list[dict[str, Any]]:
        rows = self._sql(
            "SELECT rule_id, rule, state, value, threshold, at, message FROM events "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [dict(zip(EVENT_FIELDS, row, strict=True)) for row in rows]

    def due(self, now: float, oldest: float) -> tuple[list[str], list[Notification]]:
        expired = self._sql("DELETE FROM outbox WHERE created < ? RETURNING target", (oldest,))
        rows = self._sql(
            "SELECT id, target, subject, body, payload, attempts, created FROM outbox "
            "WHERE next_attempt <= ? ORDER BY id",
            (now,),
        )
        notes = [
            Notification(i, target, subject, body, orjson.loads(payload), attempts, created)
            for i, target, subject, body, payload, attempts, created in rows
        ]
        return [target for (target,) in expired], notes

    def delivered(self, note_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (note_id,))

    def failed(self, note_id: int, next_attempt: float, error: str) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
            "WHERE id = ?",
            (next_attempt, error, note_id),
        )

    def pending(self) -> int:
        return self._sql("SELECT count(*) FROM outbox")[0][0]

    def close(self) -> None:
        self._db.close()


class RedisAlertStore:
    """Everything in the storage's Redis, under its hash tag; a commit is one MULTI/EXEC."""

    def __init__(self, storage: RedisStorage) -> None:
        self.client = storage.client
        self.guard = storage.guard
        self.p = storage.p + "alert:"

    def rules(self) -> list[dict[str, Any]]:
        with self.guard():
            rows = self.client.hgetall(self.p + "rules")
        rules = [{"id": int(i), **orjson.loads(body)} for i, body in rows.items()]
        return sorted(rules, key=lambda rule: rule["id"])

    def rule(self, rule_id: int) -> dict[str, Any] | None:
        with self.guard():
            body = self.client.hget(self.p + "rules", rule_id)
        return None if body is None else {"id": rule_id, **orjson.loads(body)}

    def add_rule(self, rule: dict[str, Any]) -> int:
        with self.guard():
            rule_id = int(self.client.incr(self.p + "next_rule"))
            self.client.hset(self.p + "rules", rule_id, orjson.dumps(rule))
        return rule_id

    def replace_rule(self, rule_id: int, rule: dict[str, Any]) -> bool:
        with self.guard():
            if not self.client.hexists(self.p + "rules", rule_id):
                return False
            pipe = self.client.pipeline()
            pipe.hset(self.p + "rules", rule_id, orjson.dumps(rule))
            pipe.hdel(self.p + "state", rule_id)
            pipe.execute()
        return True

    def delete_rule(self, rule_id: int) -> bool:
        with self.guard():
            pipe = self.client.pipeline()
            pipe.hdel(self.p + "rules", rule_id)
            pipe.hdel(self.p + "state", rule_id)
            pipe.delete(f"{self.p}quota:{rule_id}")
            found = pipe.execute()[0]
        return bool(found)

    def states(self) -> dict[int, State]:
        with self.guard():
            rows = self.client.hgetall(self.p + "state")
        return {int(i): tuple(orjson.loads(body)) for i, body in rows.items()}  # type: ignore[misc]

    def quota_done(self, rule_id: int, period: str) -> set[int]:
        with self.guard():
            members = self.client.smembers(f"{self.p}quota:{rule_id}")
        done = (member.decode().rpartition("|") for member in members)
        return {int(level) for when, _, level in done if when == period}

    def commit(
        self,
        rule_id: int,
        state: State | None,
        levels: Sequence[tuple[str, int]],
        events: Sequence[dict[str, Any]],
        notes: Sequence[Notification],
    ) -> None:
        with self.guard():
            first = int(self.client.incrby(self.p + "next_note", len(notes))) - len(notes) + 1
            pipe = self.client.pipeline()
            if state is not None:
                pipe.hset(self.p + "state", rule_id, orjson.dumps(state))
            for period, level in levels:
                pipe.sadd(f"{self.p}quota:{rule_id}", f"{period}|{level}")
            for event in events:
                pipe.lpush(self.p + "events", orjson.dumps(event))
            if events:
                pipe.ltrim(self.p + "events", 0, HISTORY_KEPT - 1)
            for note_id, note in enumerate(notes, first):
                body = [note.target, note.subject, note.body, note.payload, note.created, 0]
                pipe.hset(self.p + "outbox", note_id, orjson.dumps(body))
                pipe.zadd(self.p + "due", {note_id: note.created})
            pipe.execute()

    def history(self, limit: int) -> list[dict[str, Any]]:
        with self.guard():
            rows = self.client.lrange(self.p + "events", 0, limit - 1)
        return [orjson.loads(row) for row in rows]

    def due(self, now: float, oldest: float) -> tuple[list[str], list[Notification]]:
        with self.guard():
            ids = self.client.zrangebyscore(self.p + "due", "-inf", now)
            bodies = self.client.hmget(self.p + "outbox", ids) if ids else []
        expired, notes = [], []
        for note_id, body in zip(ids, bodies, strict=True):
            if body is None:
                continue
            target, subject, text, payload, created, attempts = orjson.loads(body)
            note = Notification(int(note_id), target, subject, text, payload, attempts, created)
            if created < oldest:
                expired.append(target)
                self.delivered(note.id)
            else:
                notes.append(note)
        return expired, notes

    def delivered(self, note_id: int) -> None:
        with self.guard():
            pipe = self.client.pipeline()
            pipe.hdel(self.p + "outbox", note_id)
            pipe.zrem(self.p + "due", note_id)
            pipe.execute()

    def failed(self, note_id: int, next_attempt: float, error: str) -> None:
        with self.guard():
            body = self.client.hget(self.p + "outbox", note_id)
            if body is None:
                return
            note = orjson.loads(body)
            note[5] += 1
            pipe = self.client.pipeline()
            pipe.hset(self.p + "outbox", note_id, orjson.dumps(note))
            pipe.zadd(self.p + "due", {note_id: next_attempt})
            pipe.execute()

    def pending(self) -> int:
        with self.guard():
            return int(self.client.hlen(self.p + "outbox"))

    def close(self) -> None:
        """The storage closes the client."""
