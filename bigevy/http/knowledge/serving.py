"""The knowledge routes' translation between wire models and the knowledge service."""

from __future__ import annotations

import time
from typing import Any, Protocol

from bigevy.answers.ports import Retriever
from bigevy.errors import BigEvyError, ValidationFailed
from bigevy.http.knowledge.protocol import (
    BatchItem,
    BatchResult,
    Citation,
    DocumentBatch,
    DocumentCreate,
    DocumentOut,
    DocumentPage,
    DocumentReplace,
    KnowledgeStatus,
    MaintenanceResult,
    SearchHit,
    SearchRequest,
    SearchResponse,
    WriteOut,
)
from bigevy.knowledge.records import DocumentIn, SearchFilters, WriteResult
from bigevy.knowledge.taxonomy import SOURCES


class KnowledgeBackend(Retriever, Protocol):
    """`KnowledgeService` in-process, or its Serve deployment through a handle: what the
    answer service reads (`Retriever`), and what the knowledge routes write and list."""

    async def put(self, doc: DocumentIn) -> tuple[WriteResult, int | None]: ...
    async def put_many(
        self, docs: list[DocumentIn]
    ) -> list[tuple[WriteResult, int | None] | BigEvyError]: ...
    async def list_documents(
        self, filters: SearchFilters, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]: ...
    async def delete(self, document_id: str) -> WriteResult: ...
    async def stats(self) -> dict[str, Any]: ...
    async def revision(self) -> int: ...
    async def maintain(self) -> list[str]: ...


#: How long the knowledge revision told to heartbeating nodes may lag a write.
REVISION_TTL_S = 5.0


class KnowledgeGateway:
    def __init__(self, backend: KnowledgeBackend) -> None:
        self.backend = backend
        self._revision = (0, float("-inf"))

    async def revision(self) -> int:
        """The knowledge base's latest revision, asked at most every few seconds."""
        value, at = self._revision
        if time.monotonic() - at > REVISION_TTL_S:
            value = await self.backend.revision()
            self._revision = (value, time.monotonic())
        return value

    async def put(self, document_id: str, body: DocumentCreate | DocumentReplace) -> WriteOut:
        if body.id is not None and body.id != document_id:
            raise ValidationFailed(
                f"id: the body's id {body.id!r} is not the path's {document_id!r}",
                param="id",
                code="id_mismatch",
            )
        doc = DocumentIn(id=document_id, **body.model_dump(exclude={"id"}))
        result, chunks = await self.backend.put(doc)
        return WriteOut(**result.__dict__, chunks=chunks)

    async def put_many(self, batch: DocumentBatch) -> BatchResult:
        docs = [DocumentIn(**d.model_dump()) for d in batch.documents]
        items = []
        for doc, outcome in zip(docs, await self.backend.put_many(docs), strict=True):
            if isinstance(outcome, BigEvyError):
                items.append(BatchItem(id=doc.id, status="failed", error=outcome.message))
            else:
                result, chunks = outcome
                items.append(BatchItem(**result.__dict__, chunks=chunks))
        return BatchResult(results=items)

    async def get(self, document_id: str) -> DocumentOut:
        return DocumentOut(**await self.backend.get(document_id))

    async def list(self, filters: SearchFilters, offset: int, limit: int) -> DocumentPage:
        rows, total = await self.backend.list_documents(filters, offset, limit)
        return DocumentPage(
            data=[DocumentOut(**r) for r in rows], total=total, offset=offset, limit=limit
        )

    async def delete(self, document_id: str) -> WriteOut:
        return WriteOut(**(await self.backend.delete(document_id)).__dict__)

    async def status(self) -> KnowledgeStatus:
        return KnowledgeStatus(**await self.backend.stats())

    async def maintain(self) -> MaintenanceResult:
        done = await self.backend.maintain()
        return MaintenanceResult(done=done, status=await self.status())

    async def search(self, request: SearchRequest) -> SearchResponse:
        filters = SearchFilters(
            # Earlier answers (faq) only when asked for by name: they are not sources.
            categories=[str(c) for c in request.categories or SOURCES],
            sources=[str(s) for s in request.sources],
            regions=request.regions,
            languages=request.languages,
            updated_after=request.updated_after,
        )
        hits = await self.backend.search(request.query, request.mode, filters, request.top_k)
        return SearchResponse(
            query=request.query,
            mode=request.mode,
            hits=[
                SearchHit(
                    chunk_id=h.chunk_id,
                    text=h.text,
                    score=h.score,
                    similarity=h.similarity,
                    category=h.category,
                    citation=Citation.of(h),
                )
                for h in hits
            ],
        )
