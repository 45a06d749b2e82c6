"""The update manager end to end: artifacts uploaded with the CLI, rolled out phase by phase
to lilEVY nodes (the real client, installing A/B and self-testing the real model), paused by
a simulated fleet whose nodes fail, rolled back, and every bad input refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lilevy.client import (
    EdgeClient,
    Enrollment,
    HeartbeatStatus,
    NodeDescription,
    RetryPolicy,
)
from lilevy.simulator import simulate
from lilevy.sync import download
from lilevy.updates import Outcome, SelfTest, Slots, Updater, llama_self_test
from sqlalchemy import select

from bigevy.config import DEFAULT_MODEL_SOURCE, Settings, UpdatesSpec
from bigevy.fleet.models import Escalation
from bigevy.fleet.service import FleetService
from bigevy.ops.model_files import resolve_source
from tests.support.cluster import API, BIGEVY, ServeCluster
from tests.support.waiting import until

FAST = RetryPolicy(attempts=3, base_s=0.05, cap_s=2.0)


@pytest.fixture(scope="module")
def serve_cluster() -> Iterator[ServeCluster]:
    cluster = ServeCluster()
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # Phases move on as soon as their nodes settle; any failure pauses (the default, 2 %).
    updates = UpdatesSpec(soak_s=0, check_interval_s=0.5)
    return Settings(data_dir=tmp_path_factory.mktemp("data"), updates=updates)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BIGEVY, *args],
        env={**os.environ, "BIGEVY_API_KEY": API.key, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def add_artifact(base_url: str, path: Path, kind: str, version: str, *hardware: str) -> str:
    hw = [a for h in hardware for a in ("--hardware", h)]
    done = cli("artifacts", "add", str(path), "--kind", kind, "--version", version, *hw,
               "--url", base_url)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return re.search(r"artifact (art_\w+): ", done.stdout)[1]  # type: ignore[index]


def rollout(
    base_url: str, artifact_id: str, nodes: list[str], phases: str, *more: str
) -> dict[str, Any]:
    done = cli("rollouts", "create", artifact_id, "--to", "nodes=" + ",".join(nodes),
               "--phases", phases, *more, "--url", base_url)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rollout_id = re.search(r"rollout (ro_\w+): ", done.stdout)[1]  # type: ignore[index]
    return API.get(f"{base_url}/v1/rollouts/{rollout_id}").json()


class Node:
    """A lilEVY node: its client and its A/B slots, one event loop per call as a node's
    process would have."""

    def __init__(self, base_url: str, root: Path, name: str, **tests: SelfTest) -> None:
        self.base_url, self.tests = base_url, tests
        token = API.post(f"{base_url}/v1/enrollment-tokens", json={}).json()["token"]

        async def enrol() -> Enrollment:
            async with EdgeClient(base_url, retry=FAST) as client:
                return await client.enroll(token, NodeDescription(name=name, hardware="rpi4"))

        self.enrolment = asyncio.run(enrol())
        self.id = self.enrolment.node_id
        self.key = self.enrolment.node_key
        self.root = root / self.id

    def client(self) -> EdgeClient:
        return EdgeClient(self.base_url, node_id=self.id, key=self.key, retry=FAST)

    def updater(self, client: EdgeClient, **kw: Any) -> Updater:
        public_key = self.enrolment.signing_public_key
        return Updater(client, self.root, public_key, hardware="rpi4", self_tests=self.tests, **kw)

    def beat(self, **kw: Any) -> list[Outcome]:
        """One heartbeat, then whatever its directives say: the outcomes reported."""

        async def run() -> list[Outcome]:
            async with self.client() as client:
                reply = await client.heartbeat(HeartbeatStatus(model_version=self.runs("model")))
                return await self.updater(client, **kw).follow(reply.directives)

        return asyncio.run(run())

    def runs(self, kind: str) -> str:
        """The version of `kind` its active slot holds."""
        active = Slots(self.root, kind).active()
        return active[0] if active else ""


async def config_test(path: Path, version: str) -> str | None:
    json.loads(path.read_text())  # a config that does not parse fails here
    return None


def test_a_model_rolls_out_phase_by_phase_and_each_node_self_tests_it(
    base_url: str, tmp_path: Path, fleet: FleetService, settings: Settings
) -> None:
    model = resolve_source(DEFAULT_MODEL_SOURCE)
    artifact_id = add_artifact(base_url, model, "model", "smollm2-135m-q4_1-r2", "rpi4")
    artifact = API.get(f"{base_url}/v1/artifacts/{artifact_id}").json()
    assert artifact["size"] == model.stat().st_size
    assert artifact["sha256"] == hashlib.sha256(model.read_bytes()).hexdigest()

    first, second = (Node(base_url, tmp_path, f"lil-{i}", model=llama_self_test()) for i in (1, 2))
    ro = rollout(base_url, artifact_id, [first.id, second.id], "50%,100%")
    assert ro["state"] == "active" and ro["reached"] == 1
    members = API.get(f"{base_url}/v1/rollouts/{ro['id']}/nodes").json()["data"]
    canary = first if members[0]["node_id"] == first.id else second
    other = second if canary is first else first
    assert other.beat() == []  # phase 2: not offered yet

    # The canary hears of it; its download is cut after 1 MB, and the next try resumes it.
    async def cut_then_resumed() -> tuple[int, list[Outcome]]:
        async with canary.client() as client:
            reply = await client.heartbeat(HeartbeatStatus())
            (offer,) = reply.directives
            part = canary.root / "incoming" / f"{artifact['sha256']}.part"
            part.parent.mkdir(parents=True, exist_ok=True)
            url = offer.detail["download_url"]
            cut = await download(client, url, part, artifact["size"], max_bytes=1 << 20)
            return cut, await canary.updater(client).follow([offer])

    cut, (outcome,) = asyncio.run(cut_then_resumed())
    assert cut == 1 << 20 and outcome.status == "healthy", outcome
    assert canary.runs("model") == "smollm2-135m-q4_1-r2"
    canary_state = API.get(f"{base_url}/v1/rollouts/{ro['id']}").json()
    assert canary_state["phase"] == 1 and canary_state["counts"]["healthy"] == 1

    (outcome,) = other.beat()
    assert outcome.status == "healthy"
    done = cli("rollouts", "show", ro["id"], "--url", base_url)
    assert "completed" in done.stdout and "healthy 2" in done.stdout, done.stdout
    assert other.beat() == []  # nothing more to do

    # Which build of which model answered each escalation is kept, and analytics compare
    # them (an extractive answer is the knowledge base's own sentences: no model version).
    answered = API.post(
        f"{base_url}/v1/evy/query", json={"node_id": canary.id, "message": "how to treat a burn"}
    )
    assert answered.status_code == 200, answered.text
    model_id = answered.json()["model"]
    with fleet.sessions() as session:
        (recorded,) = session.execute(select(Escalation.model, Escalation.model_version)).all()
    expected = model.name if model_id == settings.default_model else None
    assert tuple(recorded) == (model_id, expected)
    (use,) = API.get(f"{base_url}/v1/analytics/escalations").json()["models"]
    assert (use["model"], use["version"], use["count"]) == (model_id, expected or "", 1)


def test_a_failing_config_pauses_its_rollout_and_a_rollback_brings_the_old_one_back(
    base_url: str, tmp_path: Path
) -> None:
    nodes = [Node(base_url, tmp_path, f"cfg-{i}", config=config_test) for i in range(4)]
    ids = [n.id for n in nodes]
    configs = {"c1": '{"sms_max_segments": 1}', "c2": '{"sms_max_', "c3": '{"x": 2}'}
    artifacts = {}
    for version, text in configs.items():
        (tmp_path / f"{version}.json").write_text(text)
        artifacts[version] = add_artifact(base_url, tmp_path / f"{version}.json", "config", version)
    rollout(base_url, artifacts["c1"], ids, "100%")
    assert [o.status for n in nodes for o in n.beat()] == ["healthy"] * 4

    # c2 does not parse: its one canary fails the self-test, switches back by itself, and
    # the rollout pauses before anyone else hears of it.
    c2 = rollout(base_url, artifacts["c2"], ids, "25%,100%")
    (outcome,) = [o for n in nodes for o in n.beat()]
    assert outcome.status == "failed" and "self-test failed" in outcome.detail
    paused = API.get(f"{base_url}/v1/rollouts/{c2['id']}").json()
    assert paused["state"] == "paused" and "1 of 1 nodes failed" in paused["reason"]
    assert [o for n in nodes for o in n.beat()] == []
    assert {n.runs("config") for n in nodes} == {"c1"}
    aborted = cli("rollouts", "abort", c2["id"], "--reason", "does not parse", "--url", base_url)
    assert aborted.returncode == 0 and "aborted" in aborted.stdout, aborted.stdout

    # c3 goes everywhere, phase by phase; then an operator takes it back.
    c3 = rollout(base_url, artifacts["c3"], ids, "50%,100%")
    # (the second half may hear of it in the same round, once the first half is healthy)
    statuses = [o.status for _ in range(2) for n in nodes for o in n.beat()]
    assert statuses == ["healthy"] * 4
    assert {n.runs("config") for n in nodes} == {"c3"}
    rolled = cli("rollouts", "rollback", c3["id"], "--reason", "wrong numbers", "--url", base_url)
    assert "rolling_back" in rolled.stdout, rolled.stdout
    assert [o.status for n in nodes for o in n.beat()] == ["rolled_back"] * 4
    assert {n.runs("config") for n in nodes} == {"c1"}
    final = API.get(f"{base_url}/v1/rollouts/{c3['id']}").json()
    assert final["state"] == "rolled_back" and final["counts"]["rolled_back"] == 4
    operator = "key:" + API.key.split("_")[1]
    actors = {e["event"]: e["actor"] for e in final["events"]}
    assert actors["created"] == actors["rollback"] == operator
    assert actors["phase"] == actors["completed"] == actors["rolled_back"] == "bigevy"
    refused = API.delete(f"{base_url}/v1/artifacts/{artifacts['c2']}")
    assert refused.status_code == 409  # its rollout's record keeps it


def test_a_node_that_dies_on_trial_or_lacks_room_reports_it(base_url: str, tmp_path: Path) -> None:
    async def hangs(path: Path, version: str) -> str | None:
        await asyncio.Event().wait()
        return None

    node = Node(base_url, tmp_path, "trial", config=hangs)
    small = Node(base_url, tmp_path, "small", config=config_test)
    path = tmp_path / "c.json"
    path.write_text("{}")
    c9 = add_artifact(base_url, path, "config", "c9")
    # (tolerant of failures: both nodes are to fail, each in its own way)
    ro = rollout(base_url, c9, [node.id, small.id], "100%", "--pause-above", "0.99")

    async def killed_on_trial() -> None:
        async with node.client() as client:
            reply = await client.heartbeat(HeartbeatStatus())
            trial = asyncio.create_task(node.updater(client).follow(reply.directives))
            await until(lambda: node.runs("config") == "c9", "the switch to c9", 30)
            trial.cancel()  # the power goes during the self-test

    asyncio.run(killed_on_trial())

    async def restarted() -> list[Outcome]:
        async with node.client() as client:
            return await node.updater(client).recover()

    (outcome,) = asyncio.run(restarted())
    assert outcome.status == "failed" and "did not come back" in outcome.detail
    assert node.runs("config") == ""  # back to nothing, as before the switch

    (full,) = small.beat(free_bytes=lambda: 1024)
    assert full.status == "failed" and "not enough storage" in full.detail
    nodes = API.get(f"{base_url}/v1/rollouts/{ro['id']}/nodes").json()["data"]
    assert {n["status"] for n in nodes} == {"failed"}


def test_a_simulated_fleet_with_failing_nodes_pauses_its_rollout(
    base_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "lilevy-0.2.tar"
    path.write_bytes(os.urandom(64 * 1024))
    artifact_id = add_artifact(base_url, path, "software", "lilevy-0.2")
    report = simulate(
        base_url,
        API.key,
        30,
        120,
        heartbeat_interval_s=1.0,
        question_every_s=3600.0,
        seed=3,
        rollout_artifact=artifact_id,
        rollout_phases=[10, 50, 100],
        fail_share=0.1,
    )
    outcome = report.rollout
    assert outcome is not None and outcome.failing_nodes >= 1
    assert outcome.state == "paused", outcome
    assert outcome.settled_after_s is not None
    assert outcome.offered_beyond == 0  # no node of a later phase was offered it
    assert outcome.counts["failed"] >= 1 and outcome.reported["failed"] >= 1
    assert report.server_errors == 0, report.responses


def test_bad_input_is_refused_and_nothing_is_half_applied(
    base_url: str, tmp_path: Path, settings: Settings
) -> None:
    data = b"model bytes"
    url = f"{base_url}/v1/artifacts"
    params = {"kind": "model", "version": "x1", "sha256": hashlib.sha256(b"other").hexdigest()}
    before = API.get(url).json()["data"]
    mismatch = API.post(url, params=params, content=data)
    assert mismatch.status_code == 422 and mismatch.json()["error"]["param"] == "sha256"
    assert API.get(url).json()["data"] == before
    assert not any((settings.data_dir / "artifacts" / "tmp").iterdir())  # nothing left over
    empty = API.post(url, params={"kind": "model", "version": "x1"}, content=b"")
    assert empty.status_code == 422
    bad_kind = API.post(url, params={"kind": "firmware", "version": "x1"}, content=data)
    assert bad_kind.status_code == 422

    node = Node(base_url, tmp_path, "refusals")
    created = API.post(url, params={"kind": "model", "version": "x1"}, content=data).json()
    rollouts = f"{base_url}/v1/rollouts"
    nobody = API.post(rollouts, json={"artifact_id": created["id"], "to": {"regions": ["mars"]}})
    assert nobody.status_code == 422 and "targets no nodes" in nobody.json()["error"]["message"]
    short = API.post(
        rollouts,
        json={"artifact_id": created["id"], "to": {"nodes": [node.id]}, "phases": [10, 50]},
    )
    assert short.status_code == 422 and "100%" in short.json()["error"]["message"]
    missing = API.post(rollouts, json={"artifact_id": "art_none", "to": {"all": True}})
    assert missing.status_code == 404

    key = {"Authorization": f"Bearer {node.key}"}
    not_offered = httpx.get(f"{url}/{created['id']}/file", headers=key)
    assert not_offered.status_code == 404
    assert httpx.post(rollouts, json={}, headers=key).status_code == 403
    alien = httpx.post(f"{rollouts}/ro_none/report", json={"status": "healthy"}, headers=key)
    assert alien.status_code == 404
    window = f"{base_url}/v1/nodes/{node.id}/maintenance-window"
    assert httpx.put(window, json={"window": "25:00-01:00"}, headers=key).status_code == 422
    assert httpx.put(window, json={"window": "01:00-04:00"}, headers=key).status_code == 200
    other = Node(base_url, tmp_path, "other")
    elsewhere = f"{base_url}/v1/nodes/{other.id}/maintenance-window"
    assert httpx.put(elsewhere, json={"window": None}, headers=key).status_code == 403
    assert API.get(f"{base_url}/v1/nodes/{node.id}").json()["maintenance_window"] == "01:00-04:00"

    # A directive whose signed document was altered on the way: the node refuses it.
    ro = API.post(rollouts, json={"artifact_id": created["id"], "to": {"nodes": [other.id]}})
    assert ro.status_code == 201, ro.text

    async def tampered() -> list[Outcome]:
        async with other.client() as client:
            reply = await client.heartbeat(HeartbeatStatus())
            (directive,) = reply.directives
            signed = directive.detail["artifact"]
            signed["signed"] = signed["signed"].replace('"size":11', '"size":12')
            return await other.updater(client).follow([directive])

    (outcome,) = asyncio.run(tampered())
    assert outcome.status == "failed" and "signature" in outcome.detail

    # Bytes that are not the signed ones (a disk error, a proxy): refused, deleted, reported.
    third = Node(base_url, tmp_path, "third")
    ro = API.post(rollouts, json={"artifact_id": created["id"], "to": {"nodes": [third.id]}})
    assert ro.status_code == 201, ro.text
    part = third.root / "incoming" / f"{created['sha256']}.part"
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"model bytez")
    (outcome,) = third.beat()
    assert outcome.status == "failed" and "does not match the signed one" in outcome.detail
    assert not part.exists() and third.runs("model") == ""
    ranged = API.get(f"{url}/{created['id']}/file", headers={"Range": "bytes=6-"})
    assert ranged.status_code == 206 and ranged.content == b"bytes"
    past = API.get(f"{url}/{created['id']}/file", headers={"Range": "bytes=11-"})
    assert past.status_code == 416 and past.headers["content-range"] == "bytes */11"
