"""Error messages built from marshmallow-style error dicts."""

from __future__ import annotations

from typing import Any


def summarize(errors: dict[str, Any], prefix: str = "") -> str:
    """Say the first error of a nested error dict in one line, and how many more there are."""
    key, first = next(iter(errors.items()))
    if isinstance(first, dict):
        text = summarize(first, f"{prefix}[{key}] " if key.isdigit() else f"{prefix}{key}.")
    else:
        text = f"{prefix}{key}: {first[0]}"
    more = len(errors) - 1
    return f"{text} (and {more} more)" if more and not prefix else text


def error_payload(message: str, errors: dict[str, Any]) -> dict[str, Any]:
    """Return the one JSON error shape of every endpoint."""
    return {"status": "error", "message": message, "errors": errors}
