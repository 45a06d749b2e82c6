"""Backups without Ray: the real LanceDB store and metadata database of a data dir, backed up
while a writer keeps writing, then restored onto an empty one; and every refusal (wrong
passphrase, a damaged file, a newer schema, a used data dir) leaving the target untouched."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from bigevy.backups import metadata
from bigevy.backups.schedule import run_due
from bigevy.backups.sealing import PASSPHRASE_ENV
from bigevy.backups.service import Backups
from bigevy.config import Settings
from bigevy.errors import Conflict, Unauthorized, ValidationFailed
from bigevy.fleet.models import BackupRun
from bigevy.fleet.roles import Role
from bigevy.fleet.service import open_fleet
from bigevy.http.fleet.protocol import EnrollRequest
from bigevy.knowledge.records import DocumentIn
from bigevy.knowledge.store import KnowledgeStore
from bigevy.knowledge.taxonomy import Category, Source
from tests.support.postgres import database_url

FIXTURES = (database_url,)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)


def doc(i: int) -> DocumentIn:
    return DocumentIn(f"doc-{i}", f"Topic {i}", f"Text about topic {i}.", Category.healthcare,
                      Source.medical)  # fmt: skip


def put(store: KnowledgeStore, i: int) -> int:
    return store.upsert(doc(i), [doc(i).text], [[float(i % 7), 1.0, 0.0, 0.5]]).revision


def store_of(settings: Settings) -> KnowledgeStore:
    return KnowledgeStore(settings.lancedb_uri, embedding_model="test", dimensions=4)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", backups={"location": str(tmp_path / "backups")})


def test_a_backup_made_while_writes_go_on_restores_what_was_acknowledged(
    settings: Settings,
) -> None:
    fleet = open_fleet(settings)
    admin = fleet.create_key(Role.admin, "ops")
    token = fleet.create_token(None, "kisumu", "", None).token
    node = fleet.enroll(EnrollRequest(token=token, name="lil-1", region="kisumu"))
    store = store_of(settings)
    acknowledged = {f"doc-{i}": put(store, i) for i in range(40)}
    settings.admin_key_file.write_text("bevy_admin_key")

    stop, written = threading.Event(), []

    def keep_writing() -> None:
        i = 1000
        while not stop.is_set():
            written.append(put(store, i))
            i += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        while len(written) < 3:  # the backup starts with writes under way
            stop.wait(0.01)
        backup = Backups(settings).create()
    finally:
        stop.set()
        writer.join()
    fleet.engine.dispose()
    assert backup.documents >= 40 and backup.nodes == 1
    assert backup.knowledge_revision >= max(acknowledged.values())
    assert Backups(settings).verify(backup.id) == []

    shutil.rmtree(settings.data_dir)  # the disk is gone
    Backups(settings).restore(backup.id)
    restored = store_of(settings)
    for doc_id, revision in acknowledged.items():
        assert restored.get(doc_id)["revision"] == revision
    assert restored.revision() == backup.knowledge_revision  # revisions go on from there
    assert put(restored, 5000) == backup.knowledge_revision + 1
    fleet = open_fleet(settings)
    assert fleet.authenticate(admin.key).role == Role.admin  # keys survive, hashed
    assert fleet.authenticate(node.node_key).node_id == node.node_id
    assert fleet.signing.public_key == node.signing_public_key  # nodes still trust bigEVY
    assert settings.admin_key_file.read_text() == "bevy_admin_key"
    assert settings.signing_key_file.stat().st_mode & 0o777 == 0o600
    fleet.engine.dispose()


def test_refusals_write_nothing(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    open_fleet(settings).engine.dispose()
    put(store_of(settings), 1)
    backups = Backups(settings)
    backup = backups.create()
    shutil.rmtree(settings.data_dir)

    monkeypatch.setenv(PASSPHRASE_ENV, "not the passphrase at all")
    with pytest.raises(Unauthorized, match="passphrase"):
        backups.restore(backup.id)
    assert not settings.data_dir.exists()
    monkeypatch.setenv(PASSPHRASE_ENV, "short")
    with pytest.raises(ValidationFailed, match="12 characters"):
        backups.create()
    monkeypatch.setenv(PASSPHRASE_ENV, PASSPHRASE)

    folder = Path(settings.backup_location) / backup.id
    manifest = json.loads((folder / "manifest.json").read_text())
    newer = {**manifest, "schema_revision": "9999"}
    (folder / "manifest.json").write_text(json.dumps(newer))
    with pytest.raises(Conflict, match="newer than this bigEVY knows"):
        backups.restore(backup.id)
    (folder / "manifest.json").write_text(json.dumps(manifest))

    sqlite = folder / "metadata.sqlite"
    sqlite.write_bytes(sqlite.read_bytes()[:-1] + b"\x01")
    (folder / "keys.sealed.json").unlink()
    problems = backups.verify(backup.id)
    assert problems[0].startswith("metadata.sqlite: changed")
    assert problems[1] == "keys.sealed.json: missing"
    with pytest.raises(ValidationFailed, match="damaged, nothing was restored"):
        backups.restore(backup.id)
    assert not settings.data_dir.exists()


def test_a_used_data_dir_is_kept_beside_a_forced_restore(settings: Settings) -> None:
    open_fleet(settings).engine.dispose()
    put(store_of(settings), 1)
    backups = Backups(settings)
    backup = backups.create()
    put(store_of(settings), 2)  # after the backup
    with pytest.raises(Conflict, match="not empty"):
        backups.restore(backup.id)
    assert store_of(settings).get("doc-2") is not None  # untouched
    backups.restore(backup.id, force=True)
    assert store_of(settings).get("doc-2") is None
    kept = [p for p in settings.data_dir.parent.iterdir() if ".replaced-" in p.name]
    assert len(kept) == 1 and (kept[0] / "lancedb").exists()


def test_prune_keeps_one_a_day_then_one_a_week(settings: Settings) -> None:
    open_fleet(settings).engine.dispose()
    put(store_of(settings), 1)
    day = 86400.0
    now = [1_800_000_000.0]
    backups = Backups(settings, clock=lambda: now[0])
    made = []
    for offset in (0, 0.1, 1, 2, 9, 16, 23, 30):  # days ago, newest first
        now[0] = 1_800_000_000.0 - offset * day
        made.append(backups.create().id)
    gone = {b.id for b in backups.prune(keep_daily=2, keep_weekly=2)}
    kept = {b.id for b in backups.list()}
    # Today's newest and yesterday's; then the newest of the two weeks before those.
    assert made[1] in gone and made[0] in kept and made[2] in kept
    assert len(kept) == 4 and not kept & gone


def test_the_metadata_database_round_trips_on_both_backends(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    fleet = open_fleet(settings)
    key = fleet.create_key(Role.operator, "ops").key
    fleet.engine.dispose()
    dump = tmp_path / "dump"
    metadata.dump(database_url, dump)
    assert not metadata.is_empty(database_url)
    metadata.clear(database_url)
    assert metadata.is_empty(database_url)
    metadata.load(database_url, dump)
    fleet = open_fleet(settings)
    assert fleet.authenticate(key).role == Role.operator
    fleet.engine.dispose()


def test_a_scheduled_backup_is_made_once_per_interval(settings: Settings) -> None:
    fleet = open_fleet(settings)
    put(store_of(settings), 1)
    now = [1_800_000_000.0]
    fleet.clock = lambda: now[0]
    backups = Backups(settings, clock=fleet.clock)
    first = run_due(backups, fleet, 3600)
    assert first is not None
    assert run_due(backups, fleet, 3600) is None  # another replica, the same hour: nothing
    now[0] += 3600
    second = run_due(backups, fleet, 3600)
    assert second not in (None, first)
    # ...and each run prunes: the same day's older backup goes (one a day is kept).
    assert [b.id for b in backups.list()] == [second]
    with fleet.sessions() as session:
        runs = session.scalars(select(BackupRun).order_by(BackupRun.slot)).all()
        assert [(r.backup_id, r.error) for r in runs] == [(first, None), (second, None)]
    fleet.engine.dispose()
