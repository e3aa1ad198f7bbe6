"""Idempotent retries and the moving-window counter, through the test client."""

from __future__ import annotations

import pytest

from app import create_app
from tests.conftest import T0


def post(client, body, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post("/domains", json=body, headers=headers)


def test_a_retry_with_the_same_key_counts_once(client, rebuild):
    first = post(client, {"timestamp": T0, "a.com": 5}, key="batch-1")
    again = post(client, {"timestamp": T0, "a.com": 5}, key="batch-1")
    assert first.status_code == again.status_code == 200
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    rebuild()
    assert client.get("/domains/min").json["domains"] == {"a.com": 5}
    assert "domainstats_idempotent_replays_total 1.0" in client.get("/metrics").text


def test_other_keys_and_no_key_count_again(client, rebuild):
    post(client, {"timestamp": T0, "a.com": 5}, key="one")
    post(client, {"timestamp": T0, "a.com": 5}, key="two")
    post(client, {"timestamp": T0, "a.com": 5})
    rebuild()
    assert client.get("/domains/min").json["domains"] == {"a.com": 15}


def test_a_key_reused_for_another_body_is_refused(client, rebuild):
    post(client, {"timestamp": T0, "a.com": 5}, key="k")
    response = post(client, {"timestamp": T0, "a.com": 6}, key="k")
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json["errors"]
    rebuild()
    assert client.get("/domains/min").json["domains"] == {"a.com": 5}


def test_a_rejected_request_does_not_keep_its_key(client, rebuild):
    assert post(client, {"timestamp": "bad", "a.com": 5}, key="k").status_code == 422
    assert post(client, {"timestamp": T0, "a.com": 5}, key="k").status_code == 200


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_bad_keys_are_refused(client, key):
    response = client.post(
        "/domains", json={"timestamp": T0, "a.com": 1}, headers={"Idempotency-Key": key}
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json["errors"]


def test_keys_expire_with_the_retention(client, rebuild, clock):
    post(client, {"timestamp": T0, "a.com": 5}, key="k")
    clock.tick(25 * 3600 + 1)
    rebuild()
    now = int(clock.now)
    assert post(client, {"timestamp": now, "a.com": 5}, key="k").status_code == 200
    rebuild()
    assert client.get("/domains/min").json["domains"] == {"a.com": 5}


def test_stats_counts_requests_clicks_and_domains(client, clock):
    post(client, {"timestamp": T0 - 10, "a.com": 5, "b.com": {"bytes_in": 7}})
    post(client, {"timestamp": T0 - 100, "old.com": 50})
    client.get("/health")
    body = client.get("/stats").json
    assert body == {"status": "ok", "window": 60, "requestCount": 4, "clicks": 5, "domains": 2}
    wide = client.get("/stats?window=2m").json
    assert (wide["requestCount"], wide["clicks"], wide["domains"]) == (5, 55, 3)
    clock.tick(60)
    assert client.get("/stats").json["requestCount"] == 1


@pytest.mark.parametrize("window", ["0", "91d", "soon"])
def test_stats_rejects_bad_windows(client, window):
    response = client.get(f"/stats?window={window}")
    assert response.status_code == 422
    assert "window" in response.json["errors"]["query"]


def test_keys_and_counts_survive_a_restart(tmp_path, clock):
    config = {
        "TESTING": True,
        "CLOCK": clock,
        "START_BACKGROUND": False,
        "DATA_DIR": str(tmp_path / "data"),
    }
    app = create_app(config)
    client = app.test_client()
    first = post(client, {"timestamp": T0, "a.com": 5}, key="k")
    client.get("/health")
    app.extensions["domainstats"].close()

    app = create_app(config)
    client = app.test_client()
    again = post(client, {"timestamp": T0, "a.com": 5}, key="k")
    assert again.data == first.data
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/stats").json == {
        "status": "ok",
        "window": 60,
        "requestCount": 4,
        "clicks": 5,
        "domains": 1,
    }
    app.extensions["domainstats"].close()


def test_a_retry_racing_the_original_waits_for_its_answer(tmp_path, clock):
    import gevent

    app = create_app(
        {
            "TESTING": True,
            "CLOCK": clock,
            "START_BACKGROUND": False,
            "DATA_DIR": str(tmp_path / "data"),
        }
    )
    body = {"timestamp": T0, "a.com": 5}
    # Both are in flight at once: the first waits on the commit, the second on the first.
    first, second = gevent.joinall(
        [gevent.spawn(post, app.test_client(), body, "k") for _ in range(2)], raise_error=True
    )
    assert first.value.status_code == second.value.status_code == 200
    replayed = [r.value.headers.get("Idempotent-Replayed") for r in (first, second)]
    assert sorted(replayed, key=str) == [None, "true"]
    assert app.extensions["domainstats"].storage.summary(60).clicks == 5
    app.extensions["domainstats"].close()
