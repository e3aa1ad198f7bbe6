"""Shared fixtures: a fake clock, an app on it, and a test client."""

from __future__ import annotations

import pytest

from app import create_app

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


@pytest.fixture(params=["sqlite://", "memory://"])
def app(request, clock, tmp_path):
    """The app on each storage backend."""
    app = create_app(
        {
            "TESTING": True,
            "CLOCK": clock,
            "START_BACKGROUND": False,
            "DATA_DIR": str(tmp_path / "data"),
            "STORAGE_URL": request.param,
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
