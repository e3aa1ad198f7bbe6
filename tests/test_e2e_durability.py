"""What survives what, on real processes started with ./start.sh."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import requests

from storage.sqlite_backend import DB_NAME
from tests.server import ServerProcess, free_port

pytestmark = pytest.mark.e2e


STARTED = int(time.time())


def batch(i: int) -> dict:
    """Batch i: its own domain with i + 1 clicks; every 7th is invalid and must never count.

    The same body every time it is sent, as a retry must be.
    """
    body = {"timestamp": STARTED, f"b{i}.example": i + 1}
    if i % 7 == 3:
        body["not a domain/"] = 1
    return body


def post(url: str, i: int) -> int | None:
    """Post batch i with its own idempotency key; None when no answer came."""
    try:
        response = requests.post(
            f"{url}/domains", json=batch(i), headers={"Idempotency-Key": f"k{i}"}, timeout=10
        )
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
        # No answer, or one cut off by the kill: the batch may or may not be committed.
        return None
    return response.status_code


def test_kill_9_mid_stream_loses_no_acknowledged_batch(tmp_path):
    data = tmp_path / "data"
    port = free_port()
    server = ServerProcess(data, port=port).wait_ready()
    results: dict[int, int | None] = {}
    stop = threading.Event()

    def client(first: int) -> None:
        session_url = server.url
        for i in range(first, 800, 4):
            if stop.is_set():
                return
            results[i] = post(session_url, i)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while sum(1 for s in results.values() if s == 200) < 150 and time.monotonic() < deadline:
        time.sleep(0.01)
    server.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join()

    acked = {i for i, s in results.items() if s == 200}
    rejected = {i for i, s in results.items() if s == 422}
    unanswered = {i for i, s in results.items() if s is None}
    assert len(acked) >= 150, results
    assert rejected and all(i % 7 == 3 for i in rejected)
    assert set(results) == acked | rejected | unanswered

    with ServerProcess(data, port=port) as again:
        hour = requests.get(f"{again.url}/domains/hour?limit=1000", timeout=5).json()["domains"]
        for i in acked:
            assert hour[f"b{i}.example"] == i + 1, i
        for i in rejected:
            assert f"b{i}.example" not in hour
        assert "not a domain/" not in hour
        # Unanswered batches may or may not have been committed: a retry settles it, once.
        for i in unanswered:
            assert hour.get(f"b{i}.example", 0) in (0, i + 1)
            assert post(again.url, i) == (422 if i % 7 == 3 else 200)
        valid = (acked | unanswered) - {i for i in unanswered if i % 7 == 3}
        # Computed on request: the ready /domains/hour answer is up to 5 s old.
        hour = requests.get(f"{again.url}/domains/top?window=1h&limit=1000", timeout=5).json()
        hour = hour["domains"]
        assert hour == {f"b{i}.example": i + 1 for i in valid}
        stats = requests.get(f"{again.url}/stats?window=1h", timeout=5).json()
        assert stats["clicks"] == sum(i + 1 for i in valid)
        assert stats["domains"] == len(valid)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL])
def test_restart_gives_the_same_answers(tmp_path, stop_signal):
    data = tmp_path / "data"
    port = free_port()
    with ServerProcess(data, port=port) as server:
        first = requests.get(f"{server.url}/stats?window=1h", timeout=5).json()["requestCount"]
        for i in range(30):
            assert post(server.url, i) in (200, 422)
        for _ in range(10):
            requests.get(f"{server.url}/health", timeout=5)

        def hour() -> dict:
            return requests.get(f"{server.url}/domains/hour?limit=1000", timeout=5).json()

        deadline = time.monotonic() + 15
        while len(hour()["domains"]) < 25 and time.monotonic() < deadline:
            time.sleep(0.2)
        polls_so_far = requests.get(f"{server.url}/stats?window=1h", timeout=5).json()
        before = hour()
        made = polls_so_far["requestCount"] + 1  # the GET /domains/hour just above
        assert server.stop(stop_signal) in (0, -signal.SIGKILL)

    with ServerProcess(data, port=port) as again:
        after = requests.get(f"{again.url}/domains/hour?limit=1000", timeout=5).json()
        assert after["domains"] == before["domains"]
        assert len(after["domains"]) == 30 - len([i for i in range(30) if i % 7 == 3])
        stats = requests.get(f"{again.url}/stats?window=1h", timeout=5).json()
        # Every request before the stop, the GET just made and this one.
        assert stats["requestCount"] == made + 2
        assert first == 1


def test_a_corrupt_database_stops_the_server_with_a_clear_message(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_NAME).write_bytes(b"garbage" * 1000)
    server = ServerProcess(data)
    assert server.process.wait(120) == 1
    output = server.output()
    assert f"cannot use the database {data / DB_NAME}" in output
    assert "move the file" in output
    assert (data / DB_NAME).read_bytes() == b"garbage" * 1000


def test_a_second_server_on_the_same_directory_refuses_to_start(tmp_path):
    data = tmp_path / "data"
    with ServerProcess(data) as first:
        second = ServerProcess(data)
        assert second.process.wait(120) == 1
        assert "another domainstats server" in second.output()
        assert requests.get(f"{first.url}/health", timeout=5).ok
