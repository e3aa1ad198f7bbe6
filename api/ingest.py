"""Turn a POST /domains body into validated batches, or say exactly what is wrong."""

from __future__ import annotations

import json
from typing import Any

import orjson

from api.errors import summarize
from core.domains import normalize_domain
from core.model import MAX_COUNT, METRICS, Batch
from core.timeutil import isoformat

_VALUE_HINT = "must be a non-negative integer or an object with clicks, bytes_in and bytes_out"


class BadBody(ValueError):
    """The body is not JSON, or not an object or array (answered with 400)."""


class InvalidBatch(ValueError):
    """The body is JSON of the right shape but some entries are invalid (answered with 422)."""

    def __init__(self, errors: dict[str, Any]) -> None:
        self.errors = errors
        super().__init__(summarize(errors))


def load_json(body: bytes) -> Any:
    """Parse JSON, falling back to the standard library for integers beyond 64 bits."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise BadBody(f"request body is not valid JSON: {exc}") from None


def _count(value: Any, field: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{field} must be an integer from 0 to {MAX_COUNT}")
    return value


def _values(value: Any) -> tuple[int, int, int]:
    if type(value) is int:
        return _count(value, "clicks"), 0, 0
    if not isinstance(value, dict):
        raise ValueError(_VALUE_HINT)
    unknown = sorted(set(value) - set(METRICS))
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}: {_VALUE_HINT}")
    clicks, bytes_in, bytes_out = (_count(value.get(m, 0), m) for m in METRICS)
    return clicks, bytes_in, bytes_out


def _batch(item: Any, earliest: int, latest: int) -> Batch:
    if not isinstance(item, dict):
        raise InvalidBatch({"_schema": ["each batch must be a JSON object"]})
    errors: dict[str, list[str]] = {}
    timestamp = item.get("timestamp")
    if "timestamp" not in item:
        errors["timestamp"] = ["missing: the Unix time of the clicks, in seconds"]
    elif type(timestamp) is not int:
        errors["timestamp"] = ["must be an integer number of Unix seconds"]
    elif timestamp < earliest:
        errors["timestamp"] = [
            f"{timestamp} is older than the history kept: the earliest accepted is "
            f"{earliest} ({isoformat(earliest)})"
        ]
    elif timestamp > latest:
        errors["timestamp"] = [
            f"{timestamp} is too far in the future: the latest accepted is "
            f"{latest} ({isoformat(latest)})"
        ]
    names: list[str] = []
    values: list[int] = []
    position: dict[str, int] = {}
    for key, value in item.items():
        if key == "timestamp":
            continue
        try:
            name = normalize_domain(key)
            # The common case inline: this loop runs once per domain of every batch.
            if type(value) is int and 0 <= value <= MAX_COUNT:
                triple: tuple[int, ...] = (value, 0, 0)
            else:
                triple = _values(value)
        except ValueError as exc:
            errors[key] = [str(exc)]
            continue
        at = position.get(name)
        if at is None:
            position[name] = len(names)
            names.append(name)
            values += triple
        else:
            # Two spellings of one domain ("A.com", "a.com.") add up.
            for i in range(3):
                values[3 * at + i] += triple[i]
            if max(values[3 * at : 3 * at + 3]) > MAX_COUNT:
                errors[key] = [f"the counts of {name} add up to more than {MAX_COUNT}"]
    if errors:
        raise InvalidBatch(errors)
    return Batch(timestamp, names, values)


def parse_batches(payload: Any, *, now: float, retention: int, future: int) -> list[Batch]:
    """Validate a batch object or an array of them; all must pass or none is returned."""
    earliest, latest = int(now) - retention, int(now) + future
    if isinstance(payload, dict):
        return [_batch(payload, earliest, latest)]
    if not isinstance(payload, list):
        raise BadBody("request body must be a JSON object or an array of objects")
    batches, errors = [], {}
    for index, item in enumerate(payload):
        try:
            batches.append(_batch(item, earliest, latest))
        except InvalidBatch as exc:
            errors[str(index)] = exc.errors
    if errors:
        raise InvalidBatch(errors)
    return batches
