"""The knowledge base as package building reads it: every entry's metadata, without texts.

It reads the knowledge deployment's LanceDB `documents` table (one writer, many readers) and
keeps one scan per knowledge revision, so building packages for a thousand nodes reads the
table once. Each row is an entry's latest state; tombstones (deleted = true) carry the revision
of the delete, which is the change log a node's update is cut from.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import lancedb

from bigevy.knowledge.records import sql_literal
from bigevy.sync.selection import Entry, order

_COLUMNS = {
    "id": "id",
    "revision": "revision",
    "deleted": "deleted",
    "category": "category",
    "region": "region",
    "language": "language",
    "priority": "priority",
    "updated_at": "updated_at",
    "text_bytes": "octet_length(title) + octet_length(text) + octet_length(url)",
}
#: What an edge node stores of an entry (no vectors: docs/package-format.md says why).
RECORD_FIELDS = [
    "id",
    "revision",
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


@dataclass(frozen=True)
class Catalogue:
    revision: int
    #: Live entries in selection order (priority, then freshest): sorted once, not per node.
    live: dict[str, Entry]
    #: Revisions of every row, tombstones included, ascending; and from each position on,
    #: the oldest `updated_at`: how long a node at some revision has been behind.
    revisions: list[int]
    oldest_from: list[float]

    @classmethod
    def build(
        cls, revision: int, live: dict[str, Entry], changes: list[tuple[int, float]]
    ) -> Catalogue:
        changes = sorted(changes)
        oldest, run = [0.0] * len(changes), float("inf")
        for i in range(len(changes) - 1, -1, -1):
            run = min(run, changes[i][1])
            oldest[i] = run
        return cls(revision, live, [r for r, _ in changes], oldest)

    def oldest_change_after(self, revision: int) -> float | None:
        i = bisect.bisect_right(self.revisions, revision)
        return self.oldest_from[i] if i < len(self.revisions) else None


class CatalogueReader:
    def __init__(self, lancedb_uri: str) -> None:
        # Read consistency 0: every read sees the writer's latest commit.
        self.db = lancedb.connect(lancedb_uri, read_consistency_interval=timedelta(0))
        self._lock = threading.Lock()
        self._cached: Catalogue | None = None
        self._cached_version: int | None = None

    def _documents(self) -> Any | None:
        if "documents" not in self.db.table_names():
            return None  # the knowledge deployment has not made it yet
        return self.db.open_table("documents")

    def revision(self) -> int:
        return self.catalogue().revision

    def catalogue(self) -> Catalogue:
        """The latest state of every entry, scanned once per version of the table."""
        with self._lock:
            table = self._documents()
            version = table.version if table is not None else None
            if self._cached is not None and self._cached_version == version:
                return self._cached
            rows = (
                table.search().select(_COLUMNS).limit(None).to_arrow().to_pylist()
                if table is not None
                else []
            )
            revision = max((r["revision"] for r in rows), default=0)
            live = {
                r["id"]: Entry(
                    id=r["id"],
                    revision=r["revision"],
                    category=r["category"],
                    region=r["region"],
                    language=r["language"],
                    priority=r["priority"],
                    updated_at=r["updated_at"],
                    text_bytes=r["text_bytes"],
                )
                for r in sorted(rows, key=lambda r: order(r["priority"], r["updated_at"], r["id"]))
                if not r["deleted"]
            }
            changes = [(r["revision"], r["updated_at"]) for r in rows]
            self._cached = Catalogue.build(revision, live, changes)
            self._cached_version = version
            return self._cached

    def records(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Full entries (texts included) of live `ids`, as package lines carry them."""
        table = self._documents()
        found: dict[str, dict[str, Any]] = {}
        if table is None:
            return found
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            quoted = ", ".join(sql_literal(i) for i in part)
            rows = (
                table.search()
                .where(f"id IN ({quoted}) AND deleted = false")
                .select(RECORD_FIELDS)
                .limit(len(part))
                .to_list()
            )
            found.update({r["id"]: r for r in rows})
        return found
