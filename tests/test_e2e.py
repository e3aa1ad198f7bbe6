"""The real thing: ./start.sh serving, ./send_domains_stats.sh posting."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import requests

from tests.server import ROOT, ServerProcess

pytestmark = pytest.mark.e2e


def poll(fetch, until, timeout=10.0):
    """Call `fetch` until `until(result)` holds; return the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = fetch()
        if until(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_send_script_against_the_real_server(tmp_path):
    with ServerProcess(tmp_path / "data") as server:
        sent = subprocess.run(
            [ROOT / "send_domains_stats.sh", "-u", server.url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert "1 ok, 0 failed" in sent.stdout

        def minute():
            return requests.get(f"{server.url}/domains/min", timeout=5).json()["domains"]

        expected = {"example1.com": 80, "example3": 12, "example2.com": 5}
        started = time.monotonic()
        assert poll(minute, lambda d: d == expected) == expected
        assert time.monotonic() - started < 2.5  # visible within the 1 s rebuild tick

        loops = subprocess.run(
            [ROOT / "send_domains_stats.sh", "-u", server.url, "-n", "20", "-d", "30", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert loops.returncode == 0, loops.stdout + loops.stderr
        assert "20 ok, 0 failed" in loops.stdout
        hour = poll(
            lambda: requests.get(f"{server.url}/domains/hour?limit=1000", timeout=5).json(),
            lambda body: len(body["domains"]) > 3,
        )
        assert sum(hour["domains"].values()) > 97
        assert server.stop(signal.SIGTERM) == 0
    assert "stopped" in server.output()


def test_help_lists_options_and_environment():
    shown = subprocess.run(
        [ROOT / "start.sh", "--help"], capture_output=True, text=True, timeout=120
    )
    assert shown.returncode == 0
    for flag in ("--host", "--port", "--data-dir", "--retention", "--log-level"):
        assert flag in shown.stdout
    assert "DOMAINSTATS_RETENTION" in shown.stdout
