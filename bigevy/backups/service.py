"""Backups of a running bigEVY, and bringing one back onto an empty data dir.

A backup is one folder `<location>/<id>/`, complete once its `manifest.json` is written last:
the manifest names every file with its size and sha256, the schema revision, and what the
knowledge base held. The order of the copies makes it consistent while writes go on:

1. the metadata database first (SQLite's online backup, or `pg_dump`'s snapshot): what nodes
   acknowledged, keys, alerts, rollouts;
2. then each LanceDB table at a tagged version (the tag pins its files against cleanup while
   they are copied; the documents table last): the knowledge base is at least as new as
   anything the database says a node holds, so every node's next delta still applies;
3. the signing key, sealed with the passphrase; packages, artifacts, connector state.

A restore checks every file first, refuses a backup from a newer schema or a wrong passphrase
before it writes anything, builds the data dir beside the target and moves it in at the end.
It records itself in the `restores` table: package manifests carry that count as their
`generation`, which tells a node that synced past the backup to take a full snapshot.
"""

from __future__ import annotations

import json
import os
import secrets as random
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata as packages
from pathlib import Path
from typing import Any

import lancedb
import pyarrow.compute as pc
import pyarrow.fs as pafs
from sqlalchemy import func, select

from bigevy.backups import metadata
from bigevy.backups.location import (
    Copied,
    copy_file,
    copy_tree,
    digest,
    exists,
    filesystem,
)
from bigevy.backups.sealing import passphrase as passphrase_of
from bigevy.backups.sealing import seal, unseal
from bigevy.config import Settings
from bigevy.errors import Conflict, NotFound, ValidationFailed
from bigevy.fleet.db import current_revision, known_revisions, make_engine, upgrade
from bigevy.fleet.models import ApiKey, Node, Restore
from bigevy.http.backups.protocol import BackupOut
from bigevy.knowledge.store import table_columns

FORMAT = "bigevy-backup/1"
MANIFEST = "manifest.json"
SEALED = "keys.sealed.json"
#: Progress: (what is being done, bytes just copied).
Report = Callable[[str, int], None]


def _quiet(step: str, copied: int) -> None:
    return None


class Backups:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock

    # -- create -----------------------------------------------------------------------------

    def create(
        self, to: str | None = None, progress: Report = _quiet, secret: str | None = None
    ) -> BackupOut:
        """A consistent backup of this bigEVY (while it runs) at `to` (default: its
        configured location)."""
        phrase = passphrase_of(secret)  # refused before anything is written
        fs, root = filesystem(to or self.settings.backup_location)
        now = self.clock()
        backup_id = "bk-" + datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        backup_id += "-" + random.token_hex(3)
        dest = f"{root}/{backup_id}"
        fs.create_dir(dest, recursive=True)
        try:
            manifest = self._write(fs, dest, backup_id, now, phrase, progress)
        except BaseException:
            fs.delete_dir(dest)  # a backup is whole or absent
            raise
        return _out(manifest, to or self.settings.backup_location)

    def _write(
        self,
        fs: Any,
        dest: str,
        backup_id: str,
        now: float,
        phrase: str,
        progress: Report,
    ) -> dict[str, Any]:
        settings = self.settings
        files: list[Copied] = []
        engine = make_engine(settings.metadata_url)
        try:
            schema = current_revision(engine)
            with engine.connect() as connection:
                nodes = connection.scalar(select(func.count()).select_from(Node))
                keys = connection.scalar(select(func.count()).select_from(ApiKey))
        finally:
            engine.dispose()
        database = metadata.kind(settings.metadata_url)
        # Packages are copied before the database and again after it: a node's base package
        # (whose holdings its next delta is cut from) built or pruned meanwhile is in one.
        progress("packages", 0)
        files += self._packages(fs, dest, progress, set())
        progress("metadata database", 0)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / "metadata"
            metadata.dump(settings.metadata_url, local)
            name = "metadata.sqlite" if database == "sqlite" else "metadata.pgdump"
            size, sha = copy_file(_local_fs(), str(local), fs, f"{dest}/{name}", _bytes(progress))
            files.append(Copied(name, size, sha))
        progress("knowledge base", 0)
        knowledge, copied = self._knowledge(fs, dest, backup_id, progress)
        files += copied
        progress("signing key", 0)
        files.append(self._seal(fs, dest, backup_id, phrase))
        progress("packages and artifacts", 0)
        files += self._packages(fs, dest, progress, {f.path for f in files})
        files += self._side_files(fs, dest, progress)
        manifest = {
            "format": FORMAT,
            "id": backup_id,
            "created_at": now,
            "bigevy_version": _version(),
            "schema_revision": schema,
            "database": database,
            "knowledge": knowledge,
            "fleet": {"nodes": nodes, "keys": keys},
            "sealed": SEALED,
            "files": [vars(f) for f in files],
        }
        text = json.dumps(manifest, indent=1, sort_keys=True).encode()
        # Written last: a folder without it is no backup (cut short), and is never listed.
        with fs.open_output_stream(f"{dest}/{MANIFEST}", compression=None) as out:
            out.write(text)
        return manifest

    def _knowledge(
        self, fs: Any, dest: str, backup_id: str, progress: Report
    ) -> tuple[dict[str, Any], list[Copied]]:
        """Each table tagged, copied, untagged; the documents table last."""
        db = lancedb.connect(self.settings.lancedb_uri)
        src_fs, src_root = filesystem(self.settings.lancedb_uri)
        names = sorted(_tables(self.settings.lancedb_uri), key=lambda n: n == "documents")
        tables, files, revision, documents = {}, [], 0, 0
        for name in names:
            table = db.open_table(name)
            version = table.version
            table.tags.create(backup_id, version)
            try:
                files += copy_tree(
                    src_fs,
                    f"{src_root}/{name}.lance",
                    fs,
                    f"{dest}/lancedb/{name}.lance",
                    f"lancedb/{name}.lance",
                    _bytes(progress),
                )
                if name == "documents":
                    pinned = lancedb.connect(self.settings.lancedb_uri).open_table(name)
                    pinned.checkout(version)
                    rows = table_columns(pinned, ["revision", "deleted"])
                    if rows.num_rows:
                        revision = int(pc.max(rows["revision"]).as_py())
                        documents = rows.num_rows - int(pc.sum(rows["deleted"]).as_py() or 0)
            finally:
                table.tags.delete(backup_id)  # the backup holds its own copy now
            tables[name] = version
        return {"tables": tables, "revision": revision, "documents": documents}, files

    def _seal(self, fs: Any, dest: str, backup_id: str, phrase: str) -> Copied:
        secrets = {"signing_key.pem": self.settings.signing_key_file.read_bytes()}
        if self.settings.admin_key_file.exists():
            secrets["admin.key"] = self.settings.admin_key_file.read_bytes()
        sealed = json.dumps(seal(secrets, phrase, backup_id), indent=1).encode()
        with fs.open_output_stream(f"{dest}/{SEALED}", compression=None) as out:
            out.write(sealed)
        return Copied(SEALED, *digest(fs, f"{dest}/{SEALED}"))

    def _packages(self, fs: Any, dest: str, progress: Report, done: set[str]) -> list[Copied]:
        """Package payloads and holdings not copied yet."""
        src_fs, src_root = filesystem(str(self.settings.packages_dir))
        return copy_tree(
            src_fs, src_root, fs, f"{dest}/packages", "packages", _bytes(progress), skip=done
        )

    def _side_files(self, fs: Any, dest: str, progress: Report) -> list[Copied]:
        """Artifact files and the connectors' state."""
        settings = self.settings
        src_fs, src_root = filesystem(settings.artifacts_uri + "/sha256")
        files = copy_tree(src_fs, src_root, fs, f"{dest}/artifacts", "artifacts", _bytes(progress))
        state = settings.connectors_state_file
        if state.exists():
            size, sha = copy_file(_local_fs(), str(state), fs, f"{dest}/connectors.json")
            files.append(Copied("connectors.json", size, sha))
        return files

    # -- read -------------------------------------------------------------------------------

    def list(self, location: str | None = None) -> list[BackupOut]:
        """Complete backups at the location, newest first."""
        where = location or self.settings.backup_location
        fs, root = filesystem(where)
        found = []
        if not exists(fs, root):
            return []
        for info in fs.get_file_info(pafs.FileSelector(root)):
            manifest = _read_manifest(fs, info.path)
            if manifest is not None:
                found.append(_out(manifest, where))
        return sorted(found, key=lambda b: b.created_at, reverse=True)

    def manifest(self, backup_id: str, location: str | None = None) -> dict[str, Any]:
        fs, root = filesystem(location or self.settings.backup_location)
        manifest = _read_manifest(fs, f"{root}/{_safe(backup_id)}")
        if manifest is None:
            raise NotFound(f"no complete backup {backup_id!r} at this location", param="id")
        return manifest

    def get(self, backup_id: str, location: str | None = None) -> BackupOut:
        return _out(self.manifest(backup_id, location), location or self.settings.backup_location)

    def verify(
        self,
        backup_id: str,
        location: str | None = None,
        progress: Report = _quiet,
        passphrase: bool = True,
        secret: str | None = None,
    ) -> list[str]:
        """What is wrong with a backup: files missing, cut or changed; with `passphrase`,
        whether the passphrase opens its sealed keys. Empty: it restores."""
        manifest = self.manifest(backup_id, location)
        fs, root = filesystem(location or self.settings.backup_location)
        problems = []
        for entry in manifest["files"]:
            path = f"{root}/{backup_id}/{entry['path']}"
            if not exists(fs, path):
                problems.append(f"{entry['path']}: missing")
                continue
            progress(entry["path"], 0)
            size, sha = digest(fs, path)
            progress(entry["path"], size)
            if (size, sha) != (entry["size"], entry["sha256"]):
                problems.append(f"{entry['path']}: changed ({size} bytes, sha256 {sha[:12]}…)")
        if passphrase and not problems:
            sealed = json.loads(_read(fs, f"{root}/{backup_id}/{SEALED}"))
            unseal(sealed, passphrase_of(secret), backup_id)
        return problems

    def prune(
        self,
        location: str | None = None,
        keep_daily: int | None = None,
        keep_weekly: int | None = None,
        dry_run: bool = False,
    ) -> list[BackupOut]:
        """Delete all but the newest backup of each of the last N days with one, and of each
        of the M weeks before; the newest is always kept. Those deleted."""
        daily = self.settings.backups.keep_daily if keep_daily is None else keep_daily
        weekly = self.settings.backups.keep_weekly if keep_weekly is None else keep_weekly
        backups = self.list(location)
        keep = {b.id for b in backups[:1]}
        days: list[str] = []
        weeks: list[str] = []
        for b in backups:  # newest first: the first seen of a day or week is its newest
            when = datetime.fromtimestamp(b.created_at, UTC)
            day, week = when.strftime("%Y-%m-%d"), "{}-W{:02d}".format(*when.isocalendar()[:2])
            if day not in days and len(days) < daily:
                days.append(day)
                keep.add(b.id)
            elif day not in days and week not in weeks and len(weeks) < weekly:
                weeks.append(week)
                keep.add(b.id)
        gone = [b for b in backups if b.id not in keep]
        if not dry_run:
            fs, root = filesystem(location or self.settings.backup_location)
            for backup in gone:
                fs.delete_dir(f"{root}/{backup.id}")
        return gone

    # -- restore ----------------------------------------------------------------------------

    def restore(
        self,
        backup_id: str,
        location: str | None = None,
        force: bool = False,
        progress: Report = _quiet,
        secret: str | None = None,
    ) -> BackupOut:
        """Bring a backup back as this settings' data dir (and database). Everything is
        checked before anything is written; a forced restore keeps what it replaces."""
        where = location or self.settings.backup_location
        manifest = self.manifest(backup_id, where)
        fs, root = filesystem(where)
        source = f"{root}/{backup_id}"
        schema = manifest["schema_revision"]
        if schema is not None and schema not in known_revisions():
            raise Conflict(
                f"backup {backup_id} has schema {schema}, newer than this bigEVY knows "
                f"(up to {known_revisions()[-1]}): restore it with the bigEVY that made it",
                param="schema_revision",
            )
        if manifest["database"] != metadata.kind(self.settings.metadata_url):
            raise Conflict(
                f"backup {backup_id} holds a {manifest['database']} database; these settings "
                f"use {metadata.kind(self.settings.metadata_url)}",
                param="database_url",
            )
        outside = [f["path"] for f in manifest["files"] if not _inside(f["path"])]
        if outside:
            raise ValidationFailed(f"backup {backup_id} names files outside it: {outside[:3]}")
        problems = self.verify(backup_id, where, progress, passphrase=False)
        if problems:
            raise ValidationFailed(
                f"backup {backup_id} is damaged, nothing was restored: " + "; ".join(problems)
            )
        sealed = json.loads(_read(fs, f"{source}/{SEALED}"))
        opened = unseal(sealed, passphrase_of(secret), backup_id)
        self._check_target(force)
        return self._put_back(manifest, fs, source, opened, force, progress, where)

    def _check_target(self, force: bool) -> None:
        settings = self.settings
        data_dir = settings.data_dir
        used = [str(data_dir)] if data_dir.exists() and any(data_dir.iterdir()) else []
        if not metadata.is_empty(settings.metadata_url):
            used.append("the metadata database")
        if "://" in settings.lancedb_uri and _tables(settings.lancedb_uri):
            # Written in place, not beside: nothing there may be replaced, even with --force.
            raise Conflict(
                f"the knowledge base at {settings.lancedb_uri} has tables: restore into an "
                "empty prefix (knowledge.lancedb_uri)",
                param="knowledge.lancedb_uri",
            )
        if used and not force:
            raise Conflict(
                f"{', '.join(used)} is not empty: restore onto an empty data dir, or give "
                "--force (what is there is kept beside it)",
                param="force",
            )

    def _put_back(
        self,
        manifest: dict[str, Any],
        fs: Any,
        source: str,
        opened: dict[str, bytes],
        force: bool,
        progress: Report,
        where: str,
    ) -> BackupOut:
        settings = self.settings
        data_dir = settings.data_dir
        staging = data_dir.parent / f".{data_dir.name}.restoring-{manifest['id']}"
        shutil.rmtree(staging, ignore_errors=True)
        staged = settings.model_copy(update={"data_dir": staging})
        try:
            self._files_into(manifest, fs, source, staged, opened, progress)
            self._database_into(manifest, fs, source, staged, force)
            self._tables_restored(manifest, staged)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if data_dir.exists():
            if any(data_dir.iterdir()):
                data_dir.rename(data_dir.parent / f"{data_dir.name}.replaced-{int(self.clock())}")
            else:
                data_dir.rmdir()
        staging.rename(data_dir)
        return _out(manifest, where)

    def _files_into(
        self,
        manifest: dict[str, Any],
        fs: Any,
        source: str,
        staged: Settings,
        opened: dict[str, bytes],
        progress: Report,
    ) -> None:
        """Every file of the backup where `staged` settings keep it."""
        staged.data_dir.mkdir(parents=True)
        targets = {
            "lancedb": _under(self.settings.lancedb_uri, staged.lancedb_uri),
            "packages": str(staged.packages_dir),
            "artifacts": _under(self.settings.artifacts_uri, staged.artifacts_uri) + "/sha256",
        }
        for entry in manifest["files"]:
            top, _, rest = entry["path"].partition("/")
            if top in targets:
                dst_fs, dst_root = filesystem(targets[top])
                copy_file(fs, f"{source}/{entry['path']}", dst_fs, f"{dst_root}/{rest}",
                          _bytes(progress))  # fmt: skip
            elif top == "connectors.json":
                copy_file(fs, f"{source}/{top}", _local_fs(), str(staged.connectors_state_file))
        for name, value in opened.items():
            path = staged.data_dir / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(value)

    def _database_into(
        self, manifest: dict[str, Any], fs: Any, source: str, staged: Settings, force: bool
    ) -> None:
        """The metadata database loaded (SQLite: into the staged data dir, when it lives
        there), brought to this bigEVY's schema, and the restore recorded in it."""
        url = self.settings.database_url or staged.metadata_url
        name = "metadata.sqlite" if manifest["database"] == "sqlite" else "metadata.pgdump"
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            copy_file(fs, f"{source}/{name}", _local_fs(), str(local))
            if force and self.settings.database_url and not metadata.is_empty(url):
                # A database outside the data dir is replaced in place: dumped beside the
                # data dir first, as the data dir itself is kept.
                data_dir = self.settings.data_dir
                kept = data_dir.parent / f"{data_dir.name}.replaced-{int(self.clock())}.{name}"
                metadata.dump(url, kept)
                metadata.clear(url)
            metadata.load(url, local)
        engine = make_engine(url)
        try:
            upgrade(engine)
            with engine.begin() as connection:
                connection.execute(
                    Restore.__table__.insert().values(
                        backup_id=manifest["id"],
                        backup_created_at=manifest["created_at"],
                        restored_at=self.clock(),
                    )
                )
        finally:
            engine.dispose()

    def _tables_restored(self, manifest: dict[str, Any], staged: Settings) -> None:
        """Each table back at the version the backup tagged (newer files copied with it are
        left behind: the tagged version becomes the latest again)."""
        uri = _under(self.settings.lancedb_uri, staged.lancedb_uri)
        db = lancedb.connect(uri)
        for name, version in manifest["knowledge"]["tables"].items():
            table = db.open_table(name)
            if table.version != version:
                table.checkout(version)
                table.restore()
            if manifest["id"] in table.tags.list():
                table.tags.delete(manifest["id"])


def _inside(path: str) -> bool:
    """A manifest's file path that stays inside the backup (and the data dir it restores)."""
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "" not in parts


def _tables(uri: str) -> list[str]:
    return list(lancedb.connect(uri).list_tables().tables)


def _under(live_uri: str, staged_uri: str) -> str:
    """Where a store goes: the staged path when it lives in the data dir, else where it is
    (an object store is written in place)."""
    return staged_uri if "://" not in live_uri else live_uri


def _out(manifest: dict[str, Any], location: str) -> BackupOut:
    return BackupOut(
        id=manifest["id"],
        location=location,
        created_at=manifest["created_at"],
        bigevy_version=manifest["bigevy_version"],
        schema_revision=manifest["schema_revision"],
        database=manifest["database"],
        knowledge_revision=manifest["knowledge"]["revision"],
        documents=manifest["knowledge"]["documents"],
        nodes=manifest["fleet"]["nodes"],
        files=len(manifest["files"]),
        bytes=sum(f["size"] for f in manifest["files"]),
    )


def _read(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path, compression=None) as f:
        return f.read()


def _read_manifest(fs: Any, folder: str) -> dict[str, Any] | None:
    path = f"{folder}/{MANIFEST}"
    if not exists(fs, path):
        return None
    try:
        manifest = json.loads(_read(fs, path))
    except ValueError:
        return None  # cut short: not a backup
    return manifest if manifest.get("format") == FORMAT else None


def _safe(backup_id: str) -> str:
    if not backup_id.startswith("bk-") or "/" in backup_id or ".." in backup_id:
        raise NotFound(f"no backup {backup_id!r}", param="id")
    return backup_id


def _local_fs() -> pafs.FileSystem:
    return pafs.LocalFileSystem()


def _bytes(progress: Report) -> Callable[[int], None]:
    return lambda n: progress("", n)


def _version() -> str:
    return packages.version("bigevy")
