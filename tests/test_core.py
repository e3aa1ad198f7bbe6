"""Domain names and durations."""

import pytest

from core.domains import normalize_domain
from core.timeutil import isoformat, parse_duration


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("example1.com", "example1.com"),
        ("  Example.COM.  ", "example.com"),
        ("example3", "example3"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example.", "xn--bcher-kva.example"),
        ("a" * 253, "a" * 253),
    ],
)
def test_normalize_accepts(raw, expected):
    assert normalize_domain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (".", "empty"),
        ("a" * 254, "longer than 253"),
        ("exa mple.com", "whitespace"),
        ("exa\tmple.com", "whitespace"),
        ("exa\x00mple.com", "control"),
        ("exa\x7fmple.com", "control"),
        ("example.com/path", "'/'"),
        ("example.com:80", "':'"),
        ("a\u200db.com", "control"),
        ("\u00e9-.com", "internationalised"),
        ("\u0300a.com", "internationalised"),
    ],
)
def test_normalize_rejects(raw, reason):
    with pytest.raises(ValueError, match=reason):
        normalize_domain(raw)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("2m", 120), ("25h", 90000), ("7d", 604800), (" 1D ", 86400)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1.5h", "-1s", "1w", "h", "1 2s"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_isoformat():
    assert isoformat(1644407344.9) == "2022-02-09T11:49:04Z"
