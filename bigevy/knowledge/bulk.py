"""Bulk ingestion of large JSONL corpora (a Wikipedia-size dump) as a Ray Data pipeline.

read lines → parse + chunk (tasks) → skip what the store already has → embed (a pool of
actors, each holding the model) → write, in order of arrival, through the knowledge base's one
writer (its Serve deployment), so a bulk load never races the live API for LanceDB commits.
Reading, chunking and embedding spread over the cluster; only the writes are serialized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from pydantic import ValidationError

from bigevy.config import EmbedderSpec, KnowledgeSpec
from bigevy.http.knowledge.protocol import DocumentCreate
from bigevy.knowledge.chunking import document_chunks
from bigevy.knowledge.ingest import jsonl_record
from bigevy.knowledge.records import DocumentIn, Embedded, WriteResult

#: Target size of a Ray Data block. A stage emits a block once its output passes this size:
#: an embedded batch of 64 documents (~0.35 MiB) does, so each batch is written as soon as it
#: is embedded. With 1 MiB, three batches waited for each other (the first write of the whole
#: SciFact corpus came after 71 s instead of 33 s), at the same throughput.
BLOCK_BYTES = 1 << 18


class BulkWriter(Protocol):
    """The knowledge base's writer, however it is reached (a Serve handle in production)."""

    def unchanged_ids(self, docs: list[DocumentIn]) -> list[str]: ...
    def write_embedded(self, items: list[Embedded], embedding_model: str) -> list[WriteResult]: ...
    def put_many(
        self, docs: list[DocumentIn]
    ) -> list[tuple[WriteResult, int | None] | Exception]: ...


@dataclass
class BulkReport:
    counts: dict[str, int] = field(
        default_factory=lambda: {"added": 0, "updated": 0, "unchanged": 0, "failed": 0}
    )
    chunks: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)


def parse_lines(
    batch: dict[str, np.ndarray], defaults: dict[str, str], spec: KnowledgeSpec
) -> dict[str, np.ndarray]:
    """JSONL lines → one row per document: its fields, its chunks, or why it was refused."""
    out: dict[str, list[Any]] = {"origin": [], "document": [], "chunks": [], "error": []}
    for line, path in zip(batch["text"], batch["path"], strict=True):
        record = jsonl_record(str(line), str(path), defaults)
        document: dict[str, Any] | None = None
        error = record.error or ""
        if record.document is not None:
            try:
                document = DocumentCreate.model_validate(record.document).model_dump(mode="json")
            except ValidationError as exc:
                first = exc.errors()[0]
                error = f"{'.'.join(map(str, first['loc']))}: {first['msg']}"
        if document is not None and len(document["text"]) > spec.max_document_chars:
            document, error = None, f"over the {spec.max_document_chars}-character limit"
        origin = f"{path} id={record.document['id']}" if record.document else str(path)
        out["origin"].append(origin)
        out["document"].append(document)
        out["chunks"].append(
            document_chunks(
                document["title"], document["text"], spec.chunk_size, spec.chunk_overlap
            )
            if document
            else []
        )
        out["error"].append(error)
    return {name: _objects(values) for name, values in out.items()}


def _objects(values: list[Any]) -> np.ndarray:
    """A column of Python objects (ragged lists, dicts, None) that numpy leaves alone."""
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


@dataclass(frozen=True)
class ServeWriter:
    """The knowledge deployment of a running bigEVY app, called from any Ray worker."""

    app_name: str
    deployment: str = "knowledge"

    def _call(self, method: str, *args: Any) -> Any:
        from ray import serve

        handle = serve.get_deployment_handle(self.deployment, app_name=self.app_name)
        return getattr(handle, method).remote(*args).result()

    def unchanged_ids(self, docs: list[DocumentIn]) -> list[str]:
        return self._call("unchanged_ids", docs)

    def write_embedded(self, items: list[Embedded], embedding_model: str) -> list[WriteResult]:
        return self._call("write_embedded", items, embedding_model)

    def put_many(self, docs: list[DocumentIn]) -> list[tuple[WriteResult, int | None] | Exception]:
        return self._call("put_many", docs)


class SkipUnchanged:
    """Drops documents the store already holds with this content: nothing to embed."""

    def __init__(self, writer: BulkWriter) -> None:
        self.writer = writer

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        docs = [DocumentIn(**d) for d in batch["document"] if d]
        kept = set(self.writer.unchanged_ids(docs)) if docs else set()
        status = ["unchanged" if d and d["id"] in kept else "" for d in batch["document"]]
        return {**batch, "status": _objects(status)}


class EmbedChunks:
    """One actor of the embedding pool: the model loads once, then embeds batch after batch."""

    def __init__(self, spec: EmbedderSpec) -> None:
        from bigevy.knowledge.embedder import Embedder

        self.embedder = Embedder(spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        todo = [
            i
            for i, (d, s) in enumerate(zip(batch["document"], batch["status"], strict=True))
            if d and not s
        ]
        texts = [text for i in todo for text in batch["chunks"][i]]
        vectors = iter(self.embedder.encode(texts) if texts else [])
        embedded: list[Any] = [None] * len(batch["document"])
        for i in todo:
            embedded[i] = [next(vectors) for _ in batch["chunks"][i]]
        return {**batch, "vectors": _objects(embedded)}


def run(
    paths: list[str],
    writer: BulkWriter,
    *,
    embedder: EmbedderSpec,
    knowledge: KnowledgeSpec,
    defaults: dict[str, str],
    embed_actors: int = 1,
    embed_cpus: float = 1.0,
    batch_docs: int = 64,
    on_progress: Callable[[int], None] = lambda n: None,
) -> BulkReport:
    """Ingest JSONL `paths` (local or object-store URIs) into the knowledge base."""
    # Long on purpose: one Ray Data pipeline, each stage's resources explained beside it.
    import ray.data

    ds = (
        # Reading and parsing are light: a quarter CPU each, so they never starve the pool,
        # and no more parse tasks at once than embedding actors, as each task needs a worker
        # process of its own: eight of them starting together held the pool's first actor
        # back for ~40 s on two cores.
        ray.data.read_text(paths, include_paths=True, num_cpus=0.25)
        .map_batches(
            parse_lines,
            fn_kwargs={"defaults": defaults, "spec": knowledge},
            num_cpus=0.25,
            compute=ray.data.TaskPoolStrategy(size=embed_actors),
        )
        .map_batches(
            SkipUnchanged,
            fn_constructor_args=(writer,),
            batch_size=batch_docs,
            compute=ray.data.ActorPoolStrategy(size=1),
            num_cpus=0.1,
        )
        .map_batches(
            EmbedChunks,
            fn_constructor_args=(embedder,),
            batch_size=batch_docs,
            # Two batches at once per actor, both shared out over its torch streams: a stream
            # done with its share of one starts on the next instead of waiting for the others.
            compute=ray.data.ActorPoolStrategy(
                size=embed_actors,
                max_concurrent_calls_per_actor=2,
                enable_true_multi_threading=True,
            ),
            num_cpus=embed_cpus,
        )
    )
    ds.context.execution_options.preserve_order = True  # file order decides repeated ids
    # Ray Data's blocks default to 128 MiB: a whole JSONL file of that size would be parsed,
    # then embedded, then written, each stage waiting for the last. Blocks of about a batch
    # let the writes of one batch overlap the embedding of the next.
    ds.context.target_max_block_size = BLOCK_BYTES
    report = BulkReport()
    writes = _OrderedWrites(writer, embedder.id, report)
    for batch in ds.iter_batches(batch_size=batch_docs, batch_format="numpy"):
        for i, document in enumerate(batch["document"]):
            if not document:
                report.counts["failed"] += 1
                report.failures.append((str(batch["origin"][i]), str(batch["error"][i])))
            elif batch["status"][i] == "unchanged":
                writes.unchanged(DocumentIn(**document))
            else:
                vectors = [list(map(float, v)) for v in batch["vectors"][i]]
                writes.add((DocumentIn(**document), list(batch["chunks"][i]), vectors))
        writes.flush()
        on_progress(len(batch["document"]))
    return report


class _OrderedWrites:
    """Writes in file order, so when a corpus repeats an id its last copy is what stays.

    A copy judged unchanged before an earlier copy of it was written is no longer unchanged:
    it is written then, in its place, through the writer's own embedding path.
    """

    def __init__(self, writer: BulkWriter, embedding_model: str, report: BulkReport) -> None:
        self.writer = writer
        self.embedding_model = embedding_model
        self.report = report
        self.pending: dict[str, Embedded] = {}
        self.written: set[str] = set()

    def add(self, item: Embedded) -> None:
        if item[0].id in self.pending:
            self.flush()
        self.pending[item[0].id] = item

    def unchanged(self, doc: DocumentIn) -> None:
        if doc.id not in self.pending and doc.id not in self.written:
            self.report.counts["unchanged"] += 1
            return
        self.flush()
        for outcome in self.writer.put_many([doc]):
            if isinstance(outcome, Exception):
                self.report.counts["failed"] += 1
                self.report.failures.append((doc.id, str(outcome)))
            else:
                self.report.counts[outcome[0].status] += 1
                self.report.chunks += outcome[1] or 0

    def flush(self) -> None:
        if not self.pending:
            return
        items = list(self.pending.values())
        for result in self.writer.write_embedded(items, self.embedding_model):
            self.report.counts[result.status] += 1
        self.report.chunks += sum(len(chunks) for _, chunks, _ in items)
        self.written.update(self.pending)
        self.pending.clear()
