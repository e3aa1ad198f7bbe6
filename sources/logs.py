"""Access-log lines to hits: TrafficMonitor's CSV, Common and Combined Log Format."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

FORMATS = ("csv", "clf", "combined")
CSV_HEADER = '"remotehost","rfc931","authuser","date","request","status","bytes"'

# host ident user [date] "request" status bytes ["referer" "agent"]; an optional
# "vhost:port " in front (Apache's vhost_combined).
_CLF = re.compile(
    r"(?:(?P<vhost>[^\s:]+(?::\d+)?) (?=\S+ \S+ \S+ \[))?"
    r'(?P<host>\S+) \S+ \S+ \[(?P<date>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+|-)(?P<extra> "[^"]*" "[^"]*")?\s*$'
)


@dataclass(frozen=True, slots=True)
class Hit:
    """One request from a log line."""

    time: int
    host: str
    method: str
    section: str
    status: int
    bytes: int
    vhost: str = ""


class BadLine(ValueError):
    """A line that is not in the expected format."""


def section_of(path: str) -> str:
    """`/api/user?id=1` -> `/api`; `/` -> `/`."""
    if not path.startswith("/"):
        return "/"
    first = path.split("/", 2)[1]
    for stop in "?#":
        first = first.split(stop, 1)[0]
    return "/" + first


_REQUESTS: dict[str, tuple[str, str]] = {}


def _request(request: str) -> tuple[str, str]:
    """(method, section) of a request line; the same lines recur, so answers are kept."""
    known = _REQUESTS.get(request)
    if known is None:
        parts = request.split(" ")
        if len(parts) < 2:
            raise BadLine(f"not an HTTP request line: {request!r}")
        if len(_REQUESTS) > 65536:
            _REQUESTS.clear()
        known = _REQUESTS[request] = (parts[0], section_of(parts[1]))
    return known


def detect(first_lines: Iterable[str]) -> str:
    """Guess the format from the first lines: csv, combined or clf."""
    for line in first_lines:
        line = line.strip()
        if not line:
            continue
        if line.startswith('"remotehost"') or line.startswith('"'):
            return "csv"
        match = _CLF.match(line)
        if match:
            return "combined" if match["extra"] else "clf"
    raise BadLine("cannot tell the log format from the first lines: use --format")


def parse_csv(lines: Iterable[str]) -> Iterator[Hit | BadLine]:
    """TrafficMonitor's CSV; a header line is skipped. Bad rows come out as BadLine."""
    for row in csv.reader(lines):
        try:
            if row[0] == "remotehost":
                continue
            method, section = _request(row[4])
            yield Hit(int(row[3]), row[0], method, section, int(row[5]), int(row[6]))
        except (IndexError, ValueError) as exc:
            yield exc if isinstance(exc, BadLine) else BadLine(f"bad CSV row: {row!r}")


class _Dates:
    """Parse CLF dates (`10/Oct/2000:13:55:36 -0700`), remembering recent ones."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        value = self._seen.get(text)
        if value is None:
            try:
                value = int(datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z").timestamp())
            except ValueError:
                raise BadLine(f"bad date {text!r}") from None
            if len(self._seen) > 4096:
                self._seen.clear()
            self._seen[text] = value
        return value


def parse_clf(lines: Iterable[str]) -> Iterator[Hit | BadLine]:
    """Common or Combined Log Format (with or without a vhost in front)."""
    dates = _Dates()
    for line in lines:
        match = _CLF.match(line)
        if match is None:
            yield BadLine(f"not a Common/Combined log line: {line.strip()[:120]!r}")
            continue
        try:
            method, section = _request(match["request"])
            size = 0 if match["bytes"] == "-" else int(match["bytes"])
            vhost = (match["vhost"] or "").rsplit(":", 1)[0]
            yield Hit(
                dates(match["date"]),
                match["host"],
                method,
                section,
                int(match["status"]),
                size,
                vhost,
            )
        except BadLine as exc:
            yield exc


def parse(lines: Iterable[str], fmt: str) -> Iterator[Hit | BadLine]:
    """Hits (or BadLine for each malformed line) of `lines` in format `fmt`."""
    return parse_csv(lines) if fmt == "csv" else parse_clf(lines)
