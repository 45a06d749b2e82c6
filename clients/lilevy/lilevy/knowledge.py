"""The node's own knowledge: a SQLite file with FTS5, changed only by verified packages.

A package is checked whole before anything is written (signature, node, expiry, revisions,
payload size and sha256, every entry's sha256), then applied in one transaction: the store
holds the old state or the new one, never a mix. Written against bigEVY's
docs/package-format.md with the standard library, `zstandard` and `cryptography` only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "bigevy-package/1"
#: How far our clock may lag bigEVY's before a fresh package looks expired.
CLOCK_SKEW_S = 300.0
_FIELDS = [
    "title",
    "text",
    "url",
    "category",
    "source",
    "region",
    "language",
    "priority",
    "updated_at",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, revision INTEGER NOT NULL, title TEXT, text TEXT, url TEXT,
    category TEXT, source TEXT, region TEXT, language TEXT, priority TEXT, updated_at REAL,
    sha256 TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS entries_fts USING fts5(
    title, text, content='entries', content_rowid='rowid'
);
CREATE TABLE IF NOT EXISTS applied (
    package_id TEXT PRIMARY KEY, to_revision INTEGER NOT NULL, applied_at REAL NOT NULL
);
"""


def _words(text: str) -> set[str]:
    return {w for w in "".join(c.lower() if c.isalnum() else " " for c in text).split()}


class PackageRejected(Exception):
    """The package is not applied and the store is unchanged; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutOfStep(PackageRejected):
    """A delta cut from another revision than the store's: a full snapshot sets it right."""


@dataclass(frozen=True)
class Applied:
    package_id: str
    kind: str
    from_revision: int
    to_revision: int
    puts: int
    deletes: int
    payload_sha256: str


def verify_signed(text: str, signature: str, public_key: str, what: str) -> dict[str, Any]:
    """A signed document (manifest, alert), once its Ed25519 signature over these exact
    bytes checks out against bigEVY's public key."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
        key.verify(base64.b64decode(signature), text.encode())
    except (InvalidSignature, ValueError) as exc:
        raise PackageRejected(f"the {what}'s signature is not bigEVY's") from exc
    return json.loads(text)


def verify_manifest(text: str, signature: str, public_key: str) -> dict[str, Any]:
    manifest = verify_signed(text, signature, public_key, "manifest")
    if manifest.get("format") != FORMAT:
        raise PackageRejected(f"unknown package format {manifest.get('format')!r}")
    return manifest


class EdgeKnowledge:
    def __init__(self, path: str | Path, node_id: str, public_key: str) -> None:
        self.path = Path(path)
        self.node_id = node_id
        self.public_key = public_key
        self.db = sqlite3.connect(str(path), isolation_level=None)  # we BEGIN ourselves
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def reopened(self) -> EdgeKnowledge:
        """This store as a restarted node finds it: closed, then opened again from its file."""
        self.close()
        return EdgeKnowledge(self.path, self.node_id, self.public_key)

    @property
    def revision(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0]) if row else 0

    @property
    def generation(self) -> int:
        """bigEVY's restore count in the last package applied (docs/package-format.md)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(row[0]) if row else 0

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM entries").fetchone()[0]

    def get(self, entry_id: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM entries WHERE id = ?", (entry_id,)).fetchone()
        return dict(row) if row else None

    def ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM entries")}

    def digests(self) -> dict[str, str]:
        """Each entry's sha256 as its package line had it: compare with a manifest."""
        return dict(self.db.execute("SELECT id, sha256 FROM entries").fetchall())

    def search(self, query: str, k: int = 5) -> list[dict[str, Any]]:
        """Best entries for `query` by BM25 (each word may match; title or text)."""
        words = [w for w in "".join(c if c.isalnum() else " " for c in query).split() if w]
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in words)
        rows = self.db.execute(
            "SELECT e.*, bm25(entries_fts) AS score FROM entries_fts "
            "JOIN entries e ON e.rowid = entries_fts.rowid "
            "WHERE entries_fts MATCH ? ORDER BY score LIMIT ?",
            (match, k),
        ).fetchall()
        return [dict(r) for r in rows]

    def faq_answer(self, question: str, overlap: float = 0.6) -> dict[str, Any] | None:
        """bigEVY's answer to a frequently asked question like this one, if the node holds
        it: an FAQ entry whose question shares at least `overlap` of the words (Jaccard)."""
        asked = _words(question)
        for entry in self.search(question, k=5):
            if entry["category"] != "faq" or not asked:
                continue
            known = _words(entry["title"])
            if len(asked & known) / len(asked | known) >= overlap:
                return entry
        return None

    # -- applying packages ------------------------------------------------------------------

    def check(self, manifest_text: str, signature: str, payload: bytes) -> tuple[dict, list]:
        """Everything verified, nothing written: (manifest, entry records in order)."""
        manifest = verify_manifest(manifest_text, signature, self.public_key)
        if manifest["node_id"] != self.node_id:
            raise PackageRejected(f"package is for node {manifest['node_id']!r}, not this one")
        if manifest["expires_at"] < time.time() - CLOCK_SKEW_S:
            raise PackageRejected("package expired")
        applied = self.db.execute(
            "SELECT 1 FROM applied WHERE package_id = ?", (manifest["package_id"],)
        ).fetchone()
        if applied:
            raise PackageRejected(f"package {manifest['package_id']} was already applied")
        current = self.revision
        # A restored bigEVY counts its restores (`generation`): a node that synced past the
        # backup holds revisions bigEVY no longer has, and takes a full snapshot of the newer
        # generation whatever its revision.
        restored = manifest.get("generation", 0) > self.generation
        if manifest["kind"] == "delta":
            if manifest["from_revision"] != current:
                raise OutOfStep(
                    f"delta from revision {manifest['from_revision']}, but this store is at "
                    f"{current}: fetch a full snapshot"
                )
        elif manifest["kind"] == "full":
            if not restored and (
                manifest["to_revision"] < current
                or (manifest["to_revision"] == current and self.count())
            ):
                raise PackageRejected(
                    f"snapshot of revision {manifest['to_revision']} is not newer than this "
                    f"store's {current}"
                )
        else:
            raise PackageRejected(f"unknown package kind {manifest['kind']!r}")
        if len(payload) != manifest["payload_bytes"]:
            raise PackageRejected(
                f"payload is {len(payload)} bytes, the manifest says {manifest['payload_bytes']}"
            )
        if hashlib.sha256(payload).hexdigest() != manifest["payload_sha256"]:
            raise PackageRejected("payload sha256 does not match the manifest")
        raw = zstandard.ZstdDecompressor().decompress(
            payload, max_output_size=manifest["payload_uncompressed_bytes"]
        )
        lines = raw.split(b"\n")[:-1] if raw else []
        listed = manifest["entries"]
        if len(lines) != len(listed) or len(lines) != manifest["entry_count"]:
            raise PackageRejected("entry count does not match the manifest")
        records = []
        for line, expected in zip(lines, listed, strict=True):
            if hashlib.sha256(line).hexdigest() != expected["sha256"]:
                raise PackageRejected(f"entry {expected['id']!r} does not match its sha256")
            record = json.loads(line)
            if record["id"] != expected["id"] or record["op"] != expected["op"]:
                raise PackageRejected(f"entry {expected['id']!r} is not where the manifest says")
            record["sha256"] = expected["sha256"]
            records.append(record)
        return manifest, records

    def apply(self, manifest_text: str, signature: str, payload: bytes) -> Applied:
        """Verify, then apply in one transaction; `PackageRejected` leaves the store as it was."""
        manifest, records = self.check(manifest_text, signature, payload)
        puts = deletes = 0
        try:
            self.db.execute("BEGIN IMMEDIATE")
            if manifest["kind"] == "full":
                self.db.execute("INSERT INTO entries_fts (entries_fts) VALUES ('delete-all')")
                self.db.execute("DELETE FROM entries")
            for record in records:
                self._remove(record["id"])
                if record["op"] == "put":
                    values = [record.get(f) for f in _FIELDS]
                    self.db.execute(
                        f"INSERT INTO entries (id, revision, sha256, {', '.join(_FIELDS)}) "
                        f"VALUES (?, ?, ?, {', '.join('?' * len(_FIELDS))})",
                        [record["id"], record["revision"], record["sha256"], *values],
                    )
                    self.db.execute(
                        "INSERT INTO entries_fts (rowid, title, text) "
                        "SELECT rowid, title, text FROM entries WHERE id = ?",
                        (record["id"],),
                    )
                    puts += 1
                else:
                    deletes += 1
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', ?), "
                "('generation', ?)",
                (str(manifest["to_revision"]), str(manifest.get("generation", 0))),
            )
            self.db.execute(
                "INSERT INTO applied (package_id, to_revision, applied_at) VALUES (?, ?, ?)",
                (manifest["package_id"], manifest["to_revision"], time.time()),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        return Applied(
            manifest["package_id"],
            manifest["kind"],
            manifest["from_revision"],
            manifest["to_revision"],
            puts,
            deletes,
            manifest["payload_sha256"],
        )

    def _remove(self, entry_id: str) -> None:
        row = self.db.execute(
            "SELECT rowid, title, text FROM entries WHERE id = ?", (entry_id,)
        ).fetchone()
        if row is None:
            return
        # External-content FTS5: a row leaves the index by a 'delete' with its old values.
        self.db.execute(
            "INSERT INTO entries_fts (entries_fts, rowid, title, text) VALUES ('delete', ?, ?, ?)",
            (row["rowid"], row["title"], row["text"]),
        )
        self.db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
