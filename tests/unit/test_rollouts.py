"""The update manager's plain classes on SQLite and PostgreSQL (no Ray, no HTTP): artifacts
stored by hash and signed, rollouts offered phase by phase, paused by failures, rolled back,
soaked, and kept inside maintenance windows."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from bigevy.config import UpdatesSpec
from bigevy.errors import Conflict, NotFound, ValidationFailed
from bigevy.fleet.service import FleetService
from bigevy.http.updates.protocol import RolloutCreate, RolloutReport, Target
from bigevy.updates.artifacts import Artifacts
from bigevy.updates.blobs import BlobStore
from bigevy.updates.rollouts import Rollouts, in_window, phases_of
from tests.support.fleet import Clock, clock, enroll, fleet
from tests.support.postgres import database_url

FIXTURES = (database_url, clock, fleet)


def stored(artifacts: Artifacts, data: bytes, version: str = "2.0", **kw: object) -> str:
    writer = artifacts.store.writer()
    writer.write(data)
    blob = writer.commit()
    return artifacts.add(blob, "model", version, "m.gguf", kw.get("hardware", []), "k1").id


@pytest.fixture
def artifacts(fleet: FleetService, tmp_path: Path) -> Artifacts:
    return Artifacts(fleet, BlobStore(str(tmp_path / "artifacts")))


@pytest.fixture
def rollouts(fleet: FleetService) -> Rollouts:
    return Rollouts(fleet, UpdatesSpec(pause_above=0.1, soak_s=0))


def fleet_of(fleet: FleetService, n: int, **description: str) -> list[str]:
    return [enroll(fleet, **description)[0] for _ in range(n)]


def offered(rollouts: Rollouts, nodes: list[str], kind: str = "artifact_update") -> list[str]:
    return [n for n in nodes if any(d["type"] == kind for d in rollouts.directives_for(n))]


def report(rollouts: Rollouts, rollout_id: str, nodes: list[str], status: str) -> None:
    for node in nodes:
        rollouts.report(rollout_id, node, RolloutReport(status=status))  # type: ignore[arg-type]


def test_an_artifact_is_stored_once_signed_and_checked(
    artifacts: Artifacts, fleet: FleetService
) -> None:
    data = b"GGUF" + bytes(range(256)) * 4000
    artifact = artifacts.get(stored(artifacts, data))
    assert artifact.sha256 == hashlib.sha256(data).hexdigest() and artifact.size == len(data)
    public = Ed25519PublicKey.from_public_bytes(base64.b64decode(fleet.signing.public_key))
    public.verify(base64.b64decode(artifact.signature), artifact.signed.encode())
    signed = json.loads(artifact.signed)
    assert (signed["kind"], signed["version"], signed["size"], signed["sha256"]) == (
        "model",
        "2.0",
        len(data),
        artifact.sha256,
    )
    with pytest.raises(Conflict):  # (kind, version) names one artifact
        stored(artifacts, b"other bytes")
    twin = stored(artifacts, data, version="2.0-copy")  # the same bytes: one file
    artifacts.delete(twin)
    assert artifacts.check(artifact.id) is None  # ...which the first still has

    path = Path(artifacts.store.path(artifact.sha256))
    path.write_bytes(data[:-1] + b"!")
    assert "changed" in (artifacts.check(artifact.id) or "")
    path.unlink()
    assert "missing" in (artifacts.check(artifact.id) or "")
    with pytest.raises(NotFound):
        artifacts.file(artifact.id, None)


def test_phases_are_stable_cumulative_and_start_with_a_node() -> None:
    nodes = [f"n{i}" for i in range(200)]
    phases = phases_of("ro_1", nodes, [5, 25, 100])
    sizes = [sum(1 for p in phases.values() if p == k) for k in range(3)]
    assert sizes == [10, 40, 150]
    assert phases == phases_of("ro_1", list(reversed(nodes)), [5, 25, 100])
    assert phases != phases_of("ro_2", nodes, [5, 25, 100])  # each rollout, its own canaries
    assert list(phases_of("ro_1", ["only"], [1, 100]).values()) == [0]


def test_a_phase_moves_on_when_its_nodes_are_healthy_and_failures_pause_it(
    artifacts: Artifacts, rollouts: Rollouts, fleet: FleetService
) -> None:
    nodes = fleet_of(fleet, 20, region="kisumu")
    art = stored(artifacts, b"model bytes")
    ro = rollouts.create(
        RolloutCreate(artifact_id=art, to=Target(regions=["kisumu"]), phases=[10, 50, 100]),
        "k1",
    )
    assert ro.nodes == 20 and ro.reached == 2 and ro.state == "active"
    first = offered(rollouts, nodes)
    assert len(first) == 2  # only the first phase hears of it
    assert artifacts.file(art, first[0]).size == len(b"model bytes")
    with pytest.raises(NotFound):  # a node not offered it cannot fetch it
        artifacts.file(art, next(n for n in nodes if n not in first))

    report(rollouts, ro.id, first, "healthy")
    assert rollouts.get(ro.id).phase == 1
    second = offered(rollouts, nodes)
    assert len(second) == 8 and not set(second) & set(first)

    report(rollouts, ro.id, second[:1], "failed")  # 1 of 10 reached: not over 10 %
    assert rollouts.get(ro.id).state == "active"
    report(rollouts, ro.id, second[1:2], "failed")  # 2 of 10: over it
    paused = rollouts.get(ro.id)
    assert paused.state == "paused" and "2 of 10" in paused.reason
    assert paused.events[-1].actor == "bigevy" and paused.events[-1].event == "paused"
    report(rollouts, ro.id, second[2:], "healthy")
    assert rollouts.get(ro.id).phase == 1  # settled, but paused: no third phase
    assert offered(rollouts, nodes) == []

    resumed = rollouts.command(ro.id, "resume", "k2", "two bad SD cards")
    assert resumed.phase == 2 and resumed.state == "active"
    assert [e.actor for e in resumed.events if e.event == "resume"] == ["key:k2"]
    third = offered(rollouts, nodes)
    assert len(third) == 10
    report(rollouts, ro.id, third, "healthy")
    done = rollouts.get(ro.id)
    assert done.state == "completed" and done.counts.healthy == 18 and done.counts.failed == 2
    with pytest.raises(Conflict):
        rollouts.command(ro.id, "pause", "k2", "")


def test_a_rollback_takes_the_artifact_back_from_every_node_that_has_it(
    artifacts: Artifacts, rollouts: Rollouts, fleet: FleetService
) -> None:
    nodes = fleet_of(fleet, 4)
    art = stored(artifacts, b"bad model")
    ro = rollouts.create(
        RolloutCreate(artifact_id=art, to=Target(nodes=nodes), phases=[50, 100]), "k1"
    )
    first = offered(rollouts, nodes)
    report(rollouts, ro.id, first, "healthy")
    rollouts.command(ro.id, "rollback", "k1", "answers got worse")
    assert offered(rollouts, nodes) == []
    assert sorted(offered(rollouts, nodes, "artifact_rollback")) == sorted(first)
    with pytest.raises(Conflict):  # one live rollout per kind and node
        rollouts.create(RolloutCreate(artifact_id=art, to=Target(nodes=nodes[:1])), "k1")
    report(rollouts, ro.id, first, "rolled_back")
    assert rollouts.get(ro.id).state == "rolled_back"
    with pytest.raises(Conflict):  # its record keeps the artifact
        artifacts.delete(art)


def test_auto_rollback_soak_windows_and_refusals(
    artifacts: Artifacts, rollouts: Rollouts, fleet: FleetService, clock: Clock
) -> None:
    nodes = fleet_of(fleet, 10, hardware="rpi4")
    art = stored(artifacts, b"software", hardware=["rpi4"])
    with pytest.raises(ValidationFailed, match="targets no nodes"):
        rollouts.create(RolloutCreate(artifact_id=art, to=Target(hardware=["rpi5"])), "k1")
    with pytest.raises(ValidationError, match="100%"):
        RolloutCreate(artifact_id=art, to=Target(all=True), phases=[5, 50])
    with pytest.raises(ValidationError):
        Target()

    soaking = rollouts.create(
        RolloutCreate(artifact_id=art, to=Target(all=True), phases=[20, 100], soak_s=600), "k1"
    )
    first = offered(rollouts, nodes)
    assert len(first) == 2
    clock.now += 599
    assert rollouts.tick() == 0
    clock.now += 1
    assert rollouts.tick() == 1 and rollouts.get(soaking.id).phase == 1
    rollouts.command(soaking.id, "abort", "k1", "")

    # Inside its window or not at all: 01:00-03:00 UTC.
    fleet.set_maintenance_window(nodes[0], "01:00-03:00")
    art2 = stored(artifacts, b"software 2", version="3.0", hardware=["rpi4"])
    auto = rollouts.create(
        RolloutCreate(
            artifact_id=art2, to=Target(nodes=nodes[:2]), phases=[100], auto_rollback=True
        ),
        "k1",
    )
    clock.now = 1_800_000_000 - 1_800_000_000 % 86400 + 4 * 3600  # 04:00 UTC
    assert offered(rollouts, nodes[:1]) == []
    clock.now += 22 * 3600  # 02:00 the next day
    assert offered(rollouts, nodes[:1]) == nodes[:1]
    report(rollouts, auto.id, nodes[:1], "failed")  # 1 of 2: over 10 %, rolls back by itself
    rolled = rollouts.get(auto.id)
    # ...and is done at once: no node had it installed.
    assert [e.event for e in rolled.events][-3:] == ["paused", "rollback", "rolled_back"]
    assert rolled.state == "rolled_back"


def test_window_arithmetic() -> None:
    assert in_window(None, 0) and in_window("01:00-03:00", 3600)
    assert not in_window("01:00-03:00", 3 * 3600)
    assert in_window("22:00-02:00", 23 * 3600) and in_window("22:00-02:00", 3600)
    assert not in_window("22:00-02:00", 12 * 3600)
