"""The knowledge base on LanceDB: documents, their embedded chunks, and a revision per change.

Two tables. `documents` holds one row per document id, the latest state, deletes included as
tombstones, each change stamped with a new store-wide `revision` (what edge sync reads).
`chunks` holds the embedded pieces, each tagged with its document `version` and the embedding
model that made its vector.

A write touches both tables, and LanceDB commits per table, so the order makes a crash safe:
new chunks are added under a new version first, then the document row switches to that version
in one commit, then the old version's chunks are deleted. Searches keep only chunks of a
document's current version, so a crash at any step leaves the old state or the new one visible,
never a mix; `repair()` removes what such a crash left behind.

One writer per store (a lock here, one writer replica in a deployment): revisions come from
`max(revision) + 1`, read once when the store opens and counted on from there.

That one writer also searches cheaper and exactly: a store opened as `sole_writer` repairs on
open, after which every chunk in the table is of its document's current version except while a
write of its own switches versions. A search that saw no switch start or end while it ran (a
sequence counter, as in a seqlock) returns its rows as they are; one that overlapped a switch
runs again, and the last try runs between switches. Any other store looks up the current
versions of what it found (a second LanceDB query: 6 ms of a 21 ms search at 100k chunks), and
a search racing another process's write can then miss a document for that moment.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import lancedb
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import FTS, IvfHnswSq, IvfPq

from bigevy.config import VectorIndexSpec
from bigevy.knowledge.chunking import passage
from bigevy.knowledge.records import (
    DocumentIn,
    Embedded,
    Hit,
    SearchFilters,
    SearchMode,
    WriteResult,
    sql_literal,
)


def _same(stored: dict[str, Any] | None, doc: DocumentIn) -> bool:
    """Stored, live, and with this content."""
    return bool(stored) and not stored["deleted"] and stored["content_hash"] == doc.content_hash()


def table_columns(table: Any, names: list[str], where: str | None = None) -> pa.Table:
    """Just these columns of a whole table (not its vectors and texts)."""
    query = table.search().select(names)
    if where:
        query = query.where(where)
    return query.limit(None).to_arrow()


_META = [
    pa.field("title", pa.string()),
    pa.field("url", pa.string()),
    pa.field("category", pa.string()),
    pa.field("source", pa.string()),
    pa.field("region", pa.string()),
    pa.field("language", pa.string()),
    pa.field("priority", pa.string()),
    pa.field("updated_at", pa.float64()),
]


_META_NAMES = [f.name for f in _META]


def documents_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("text", pa.string()),
            *_META,
            pa.field("created_at", pa.float64()),
            pa.field("content_hash", pa.string()),
            pa.field("version", pa.int64()),
            pa.field("revision", pa.int64()),
            pa.field("deleted", pa.bool_()),
        ]
    )


def chunks_schema(dimensions: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("document_id", pa.string()),
            pa.field("version", pa.int64()),
            pa.field("position", pa.int32()),
            pa.field("text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dimensions)),
            pa.field("embedding_model", pa.string()),
            *_META,
        ]
    )


class KnowledgeStore:
    def __init__(
        self,
        uri: str,
        *,
        embedding_model: str,
        dimensions: int,
        vector_index: VectorIndexSpec | None = None,
        chunk_layout: str = "",
        sole_writer: bool = False,
    ) -> None:
        """`sole_writer`: no other process writes this store (the knowledge deployment's one
        replica); it is repaired now and searches trust its own writes (module docstring)."""
        self.db = lancedb.connect(uri)
        self.embedding_model = embedding_model
        self.dimensions = dimensions
        self.vector_index = vector_index or VectorIndexSpec()
        self._lock = threading.Lock()
        self.documents = self._open("documents", documents_schema())
        self.chunks_table = self._chunks_table_name(chunk_layout)
        self.chunks = self._open(self.chunks_table, chunks_schema(dimensions))
        if (
            self.chunks.schema.field("vector").type
            != chunks_schema(dimensions).field("vector").type
        ):
            raise ValueError(
                f"table {self.chunks_table} holds {self.chunks.schema.field('vector').type} "
                f"vectors, not {dimensions}-d ones: give the model a new id"
            )
        if not any(index.index_type == "FTS" for index in self.chunks.list_indices()):
            # Built once; rows added later are searched unindexed until an optimize().
            self.chunks.create_index("text", config=FTS())
        self._revision = self._max_revision()
        #: Commits made through this store; upkeep runs when it has moved.
        self.writes = 0
        #: Odd while a write switches chunks and documents; bumped at its start and its end.
        self._sequence = 0
        self._switch = threading.Lock()  # held only while switching, never by searches' tries
        self._sole_writer = sole_writer
        if sole_writer:
            self.repair()

    def _chunks_table_name(self, layout: str) -> str:
        """Each embedding model and chunk layout has its own chunks table: vector spaces never
        mix, and a change is re-embedded from the documents table in the background."""
        name = "chunks__" + re.sub(r"[^A-Za-z0-9_-]", "_", self.embedding_model)
        return name + (f"__{layout}" if layout else "")

    def _open(self, name: str, schema: pa.Schema) -> Any:
        if name in self.db.table_names():
            return self.db.open_table(name)
        return self.db.create_table(name, schema=schema)

    # -- reads ----------------------------------------------------------------------------

    def get(self, document_id: str, *, include_deleted: bool = False) -> dict[str, Any] | None:
        rows = self.documents.search().where(f"id = {sql_literal(document_id)}").limit(1).to_list()
        if not rows or (rows[0]["deleted"] and not include_deleted):
            return None
        return rows[0]

    def list_documents(
        self, filters: SearchFilters | None = None, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of live documents in id order, and how many match in all."""
        where = " AND ".join(
            c for c in ("deleted = false", (filters or SearchFilters()).where()) if c
        )
        ids = sorted(
            r["id"]
            for r in self.documents.search().where(where).select(["id"]).limit(None).to_list()
        )
        page = ids[offset : offset + limit]
        if not page:
            return [], len(ids)
        rows = (
            self.documents.search()
            .where(f"id IN ({', '.join(sql_literal(i) for i in page)})")
            .limit(len(page))
            .to_list()
        )
        return sorted(rows, key=lambda r: r["id"]), len(ids)

    def _max_revision(self) -> int:
        if self.documents.count_rows() == 0:
            return 0
        return int(pc.max(table_columns(self.documents, ["revision"])["revision"]).as_py())

    def revision(self) -> int:
        """The latest revision; counted here, as this store is the only writer."""
        return self._revision

    def unchanged(self, docs: list[DocumentIn]) -> dict[str, WriteResult]:
        """Those of `docs` already stored with this content (nothing to chunk or embed)."""
        stored = self.get_many([doc.id for doc in docs])
        kept = {}
        for doc in docs:
            current = stored.get(doc.id)
            if _same(current, doc):
                kept[doc.id] = WriteResult(
                    doc.id, "unchanged", current["version"], current["revision"]
                )
        return kept

    def needs_write(self, doc: DocumentIn) -> bool:
        return not self.unchanged([doc])

    # -- writes ---------------------------------------------------------------------------

    def upsert(self, doc: DocumentIn, chunks: list[str], vectors: list[list[float]]) -> WriteResult:
        return self.upsert_many([(doc, chunks, vectors)])[0]

    def upsert_many(self, items: list[Embedded]) -> list[WriteResult]:
        """Write documents with their embedded chunks: three commits for the whole batch.

        Each document gets its own revision, in order; unchanged ones are left as they are.
        """
        # One function on purpose: its steps are the crash-safe write order (module
        # docstring), and reading them in one place is what keeps that order right.
        for doc, chunks, vectors in items:
            if len(chunks) != len(vectors) or not chunks:
                raise ValueError(f"{doc.id}: one vector per chunk, and at least one chunk")
            if any(len(v) != self.dimensions for v in vectors):
                raise ValueError(f"{doc.id}: vectors must have {self.dimensions} dimensions")
        if len({doc.id for doc, _, _ in items}) != len(items):
            raise ValueError("a batch may hold each document id once")
        with self._lock:
            stored = self.get_many([doc.id for doc, _, _ in items])
            now = time.time()
            results: list[WriteResult] = []
            chunk_rows: list[dict[str, Any]] = []
            document_rows: list[dict[str, Any]] = []
            replaced: dict[str, int] = {}
            revision = self._revision
            for doc, chunks, vectors in items:
                current = stored.get(doc.id)
                content_hash = doc.content_hash()
                if _same(current, doc):
                    results.append(
                        WriteResult(doc.id, "unchanged", current["version"], current["revision"])
                    )
                    continue
                version = (current["version"] if current else 0) + 1
                revision += 1
                meta = {
                    "title": doc.title,
                    "url": doc.url,
                    "category": str(doc.category),
                    "source": str(doc.source),
                    "region": doc.region,
                    "language": doc.language,
                    "priority": doc.priority,
                    "updated_at": now,
                }
                chunk_rows.extend(
                    {
                        "id": f"{doc.id}:{version}:{i}",
                        "document_id": doc.id,
                        "version": version,
                        "position": i,
                        "text": text,
                        "vector": vector,
                        "embedding_model": self.embedding_model,
                        **meta,
                    }
                    for i, (text, vector) in enumerate(zip(chunks, vectors, strict=True))
                )
                document_rows.append(
                    {
                        "id": doc.id,
                        "text": doc.text,
                        **meta,
                        "created_at": current["created_at"] if current else now,
                        "content_hash": content_hash,
                        "version": version,
                        "revision": revision,
                        "deleted": False,
                    }
                )
                if current:
                    replaced[doc.id] = version
                status = "updated" if current and not current["deleted"] else "added"
                results.append(WriteResult(doc.id, status, version, revision))
            if document_rows:
                with self._switching():
                    # Order matters for a crash: new chunks, the documents switch, cleanup.
                    self.chunks.add(pa.Table.from_pylist(chunk_rows, schema=self.chunks.schema))
                    self._put_documents(document_rows)
                    self._revision = revision
                    self._drop_stale_chunks(replaced)
                self.writes += 1
        return results

    @contextmanager
    def _switching(self) -> Iterator[None]:
        """Marks a write during which chunks of two versions (or of a deleted document) can
        be seen; searches that overlap it filter by current version."""
        with self._switch:
            self._sequence += 1
            try:
                yield
            finally:
                self._sequence += 1

    def get_many(self, document_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Stored rows (tombstones included) of these ids."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(document_ids), 500):
            batch = document_ids[start : start + 500]
            where = f"id IN ({', '.join(sql_literal(i) for i in batch)})"
            for row in self.documents.search().where(where).limit(len(batch)).to_list():
                found[row["id"]] = row
        return found

    def delete(self, document_id: str) -> WriteResult | None:
        """Leave a tombstone (with a new revision) so edge nodes learn of the delete."""
        with self._lock:
            current = self.get(document_id)
            if current is None:
                return None
            revision = self._revision + 1
            with self._switching():
                self._put_documents(
                    [{**current, "deleted": True, "revision": revision, "updated_at": time.time()}]
                )
                self._revision = revision
                self._drop_stale_chunks({document_id: None})
            self.writes += 1
        return WriteResult(document_id, "deleted", current["version"], revision)

    def _put_documents(self, rows: list[dict[str, Any]]) -> None:
        names = documents_schema().names
        table = pa.Table.from_pylist(
            [{name: row[name] for name in names} for row in rows], schema=documents_schema()
        )
        (
            self.documents.merge_insert("id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute(table)
        )

    def _drop_stale_chunks(self, keep: dict[str, int | None]) -> None:
        """Delete chunks of these documents except the version kept (None: all of them)."""
        clauses = [
            f"(document_id = {sql_literal(document_id)}"
            + (f" AND version != {version})" if version is not None else ")")
            for document_id, version in keep.items()
        ]
        for start in range(0, len(clauses), 200):
            self.chunks.delete(" OR ".join(clauses[start : start + 200]))

    def repair(self) -> int:
        """Delete chunks a crashed write left behind (not of their document's current version)."""
        live = {
            (r["id"], r["version"])
            for r in table_columns(self.documents, ["id", "version", "deleted"]).to_pylist()
            if not r["deleted"]
        }
        stale = [
            r["id"]
            for r in table_columns(self.chunks, ["id", "document_id", "version"]).to_pylist()
            if (r["document_id"], r["version"]) not in live
        ]
        for start in range(0, len(stale), 500):
            batch = stale[start : start + 500]
            self.chunks.delete(f"id IN ({', '.join(sql_literal(i) for i in batch)})")
        return len(stale)

    # -- a new embedding model ------------------------------------------------------------

    def missing_chunks(self) -> list[str]:
        """Live documents with no chunks of their version from this model (a re-embed's work)."""
        have = {
            (r["document_id"], r["version"])
            for r in table_columns(self.chunks, ["document_id", "version"]).to_pylist()
        }
        return sorted(
            r["id"]
            for r in table_columns(self.documents, ["id", "version"], "deleted = false").to_pylist()
            if (r["id"], r["version"]) not in have
        )

    def attach_chunks(
        self, items: list[tuple[dict[str, Any], list[str], list[list[float]]]]
    ) -> int:
        """Add this model's chunks to stored documents (a re-embed): one commit.

        A document deleted or changed since it was read is left out; its new version was
        written with this model's chunks anyway. Returns the documents done.
        """
        with self._lock:
            current = self.get_many([row["id"] for row, _, _ in items])
            rows: list[dict[str, Any]] = []
            done = 0
            for row, chunks, vectors in items:
                now = current.get(row["id"])
                if now is None or now["deleted"] or now["version"] != row["version"]:
                    continue
                done += 1
                meta = {name: now[name] for name in _META_NAMES}
                rows.extend(
                    {
                        "id": f"{now['id']}:{now['version']}:{i}",
                        "document_id": now["id"],
                        "version": now["version"],
                        "position": i,
                        "text": text,
                        "vector": vector,
                        "embedding_model": self.embedding_model,
                        **meta,
                    }
                    for i, (text, vector) in enumerate(zip(chunks, vectors, strict=True))
                )
            if rows:
                self.chunks.add(pa.Table.from_pylist(rows, schema=self.chunks.schema))
                self.writes += 1
        return done

    def other_models(self) -> list[str]:
        """Chunks tables of other embedding models or layouts (left behind by a change; `chunks`
        is the table of stores made before each model had its own)."""
        return sorted(
            name
            for name in self.db.table_names()
            if (name == "chunks" or name.startswith("chunks__")) and name != self.chunks_table
        )

    def drop_other_models(self) -> list[str]:
        """Free the space of other models' chunks once this model's are complete."""
        dropped = self.other_models()
        for name in dropped:
            self.db.drop_table(name)
        return dropped

    # -- upkeep ---------------------------------------------------------------------------

    def maintain(self) -> list[str]:
        """Build the ANN index once the chunks outgrow exact search, and fold new rows into
        the indexes (LanceDB's optimize: compaction, index update, old versions removed).

        Runs under the write lock: LanceDB commits from one writer never conflict.
        """
        done = []
        with self._lock:
            if (
                not self._has_vector_index()
                and self.chunks.count_rows() >= self.vector_index.min_rows
            ):
                if self.vector_index.type == "IVF_PQ":
                    config: Any = IvfPq(
                        distance_type="cosine", num_sub_vectors=self.dimensions // 8
                    )
                else:
                    config = IvfHnswSq(distance_type="cosine")
                self.chunks.create_index("vector", config=config)
                done.append(f"built {self.vector_index.type} vector index")
            if self.documents.count_rows() and not any(
                i.columns == ["id"] for i in self.documents.list_indices()
            ):
                # Every search looks up its hits' current versions by id (57 → 10 ms at 1M).
                self.documents.create_scalar_index("id", index_type="BTREE")
                done.append("built documents.id index")
            for table in (self.chunks, self.documents):
                table.optimize(cleanup_older_than=timedelta(hours=1))
            done.append("optimized")
        return done

    def _has_vector_index(self) -> bool:
        return any(i.columns == ["vector"] for i in self.chunks.list_indices())

    def stats(self) -> dict[str, Any]:
        """What an operator checks: sizes, the embedding model, and how current each index is."""
        indexes = []
        for index in self.chunks.list_indices():
            stats = self.chunks.index_stats(index.name)
            indexes.append(
                {
                    "name": index.name,
                    "type": index.index_type,
                    "columns": list(index.columns),
                    "indexed_rows": stats.num_indexed_rows if stats else 0,
                    "unindexed_rows": stats.num_unindexed_rows if stats else 0,
                }
            )
        live = self.documents.count_rows("deleted = false")
        return {
            "documents": live,
            "tombstones": self.documents.count_rows() - live,
            "chunks": self.chunks.count_rows(),
            "revision": self._revision,
            "embedding_model": self.embedding_model,
            "dimensions": self.dimensions,
            "indexes": indexes,
            "other_models": self.other_models(),
        }

    # -- search ---------------------------------------------------------------------------

    def search(
        self,
        *,
        vector: list[float] | None = None,
        text: str | None = None,
        mode: SearchMode = "hybrid",
        filters: SearchFilters | None = None,
        k: int = 10,
    ) -> list[Hit]:
        if mode in ("hybrid", "vector") and vector is None:
            raise ValueError(f"{mode} search needs a query vector")
        if mode in ("hybrid", "keyword") and not (text and text.strip()):
            raise ValueError(f"{mode} search needs query text")
        # No embedding_model filter: this table holds this model's chunks only.
        where = (filters or SearchFilters()).where()
        if mode == "hybrid":
            return self._hybrid_search(vector, text, where, k)
        # k * 2: room for stale chunks dropped below
        (rows,) = self._live(lambda: [self._ranked(mode, vector, text, where, k * 2)])
        return [
            _hit(row, row["_score"], row["_score"] if mode == "vector" else None)
            for row in rows[:k]
        ]

    def _hybrid_search(self, vector: Any, text: Any, where: str | None, k: int) -> list[Hit]:
        """Vector and full-text lists fetched apart, then fused per document (see
        bigevy.knowledge.fusion): one hit per document, its best chunk. Measured on SciFact
        (benchmarks/scifact_retrieval.py) against LanceDB's own hybrid query with RRF."""
        from bigevy.knowledge import fusion

        depth = max(fusion.CANDIDATES, k * 2)
        by_vector, by_text = self._live(
            lambda: [
                self._ranked("vector", vector, text, where, depth),
                self._ranked("keyword", vector, text, where, depth),
            ]
        )
        fused = fusion.fuse(
            [[(r, r["_score"]) for r in by_vector], [(r, r["_score"]) for r in by_text]],
            key=lambda r: r["document_id"],
            weights=[fusion.VECTOR_WEIGHT, 1.0 - fusion.VECTOR_WEIGHT],
        )
        similarity: dict[str, float] = {}
        for row in by_vector:  # best first: each document's best chunk
            similarity.setdefault(row["document_id"], row["_score"])
        return [_hit(row, score, similarity.get(row["document_id"])) for row, score in fused[:k]]

    def _ranked(
        self, mode: SearchMode, vector: Any, text: Any, where: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Chunks best first by cosine similarity ("vector") or BM25 ("keyword") as `_score`."""
        if mode == "vector":
            # nprobes and refine_factor only matter once an ANN index exists.
            query = (
                self.chunks.search(vector, query_type="vector")
                .metric("cosine")
                .nprobes(self.vector_index.nprobes)
            )
            if self.vector_index.refine_factor:
                query = query.refine_factor(self.vector_index.refine_factor)
            scored = "_distance"
        else:
            query = self.chunks.search(text, query_type="fts")
            scored = "_score"
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select([*_HIT_COLUMNS, scored]).limit(limit).to_list()
        if mode == "vector":
            for row in rows:
                row["_score"] = 1.0 - row.pop("_distance")
        return rows

    def _live(self, search: Callable[[], list[list[dict[str, Any]]]]) -> list[list[dict[str, Any]]]:
        """`search`'s lists of chunks, none of a document's old or deleted versions."""
        if self._sole_writer:
            for _ in range(2):
                sequence = self._sequence
                if sequence % 2 == 0:
                    ranked = search()
                    if self._sequence == sequence:
                        return ranked
            with self._switch:  # writes keep overlapping: run between two of them
                return search()
        ranked = search()
        current = self._current_versions({r["document_id"] for rows in ranked for r in rows})
        return [
            [r for r in rows if current.get(r["document_id"]) == r["version"]] for rows in ranked
        ]

    def _current_versions(self, document_ids: set[str]) -> dict[str, int]:
        if not document_ids:
            return {}
        where = f"id IN ({', '.join(sql_literal(i) for i in document_ids)}) AND deleted = false"
        rows = (
            self.documents.search()
            .where(where)
            .select(["id", "version"])
            .limit(len(document_ids))
            .to_list()
        )
        return {r["id"]: r["version"] for r in rows}


_HIT_COLUMNS = ["id", "document_id", "version", "title", "text", "url", "category", "source"]


def _hit(row: dict[str, Any], score: float, similarity: float | None) -> Hit:
    return Hit(
        row["id"],
        row["document_id"],
        row["title"],
        passage(row["text"], row["title"]),
        row["url"],
        row["category"],
        row["source"],
        float(score),
        None if similarity is None else float(similarity),
    )
