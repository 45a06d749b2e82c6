"""The console's knowledge pages: search as `/v1/rag/search` does, browse, view, edit and
delete documents, upload files to ingest, and the index's state."""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import replace
from pathlib import Path, PurePath
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from bigevy.errors import ValidationFailed
from bigevy.fleet.roles import OPERATORS, STATUS_READERS
from bigevy.http.access import allow
from bigevy.http.console.forms import parsed
from bigevy.http.console.guard import PREFIX, check_csrf
from bigevy.http.console.pages import render
from bigevy.http.knowledge.protocol import (
    MAX_BATCH,
    BatchItem,
    DocumentBatch,
    DocumentCreate,
    DocumentReplace,
    SearchRequest,
)
from bigevy.http.services import Svc
from bigevy.knowledge import ingest
from bigevy.knowledge.records import SearchFilters
from bigevy.knowledge.taxonomy import Category, Source

router = APIRouter(
    prefix=f"{PREFIX}/knowledge",
    include_in_schema=False,
    dependencies=[allow(STATUS_READERS), Depends(check_csrf)],
)
PAGE = 50
Short = Annotated[str, Form(max_length=100)]


def _taxonomy() -> dict:
    return {"categories": [str(c) for c in Category], "sources": [str(s) for s in Source]}


@router.get("")
async def search(
    s: Svc,
    request: Request,
    q: Annotated[str, Query(max_length=2000)] = "",
    mode: Annotated[str, Query(pattern="^(hybrid|vector|keyword)$")] = "hybrid",
) -> Response:
    """Hits with their citations, as nodes and answers get them; the index's state beside."""
    found = None
    if q.strip():
        found = await s.knowledge.search(parsed(SearchRequest, query=q, mode=mode, top_k=10))
    status = await s.knowledge.status()
    return render(
        request, "knowledge.html", "knowledge", q=q, mode=mode, found=found, status=status
    )


@router.get("/documents")
async def documents(
    s: Svc,
    request: Request,
    category: Annotated[str, Query(max_length=100)] = "",
    source: Annotated[str, Query(max_length=100)] = "",
    region: Annotated[str, Query(max_length=100)] = "",
    language: Annotated[str, Query(max_length=16)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    chosen = {"category": category, "source": source, "region": region, "language": language}
    filters = SearchFilters(
        categories=[category] if category else [],
        sources=[source] if source else [],
        regions=[region] if region else [],
        languages=[language] if language else [],
    )
    page = await s.knowledge.list(filters, offset, PAGE)
    return render(request, "documents.html", "knowledge", page=page, chosen=chosen, **_taxonomy())


@router.get("/documents/{document_id:path}/delete", dependencies=[allow(OPERATORS)])
async def delete_confirm(s: Svc, request: Request, document_id: str) -> Response:
    document = await s.knowledge.get(document_id)
    return render(request, "delete.html", "knowledge", document=document)


@router.post("/documents/{document_id:path}/delete", dependencies=[allow(OPERATORS)])
async def delete(s: Svc, document_id: str) -> Response:
    """Gone from search at once; nodes drop it with their next delta."""
    await s.knowledge.delete(document_id)
    return RedirectResponse(f"{PREFIX}/knowledge/documents?deleted=1", status_code=303)


@router.get("/documents/{document_id:path}")
async def document(
    s: Svc, request: Request, document_id: str, saved: Annotated[str, Query()] = ""
) -> Response:
    found = await s.knowledge.get(document_id)
    return render(request, "document.html", "knowledge", document=found, saved=saved, **_taxonomy())


@router.post("/documents/{document_id:path}", dependencies=[allow(OPERATORS)])
async def save(
    s: Svc,
    document_id: str,
    title: Annotated[str, Form(max_length=500)],
    text: Annotated[str, Form(max_length=2_000_000)],
    category: Short,
    source: Short,
    region: Short = "global",
    language: Short = "en",
    priority: Short = "normal",
    url: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Replaced as `PUT /v1/knowledge/documents/{id}` replaces it: re-chunked, re-embedded."""
    body = parsed(
        DocumentReplace,
        title=title,
        text=text,
        category=category,
        source=source,
        region=region,
        language=language,
        priority=priority,
        url=url,
    )
    written = await s.knowledge.put(document_id, body)
    return RedirectResponse(
        f"{PREFIX}/knowledge/documents/{document_id}?saved={written.status}", status_code=303
    )


@router.get("/upload", dependencies=[allow(OPERATORS)])
async def upload_form(request: Request) -> Response:
    return render(
        request, "upload.html", "knowledge", suffixes=sorted(ingest.SUFFIXES), **_taxonomy()
    )


@router.post("/upload", dependencies=[allow(OPERATORS)])
async def upload(
    s: Svc,
    request: Request,
    files: list[UploadFile],
    category: Short,
    source: Short,
    region: Short = "global",
    language: Short = "en",
) -> Response:
    """Files read as `bigevy ingest` reads them (JSONL, Markdown, text, HTML), then written as
    one batch; each file's outcome is listed."""
    defaults = {"category": category, "source": source, "region": region, "language": language}
    records = await _read_uploads(files, defaults)
    results: list[BatchItem] = []
    valid: list[DocumentCreate] = []
    for record in records:
        try:
            if record.document is None:
                raise ValidationFailed(record.error or "unreadable")
            valid.append(parsed(DocumentCreate, **record.document))
        except ValidationFailed as invalid:
            results.append(BatchItem(id=record.origin, status="failed", error=invalid.message))
    for start in range(0, len(valid), MAX_BATCH):
        batch = DocumentBatch(documents=valid[start : start + MAX_BATCH])
        results.extend((await s.knowledge.put_many(batch)).results)
    return render(request, "uploaded.html", "knowledge", results=results)


async def _read_uploads(files: list[UploadFile], defaults: dict[str, str]) -> list[ingest.Record]:
    """The uploads as records, read from a private folder (names reduced to their last part:
    an upload names no path on this host)."""
    with tempfile.TemporaryDirectory(prefix="bigevy-upload-") as folder:
        saved = []
        for number, upload in enumerate(files):
            name = PurePath(upload.filename or f"upload-{number}.txt").name or f"upload-{number}"
            saved.append(Path(folder) / name)
            saved[-1].write_bytes(await upload.read())

        def read() -> list[ingest.Record]:
            # File by file: a folder's reading skips unknown types, and a person wants told.
            return [record for path in saved for record in ingest.read(path, defaults)]

        records = await asyncio.to_thread(read)
    # Named as the person named them, not by the folder they were read from.
    return [replace(r, origin=r.origin.removeprefix(f"{folder}/")) for r in records]
