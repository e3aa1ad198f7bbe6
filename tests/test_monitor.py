"""The access-log monitor on generated logs with known rates, and against a real server."""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
import time
from collections import Counter

import orjson
import pytest
import requests

from sources.logs import BadLine, detect, parse, section_of
from sources.monitor import Forwarder, LogMonitor, run
from tests.server import ROOT, ServerProcess

START = 1549573860


def rate_plan():
    """Requests per second: quiet, busy (alert), quiet (recovery), busy again."""
    return [5] * 100 + [15] * 150 + [4] * 200 + [13] * 100 + [2] * 60


def csv_lines(plan, shuffle=0, seed=1):
    rng = random.Random(seed)
    lines = []
    for offset, count in enumerate(plan):
        for i in range(count):
            section = ["/api/user", "/api/help", "/report", "/"][i % 4]
            status = [200, 200, 404, 503][i % 4]
            method = "GET" if i % 2 else "POST"
            line = (
                f'"10.0.0.{i % 3}","-","apache",{START + offset},'
                f'"{method} {section} HTTP/1.0",{status},{100 + i}'
            )
            lines.append((START + offset, line))
    if shuffle:
        # Up to `shuffle` seconds out of order, as in real logs.
        lines.sort(key=lambda item: item[0] + rng.uniform(-shuffle, shuffle))
    header = '"remotehost","rfc931","authuser","date","request","status","bytes"'
    return [header, *(line for _, line in lines)]


def reference_alerts(plan, window=120, threshold=10):
    """Alert events computed the slow, obvious way."""
    events, firing = [], False
    for t in range(len(plan)):
        hits = sum(plan[max(0, t - window + 1) : t + 1])
        if not firing and hits / window > threshold:
            firing = True
            events.append(("firing", START + t, hits))
        elif firing and hits / window <= threshold:
            firing = False
            events.append(("recovered", START + t, hits))
    return events


def monitor_events(lines, **options):
    out = []
    monitor = LogMonitor(out.append, **options)
    for hit in parse(lines, "csv"):
        monitor.add(hit)
    monitor.finish()
    return out


def alerts_of(events):
    from datetime import datetime

    return [
        (e["state"], int(datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp()),
         e["hits"])
        for e in events if e["type"] == "alert"
    ]  # fmt: skip


def test_alerts_fire_and_recover_at_the_right_seconds():
    plan = rate_plan()
    events = monitor_events(csv_lines(plan))
    expected = reference_alerts(plan)
    assert [state for state, _, _ in expected] == ["firing", "recovered", "firing", "recovered"]
    assert alerts_of(events) == expected
    first = next(e for e in events if e["type"] == "alert")
    at = first["at"]
    assert (
        first["message"]
        == f"High traffic generated an alert - hits = {expected[0][2]}, triggered at {at}"
    )


@pytest.mark.parametrize("seed", range(3))
def test_lines_out_of_order_change_nothing(seed):
    plan = rate_plan()
    ordered = monitor_events(csv_lines(plan))
    # Each line moves up to 2 s either way: at most 4 s behind a later one, within the lateness.
    shuffled = monitor_events(csv_lines(plan, shuffle=2, seed=seed), lateness=5)
    assert alerts_of(shuffled) == alerts_of(ordered)
    strip = [{k: v for k, v in e.items() if k != "late"} for e in ordered if e["type"] == "stats"]
    again = [{k: v for k, v in e.items() if k != "late"} for e in shuffled if e["type"] == "stats"]
    assert again == strip
    assert all(e["late"] == 0 for e in shuffled if e["type"] == "stats")


def test_stats_per_interval():
    events = monitor_events(csv_lines([4, 4, 0, 8] + [0] * 6 + [2]), interval=10)
    stats = [e for e in events if e["type"] == "stats"]
    assert [s["requests"] for s in stats] == [16, 2]
    first = stats[0]
    assert first["start"] == "2019-02-07T21:11:00Z" and first["end"] == "2019-02-07T21:11:10Z"
    assert first["bytes"] == sum(100 + i for n in (4, 4, 8) for i in range(n))
    assert first["sections"] == [["/api", 8, 0.5], ["/", 4, 0.25], ["/report", 4, 0.25]]
    assert first["methods"] == {"GET": 8, "POST": 8}
    assert first["statuses"] == {"2xx": 8, "4xx": 4, "5xx": 4}
    assert first["hosts"] == [("10.0.0.0", 7), ("10.0.0.1", 5), ("10.0.0.2", 4)]


def test_a_line_later_than_the_lateness_is_counted_late():
    lines = csv_lines([1] * 20)
    lines.append(lines[1])  # the first second again, 20 s later
    events = monitor_events(lines, interval=60, lateness=5)
    stats = [e for e in events if e["type"] == "stats"]
    assert stats[0]["requests"] == 20 and stats[0]["late"] == 1


COMBINED = (
    '10.1.1.1 - frank [07/Feb/2019:21:11:00 +0000] "GET /api/user?id=3 HTTP/1.1" 200 512 '
    '"http://ref/" "Mozilla/5.0"'
)
CLF = '10.1.1.2 - - [07/Feb/2019:22:11:01 +0100] "POST /report/x HTTP/1.0" 404 -'
VHOST = 'shop.example:443 10.1.1.3 - - [07/Feb/2019:21:11:02 +0000] "GET / HTTP/1.1" 200 7 "-" "x"'


def test_common_and_combined_formats():
    assert detect([COMBINED]) == "combined"
    assert detect([CLF]) == "clf"
    assert detect(['"remotehost","rfc931"']) == "csv"
    hits = list(parse([COMBINED, CLF, VHOST, "garbage line"], "combined"))
    assert [(h.time, h.host, h.method, h.section, h.status, h.bytes) for h in hits[:2]] == [
        (START, "10.1.1.1", "GET", "/api", 200, 512),
        (START + 1, "10.1.1.2", "POST", "/report", 404, 0),
    ]
    assert hits[2].vhost == "shop.example" and hits[2].section == "/"
    assert isinstance(hits[3], BadLine)
    assert [section_of(p) for p in ("/a/b", "/a?x=1", "/", "x", "/a#f")] == [
        "/a",
        "/a",
        "/",
        "/",
        "/a",
    ]


def args_for(path, **extra):
    options = dict(input=str(path), follow=False, format="auto", interval=10, window=120,
                   threshold=10, lateness=5, post=None, key="section", rebase=False, json=True,
                   strict=False)  # fmt: skip
    options.update(extra)
    return argparse.Namespace(**options)


def test_bad_lines_are_reported_with_their_numbers(tmp_path):
    lines = csv_lines([2, 2])
    lines.insert(2, "this is not csv at all")
    lines.insert(4, '"10.0.0.1","-","apache",notatime,"GET / HTTP/1.0",200,1')
    path = tmp_path / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    out = io.StringIO()
    assert run(args_for(path), out) == 0
    events = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["line"]) for e in events if e["type"] == "malformed"] == [3, 5]
    assert [e["requests"] for e in events if e["type"] == "stats"] == [4]
    strict = io.StringIO()
    assert run(args_for(path, strict=True), strict) == 2
    assert orjson.loads(strict.getvalue().splitlines()[-1])["line"] == 3


def test_the_shared_sample_log():
    sample = ROOT.parent / "shared" / "data" / "access-sample.csv"
    if not sample.exists():
        pytest.skip("../shared/data is not beside this checkout")
    out = io.StringIO()
    assert run(args_for(sample), out) == 0
    events = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert sum(e["requests"] + e["late"] for e in events if e["type"] == "stats") == 4830
    assert [e["state"] for e in events if e["type"] == "alert"][:2] == ["firing", "recovered"]


def test_follow_reads_appended_lines_and_survives_rotation(tmp_path):
    path = tmp_path / "access.log"
    lines = csv_lines([1] * 30)
    path.write_text("\n".join(lines[:11]) + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "sources.monitor", str(path), "--follow", "--json",
         "--lateness", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def wait_for_requests(total, timeout=20):
            seen, deadline = 0, time.monotonic() + timeout
            while seen < total and time.monotonic() < deadline:
                event = orjson.loads(process.stdout.readline())
                if event["type"] == "stats":
                    seen += event["requests"]
            return seen

        with open(path, "a") as f:
            f.write("\n".join(lines[11:21]) + "\n")
        assert wait_for_requests(10) == 10  # the first interval, closed by later lines
        path.rename(tmp_path / "access.log.1")  # rotate, then write to a new file
        path.write_text("\n".join(lines[21:]) + "\n")
        assert wait_for_requests(10) == 10
    finally:
        process.kill()
        process.wait()
        process.stdout.close()


def test_post_counts_each_batch_once_even_when_retried(tmp_path):
    with ServerProcess(tmp_path / "data") as server:
        forwarder = Forwarder(server.url, "section")
        forwarder.shift = int(time.time()) - START
        out = []
        monitor = LogMonitor(out.append, on_second=forwarder.second)
        for hit in parse(csv_lines([3, 5, 2]), "csv"):
            monitor.add(hit)
        monitor.finish()
        batches = list(forwarder._batches)
        forwarder.flush()
        # The same batches again with the same key, as a retry after a lost answer would be.
        forwarder._batches = batches
        forwarder.posted = 0
        forwarder.flush()
        top = requests.get(f"{server.url}/domains/top?window=1h&limit=10", timeout=5).json()
        assert top["domains"] == {"api": 7, "report": 2, "_root": 1}
        assert (
            requests.get(f"{server.url}/metrics", timeout=5).text.count(
                "domainstats_idempotent_replays_total 1.0"
            )
            == 1
        )
        by_bytes = requests.get(
            f"{server.url}/domains/top?window=1h&by=bytes_out", timeout=5
        ).json()["domains"]
        sizes = Counter()
        for count in (3, 5, 2):
            for i in range(count):
                sizes[["api", "api", "report", "_root"][i % 4]] += 100 + i
        assert by_bytes == dict(sizes)


def test_monitor_script_posts_a_log_with_rebase(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("\n".join(csv_lines([2] * 5)) + "\n")
    with ServerProcess(tmp_path / "data") as server:
        done = subprocess.run(
            [str(ROOT / "monitor.sh"), str(path), "--post", server.url, "--rebase", "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "posted 5 seconds of traffic" in done.stderr
        stats = requests.get(f"{server.url}/stats?window=1h", timeout=5).json()
        assert stats["clicks"] == 10
