"""Domain keys: one canonical spelling per domain."""

from __future__ import annotations

from functools import lru_cache

import idna

MAX_LENGTH = 253
_FORBIDDEN = frozenset("/:")


@lru_cache(maxsize=65536)
def normalize_domain(raw: str) -> str:
    """Return the canonical form of a domain key, or raise ValueError saying what is wrong."""
    name = raw.strip().lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValueError("domain is empty")
    for char in name:
        if char.isspace():
            raise ValueError("domain contains whitespace")
        if not char.isprintable():
            raise ValueError("domain contains a control character")
        if char in _FORBIDDEN:
            raise ValueError(f"domain contains {char!r}")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"not a valid internationalised domain name: {exc}") from None
    if len(name) > MAX_LENGTH:
        raise ValueError(f"domain is longer than {MAX_LENGTH} characters")
    return name
