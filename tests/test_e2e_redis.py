"""Real server processes started with ./start.sh on one real redis-server."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.redis_server import RedisServer
from tests.server import ROOT, ServerProcess
from tests.test_alerts import Receiver
from tests.test_e2e import poll

pytestmark = pytest.mark.e2e


@pytest.fixture
def redis(tmp_path):
    if not RedisServer.available():
        pytest.skip("redis-server is not installed (test.sh installs it)")
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def get(server: ServerProcess, path: str) -> dict:
    return requests.get(server.url + path, timeout=10).json()


def test_two_servers_on_one_redis_agree_and_alert_once(tmp_path, redis):
    receiver = Receiver()
    servers = [ServerProcess(tmp_path / name, "--storage", redis.url).wait_ready() for name in "ab"]
    try:
        rule = {
            "name": "busy",
            "domain": "*",
            "metric": "clicks",
            "window": "1m",
            "threshold": 0.5,
            "notify": [f"webhook:{receiver.url}"],
        }
        response = requests.post(servers[0].url + "/alerts/rules", json=rule, timeout=10)
        assert response.status_code == 201
        now = int(time.time())
        for i in range(60):
            body = {"timestamp": now - i, f"d{i % 9}.com": i + 1, "all.com": 1}
            answer = requests.post(servers[i % 2].url + "/domains", json=body, timeout=10)
            assert answer.status_code == 200

        expected = {"all.com": 60}
        for i in range(60):
            expected[f"d{i % 9}.com"] = expected.get(f"d{i % 9}.com", 0) + i + 1

        def answers(path):
            return [get(server, path) for server in servers]

        def both(want):
            return lambda pair: pair[0] == pair[1] and want(pair[0])

        for period in ("hour", "day"):
            pair = poll(
                lambda period=period: answers(f"/domains/{period}?limit=100"),
                both(lambda answer: answer["domains"] == expected),
            )
            assert pair[0]["domains"] == pair[1]["domains"] == expected, period
        pair = poll(
            lambda: answers("/domains/d4.com/series?window=5m&step=60"),
            both(lambda answer: sum(p["value"] for p in answer["points"]) == expected["d4.com"]),
        )
        assert pair[0] == pair[1]
        stats = answers("/stats?window=1h")
        assert stats[0]["clicks"] == stats[1]["clicks"] == 60 + sum(range(1, 61))
        # Alerting is the leader's work: exactly one notification, whatever the processes.
        poll(lambda: receiver.bodies, lambda bodies: bodies)
        time.sleep(3)  # several more ticks of both processes, which must send nothing more
        assert [body["state"] for body in receiver.bodies] == ["firing"]
        firing = answers("/alerts")
        assert [a["rule"] for a in firing[0]["firing"]] == ["busy"]
        assert firing[0]["firing"] == firing[1]["firing"]
    finally:
        for server in servers:
            server.stop()
        receiver.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_workers_share_one_port_on_redis(tmp_path, redis):
    with ServerProcess(tmp_path / "w", "--storage", redis.url, "--workers", "2") as server:
        now = int(time.time())
        for i in range(20):
            body = {"timestamp": now, f"w{i}.com": 1}
            assert requests.post(server.url + "/domains", json=body, timeout=10).status_code == 200
        totals = poll(
            lambda: get(server, "/domains/min?limit=100")["domains"], lambda d: len(d) == 20
        )
        assert len(totals) == 20
    log = server.log.read_text()
    workers = log.split("started 2 workers: ")[1].split()[:2]
    served = {line.split()[2] for line in log.splitlines() if "POST /domains" in line}
    assert served == set(workers), "the kernel spreads connections over both workers"
    # The parent was killed with SIGKILL on leaving the block: its workers must not live on.
    left = poll(lambda: [pid for pid in map(int, workers) if alive(pid)], lambda pids: not pids)
    assert left == [], f"workers {left} outlived their parent"


def test_more_than_one_worker_on_the_embedded_store_is_refused(tmp_path):
    done = subprocess.run(
        [ROOT / "start.sh", "--workers", "2", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "cannot start 2 workers on sqlite://" in done.stderr
    assert "--storage redis://" in done.stderr


def test_redis_restart_mid_stream_loses_nothing_acknowledged(tmp_path, redis):
    with ServerProcess(tmp_path / "r", "--storage", redis.url) as server:
        now = int(time.time())

        def post(i: int) -> requests.Response:
            body = {"timestamp": now, "steady.com": 1, f"s{i}.com": 1}
            headers = {"Idempotency-Key": f"batch-{i}"}
            return requests.post(server.url + "/domains", json=body, headers=headers, timeout=30)

        for i in range(30):
            assert post(i).status_code == 200
        redis.stop()  # kill -9: only the append-only file (fsynced always) remembers
        down = post(30)
        assert down.status_code == 503
        error = down.json()
        assert error["status"] == "error"
        assert error["message"].startswith("storage unavailable: Redis at 127.0.0.1 is unavail")
        assert requests.get(server.url + "/stats", timeout=30).status_code == 503
        metrics = requests.get(server.url + "/metrics", timeout=30)
        assert metrics.status_code == 200 and "domainstats_tracked_domains NaN" in metrics.text
        redis.start()
        # The client retries its batch with the same key until it is acknowledged.
        assert poll(lambda: post(30), lambda r: r.status_code == 200).status_code == 200
        assert post(31).status_code == 200
        stats = get(server, "/domains/steady.com")
        assert stats["totals"]["hour"]["clicks"] == 32
        stats = get(server, "/stats?window=1h")
        assert (stats["clicks"], stats["domains"]) == (64, 33)
