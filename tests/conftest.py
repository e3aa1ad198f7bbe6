"""Shared fixtures: a fake clock, an app on it, and a test client."""

from __future__ import annotations

import pytest

from app import create_app
from tests.redis_server import RedisServer

#: 2022-02-09T11:49:04Z, the seed's timestamp.
T0 = 1644407344


class FakeClock:
    """A clock that moves only when told."""

    def __init__(self, now: float = T0) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float = 1.0) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _redis(tmp_path_factory, name: str, **options):
    """Start a real redis-server for the session, or skip saying why it cannot."""
    if not RedisServer.available():
        pytest.skip("redis-server is not installed (test.sh installs it)")
    server = RedisServer(tmp_path_factory.mktemp(name), **options).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the session (each test empties it first)."""
    yield from _redis(tmp_path_factory, "redis")


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory):
    """A real one-node Redis Cluster (all 16384 slots), for the cluster client's paths."""
    yield from _redis(tmp_path_factory, "cluster", cluster=True)


@pytest.fixture(scope="session")
def redis_tls(tmp_path_factory):
    """A real redis-server that speaks only TLS, with a self-signed certificate."""
    yield from _redis(tmp_path_factory, "tls", tls=True)


@pytest.fixture
def redis_url(redis_server):
    """The URL of an empty Redis."""
    redis_server.command("FLUSHALL")
    return redis_server.url


def storage_url(request, tmp_path) -> str:
    """The storage URL a backend parameter names (starting Redis when needed)."""
    if request.param.startswith("redis"):
        server = request.getfixturevalue(
            "redis_cluster" if request.param == "redis-cluster" else "redis_server"
        )
        server.command("FLUSHALL")
        return server.url
    return request.param


@pytest.fixture(params=["sqlite://", "memory://", "redis", "redis-cluster"])
def app(request, clock, tmp_path):
    """The app on each storage backend."""
    app = create_app(
        {
            "TESTING": True,
            "CLOCK": clock,
            "START_BACKGROUND": False,
            "DATA_DIR": str(tmp_path / "data"),
            "STORAGE_URL": storage_url(request, tmp_path),
        }
    )
    yield app
    app.extensions["domainstats"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def rebuild(app):
    """Run one aggregation tick, as the background loop would."""
    return app.extensions["domainstats"].aggregator.rebuild_once
