"""A running bigEVY backed up while documents are ingested and nodes heartbeat and sync; its
data dir deleted; restored with the CLI; started again. Everything acknowledged before the
backup is back: documents, keys, nodes, sync states, alerts, a rollout under way; nodes go on
with deltas, and a node that synced after the backup takes one full snapshot."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ray import serve

from bigevy.backups.sealing import PASSPHRASE_ENV
from bigevy.config import Settings
from tests.integration.test_sync import Node, doc, write
from tests.support.cluster import API, BIGEVY, ServeCluster

PASSPHRASE = "a passphrase for the test backups"


@pytest.fixture(scope="module")
def serve_cluster() -> Iterator[ServeCluster]:
    # The gateway's replicas read the passphrase from their environment (the API's backups).
    os.environ[PASSPHRASE_ENV] = PASSPHRASE
    cluster = ServeCluster()
    yield cluster
    cluster.close()
    os.environ.pop(PASSPHRASE_ENV, None)


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BIGEVY_DATA_DIR": str(settings.data_dir), "COLUMNS": "200"}
    return subprocess.run(
        [BIGEVY, *args], env=env, capture_output=True, text=True, timeout=600, check=False
    )


class Load:
    """Documents ingested and heartbeats sent in a loop, each acknowledged one recorded."""

    def __init__(self, base_url: str, node: Node) -> None:
        self.base_url, self.node = base_url, node
        self.stop = threading.Event()
        self.acknowledged: list[tuple[str, str]] = []  # (document id, text), in order
        self.beats = 0
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            text = f"Load document {i}: wash hands with soap for twenty seconds, round {i}."
            write(self.base_url, doc(f"load-{i}", text))
            self.acknowledged.append((f"load-{i}", text))
            beat = self.node.post(f"/v1/nodes/{self.node.id}/heartbeat", {"sms_in": 1})
            self.beats += beat.status_code == 200
            i += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_a_backup_under_load_restores_a_working_bigevy(
    serve_cluster: ServeCluster, settings: Settings, base_url: str, tmp_path: Path
) -> None:
    write(base_url, *(doc(f"base-{i}", f"Boil water for one minute, note {i}.") for i in range(8)))
    steady, ahead = (Node(base_url, tmp_path, name, "global") for name in ("steady", "ahead"))
    for node in (steady, ahead):
        assert node.sync().applied is not None
    alert = API.post(
        f"{base_url}/v1/alerts",
        json={"identifier": "flood-1", "event": "Flood", "severity": "Severe",
              "urgency": "Immediate", "headline": "River rising", "regions": ["global"],
              "expires": 4_000_000_000},
    )  # fmt: skip
    assert alert.status_code in (200, 201), alert.text
    artifact = API.post(
        f"{base_url}/v1/artifacts", params={"kind": "config", "version": "c1"}, content=b"{}"
    ).json()
    rollout = API.post(
        f"{base_url}/v1/rollouts",
        json={"artifact_id": artifact["id"], "to": {"nodes": [steady.id]}},
    ).json()
    admin_key = API.key

    with Load(base_url, steady) as load:
        while len(load.acknowledged) < 2 or load.beats < 2:  # under way before it starts
            load.stop.wait(0.05)
        before = list(load.acknowledged)
        states = {n.id: n.state() for n in (steady, ahead)}
        made = cli(settings, "backup", "create")
        assert made.returncode == 0, made.stdout + made.stderr
    backup_id = made.stdout.split("backup ", 1)[1].split(":", 1)[0]
    assert ahead.sync().applied is not None  # this node syncs after the backup
    ahead_revision = ahead.store.revision
    listed = cli(settings, "backup", "list")
    assert backup_id in listed.stdout
    checked = cli(settings, "backup", "verify", backup_id)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # The disk is lost: bigEVY stops, its data dir goes, the backup comes back.
    serve.delete(settings.app_name)
    shutil.rmtree(settings.data_dir)
    restored = cli(settings, "backup", "restore", backup_id)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    again = cli(settings, "backup", "restore", backup_id)
    assert again.returncode == 1 and "not empty" in again.stdout
    serve_cluster.deploy(settings)

    for doc_id, text in before:
        got = API.get(f"{base_url}/v1/knowledge/documents/{doc_id}")
        assert got.status_code == 200 and got.json()["text"] == text, doc_id
    for i in range(8):
        assert API.get(f"{base_url}/v1/knowledge/documents/base-{i}").status_code == 200
    old_admin = httpx.get(f"{base_url}/v1/nodes", headers={"Authorization": f"Bearer {admin_key}"})
    assert {n["id"] for n in old_admin.json()["data"]} >= {steady.id, ahead.id}
    assert steady.state()["acked_revision"] == states[steady.id]["acked_revision"]
    assert steady.state()["acked_package_id"] == states[steady.id]["acked_package_id"]
    assert [a["identifier"] for a in API.get(f"{base_url}/v1/alerts").json()["data"]] == ["flood-1"]

    # The steady node goes on with a delta from where it was; no full resend.
    reply = steady.get("/v1/sync/manifest")
    assert reply.status_code == 200, reply.text
    manifest = json.loads(reply.json()["manifest"])
    assert manifest["kind"] == "delta" and manifest["generation"] == 1
    result = steady.sync()
    assert result.applied is not None and result.applied.kind == "delta"
    # The node that synced after the backup holds revisions bigEVY no longer has: its delta
    # does not fit, so it takes one full snapshot of the restored generation.
    assert ahead.store.revision == ahead_revision
    result = ahead.sync()
    assert result.applied is not None and result.applied.kind == "full"
    assert ahead.store.generation == 1 and ahead.sync().applied is None

    # The rollout goes on: the node is offered the artifact, whose file came back too.
    beat = steady.post(f"/v1/nodes/{steady.id}/heartbeat", {})
    (offer,) = [d for d in beat.json()["directives"] if d["type"] == "artifact_update"]
    assert offer["detail"]["rollout_id"] == rollout["id"]
    assert steady.get(offer["detail"]["download_url"]).content == b"{}"

    # The routes do the same in the gateway (the passphrase is in its replicas' environment).
    made = API.post(f"{base_url}/v1/backups", timeout=300)
    assert made.status_code == 201, made.text
    again_id = made.json()["id"]
    assert made.json()["documents"] >= len(before) + 8
    listed_ids = [b["id"] for b in API.get(f"{base_url}/v1/backups").json()["data"]]
    assert listed_ids[:2] == [again_id, backup_id]
    checked_route = API.post(f"{base_url}/v1/backups/{again_id}/verify").json()
    assert checked_route == {"id": again_id, "ok": True, "problems": []}
    assert steady.post("/v1/backups", {}).status_code == 403  # a node key: not an admin
