"""The fleet's database on a hand-moved clock, as unit tests build it (no Ray, no HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bigevy.config import FleetSpec
from bigevy.fleet.db import current_revision, head_revision, make_engine, upgrade
from bigevy.fleet.service import FleetService
from bigevy.fleet.signing import SigningKey
from bigevy.http.fleet.protocol import EnrollRequest


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fleet(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[FleetService]:
    """A FleetService on a database migrated from empty (each backend `database_url` gives)."""
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    upgrade(engine)  # a second start changes nothing
    yield FleetService(
        engine,
        FleetSpec(stale_after_s=180, offline_after_s=1800),
        SigningKey.load_or_create(tmp_path / "signing.pem"),
        clock=clock,
    )
    engine.dispose()


def enroll(fleet: FleetService, **description: str) -> tuple[str, str]:
    """A node enrolled with a fresh token: (node id, node key)."""
    token = fleet.create_token(None, None, "", None).token
    done = fleet.enroll(EnrollRequest(token=token, name="lil-1", **description))
    return done.node_id, done.node_key
