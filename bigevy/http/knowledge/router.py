"""The knowledge routes: documents in and out, the base's status and upkeep, and search."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from bigevy.fleet.roles import ANY_ROLE, OPERATORS, STATUS_READERS
from bigevy.http.access import allow
from bigevy.http.errors import ERRORS
from bigevy.http.gate import SEARCHING, WRITING, needs
from bigevy.http.knowledge.protocol import (
    BatchResult,
    DocumentBatch,
    DocumentCreate,
    DocumentOut,
    DocumentPage,
    DocumentReplace,
    KnowledgeStatus,
    MaintenanceResult,
    SearchRequest,
    SearchResponse,
    WriteOut,
)
from bigevy.http.services import Svc
from bigevy.knowledge.records import SearchFilters
from bigevy.knowledge.taxonomy import Category, Source

router = APIRouter(tags=["knowledge"], responses=ERRORS)
READING = needs("knowledge")


@router.post(
    "/v1/knowledge/documents",
    response_model=WriteOut,
    dependencies=[allow(OPERATORS), WRITING],
)
async def create_document(s: Svc, body: DocumentCreate) -> JSONResponse:
    """Add (or idempotently re-send) a document: chunked, embedded, searchable at once."""
    result = await s.knowledge.put(body.id, body)
    status = 201 if result.status == "added" else 200
    return JSONResponse(result.model_dump(), status_code=status)


@router.post(
    "/v1/knowledge/documents/batch",
    response_model=BatchResult,
    dependencies=[allow(OPERATORS), WRITING],
)
async def create_documents(s: Svc, batch: DocumentBatch) -> BatchResult:
    """Up to 256 documents in one call (what `bigevy ingest` sends); each gets its outcome."""
    return await s.knowledge.put_many(batch)


@router.put(
    "/v1/knowledge/documents/{document_id:path}",
    response_model=WriteOut,
    dependencies=[allow(OPERATORS), WRITING],
)
async def put_document(s: Svc, document_id: str, body: DocumentReplace) -> WriteOut:
    """Create or replace a document; the same content again changes nothing."""
    return await s.knowledge.put(document_id, body)


@router.get(
    "/v1/knowledge/documents/{document_id:path}",
    response_model=DocumentOut,
    dependencies=[allow(ANY_ROLE), READING],
)
async def get_document(s: Svc, document_id: str) -> DocumentOut:
    return await s.knowledge.get(document_id)


@router.get(
    "/v1/knowledge/documents",
    response_model=DocumentPage,
    dependencies=[allow(ANY_ROLE), READING],
)
async def list_documents(
    s: Svc,
    category: list[Category] = Query(default=[]),
    source: list[Source] = Query(default=[]),
    region: list[str] = Query(default=[]),
    language: list[str] = Query(default=[]),
    offset: int = Query(0, ge=0),
    limit: int = Query(50, ge=1, le=500),
) -> DocumentPage:
    filters = SearchFilters(
        categories=[str(c) for c in category],
        sources=[str(each) for each in source],
        regions=region,
        languages=language,
    )
    return await s.knowledge.list(filters, offset, limit)


@router.delete(
    "/v1/knowledge/documents/{document_id:path}",
    response_model=WriteOut,
    dependencies=[allow(OPERATORS), READING],
)
async def delete_document(s: Svc, document_id: str) -> WriteOut:
    """Remove from search; a tombstone with a new revision remains for edge sync."""
    return await s.knowledge.delete(document_id)


@router.get(
    "/v1/knowledge/status",
    response_model=KnowledgeStatus,
    dependencies=[allow(STATUS_READERS), READING],
)
async def knowledge_status(s: Svc) -> KnowledgeStatus:
    """Sizes, revision, embedding model, and how current each index is."""
    return await s.knowledge.status()


@router.post(
    "/v1/knowledge/maintain",
    response_model=MaintenanceResult,
    dependencies=[allow(OPERATORS), READING],
)
async def knowledge_maintain(s: Svc) -> MaintenanceResult:
    """Build the vector index if due and fold new rows into the indexes now."""
    return await s.knowledge.maintain()


@router.post(
    "/v1/rag/search",
    response_model=SearchResponse,
    dependencies=[allow(ANY_ROLE), SEARCHING],
)
async def rag_search(s: Svc, request: SearchRequest) -> SearchResponse:
    """Hybrid (vector + BM25, fused per document), vector or keyword search, with citations."""
    return await s.knowledge.search(request)
