"""The knowledge base on an object store (`BIGEVY_KNOWLEDGE__LANCEDB_URI=s3://…`), as a
cluster keeps it: a real Serve app whose replicas read and write LanceDB tables in an S3
bucket, keep artifacts there, and back up into it. S3 itself is a third party this machine
cannot reach, so moto's S3 server stands in."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest

from bigevy.backups.sealing import PASSPHRASE_ENV
from bigevy.backups.service import Backups
from bigevy.config import KnowledgeSpec, Settings, UpdatesSpec
from bigevy.errors import Conflict
from tests.integration.test_sync import Node, doc, write
from tests.support.cluster import API, ServeCluster, free_port, wait_for

BUCKET = "bigevy-knowledge"
URI = f"s3://{BUCKET}/lancedb"
ARTIFACTS = f"s3://{BUCKET}/artifacts"


@pytest.fixture(scope="module")
def s3() -> Iterator[object]:
    """An S3 endpoint with an empty bucket; its credentials in the environment, where LanceDB
    (and every Ray worker started after this) reads them, as on a cluster's hosts."""
    port = free_port()
    server = subprocess.Popen(
        [Path(sys.executable).with_name("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    aws = {
        "AWS_ACCESS_KEY_ID": "bigevy-test",
        "AWS_SECRET_ACCESS_KEY": "bigevy-test-secret",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT": endpoint,
        "AWS_ENDPOINT_URL": endpoint,  # pyarrow's name for it (artifacts, backups)
        "AWS_ALLOW_HTTP": "true",
    }
    saved = {name: os.environ.get(name) for name in aws}
    os.environ.update(aws)
    try:

        def up() -> bool:
            try:
                return httpx.get(endpoint, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "moto's S3 server")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        server.terminate()
        server.wait(10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def serve_cluster(s3: object) -> Iterator[ServeCluster]:
    """Ray starts after the credentials are set, so its workers inherit them."""
    cluster = ServeCluster()
    yield cluster
    cluster.close()


def on_s3(data_dir: Path, lancedb: str = URI, artifacts: str = ARTIFACTS) -> Settings:
    return Settings(
        data_dir=data_dir,
        knowledge=KnowledgeSpec(lancedb_uri=lancedb),
        updates=UpdatesSpec(artifacts_uri=artifacts),
    )


@pytest.fixture(scope="module")
def host_a(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first host's data dir (its fleet database; no knowledge)."""
    return tmp_path_factory.mktemp("host-a")


@pytest.fixture(scope="module")
def base_url(serve_cluster: ServeCluster, host_a: Path) -> str:
    return serve_cluster.deploy(on_s3(host_a))


def found(base_url: str, query: str, **extra: object) -> list[str]:
    body = {"query": query, "top_k": 3, **extra}
    reply = API.post(f"{base_url}/v1/rag/search", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return [hit["citation"]["document_id"] for hit in reply.json()["hits"]]


def test_the_knowledge_base_lives_in_the_bucket(base_url: str, s3: object, host_a: Path) -> None:
    write(
        base_url,
        doc("wells", "Shock-chlorinate a well after a flood before drinking from it again."),
        doc("bednets", "Sleep under an insecticide-treated net to prevent malaria."),
    )
    assert found(base_url, "is my well water safe after flooding")[0] == "wells"
    assert found(base_url, "insecticide net", mode="keyword")[0] == "bednets"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]  # type: ignore[attr-defined]
    assert any(k.startswith("lancedb/documents.lance/") for k in keys), keys[:5]
    assert any(k.startswith("lancedb/chunks") for k in keys), keys[:5]
    assert not (host_a / "lancedb").exists()

    # Update and delete, as on a local store: one version on, and a tombstone.
    write(base_url, doc("wells", "Pour one cup of bleach into a flooded well, wait a day."))
    wells = API.get(f"{base_url}/v1/knowledge/documents/wells").json()
    assert wells["version"] == 2 and "bleach" in wells["text"]
    assert API.delete(f"{base_url}/v1/knowledge/documents/bednets").status_code == 200
    assert "bednets" not in found(base_url, "malaria net")


def test_a_node_syncs_from_the_bucket(base_url: str, tmp_path: Path) -> None:
    write(base_url, doc("ors", "Mix one litre of clean water with six teaspoons of sugar."))
    node = Node(base_url, tmp_path, "lil-s3", "global")
    synced = node.sync()
    assert synced.applied is not None and synced.applied.kind == "full"
    assert {"wells", "ors"} <= node.store.ids() and "bednets" not in node.store.ids()
    assert node.store.search("sugar clean water")[0]["id"] == "ors"


def test_another_host_serves_the_same_knowledge(
    serve_cluster: ServeCluster, base_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A replacement host with an empty data dir finds the knowledge the first one wrote."""
    write(base_url, doc("lightning", "Crouch low, away from trees, when lightning is near."))
    moved = serve_cluster.deploy(on_s3(tmp_path_factory.mktemp("host-b")))
    assert found(moved, "what to do in a thunderstorm")[0] == "lightning"
    wells = API.get(f"{moved}/v1/knowledge/documents/wells").json()
    assert wells["version"] == 2  # the history came along, not a fresh copy


def test_artifacts_and_backups_live_in_the_bucket(
    base_url: str, s3: object, host_a: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(300_000)
    made = API.post(
        f"{base_url}/v1/artifacts", params={"kind": "model", "version": "s3-1"}, content=data
    )
    assert made.status_code == 201, made.text
    artifact = made.json()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]  # type: ignore[attr-defined]
    assert f"artifacts/sha256/{artifact['sha256'][:2]}/{artifact['sha256']}" in keys
    tail = API.get(f"{base_url}{artifact['download_url']}", headers={"Range": "bytes=299990-"})
    assert tail.status_code == 206 and tail.content == data[-10:]

    # A backup of the running app into the bucket, restored on a new host whose knowledge
    # base and artifacts have prefixes of their own.
    monkeypatch.setenv(PASSPHRASE_ENV, "the bucket backup passphrase")
    where = f"s3://{BUCKET}/backups"
    backup = Backups(on_s3(host_a)).create(to=where)
    assert [b.id for b in Backups(on_s3(host_a)).list(where)] == [backup.id]
    assert Backups(on_s3(host_a)).verify(backup.id, where) == []
    host_c = on_s3(tmp_path / "host-c", f"s3://{BUCKET}/lancedb-c", f"s3://{BUCKET}/artifacts-c")
    restored = Backups(host_c).restore(backup.id, where)
    assert restored.documents == backup.documents > 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]  # type: ignore[attr-defined]
    assert any(k.startswith("lancedb-c/documents.lance/") for k in keys)
    assert f"artifacts-c/sha256/{artifact['sha256'][:2]}/{artifact['sha256']}" in keys
    with pytest.raises(Conflict, match="has tables"):  # written in place: never over a store
        Backups(on_s3(tmp_path / "host-d", f"s3://{BUCKET}/lancedb-c")).restore(backup.id, where)
