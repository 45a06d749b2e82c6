"""The console's review pages: what nodes contributed, and the FAQ answers nodes give, each
with its sources; accept (as written or edited), reject, approve, withdraw."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from bigevy.fleet.roles import OPERATORS, STATUS_READERS
from bigevy.http.access import allow, caller_of
from bigevy.http.console.forms import parsed
from bigevy.http.console.guard import PREFIX, check_csrf
from bigevy.http.console.pages import render
from bigevy.http.contributions.protocol import Review
from bigevy.http.faq.protocol import FaqEntry
from bigevy.http.services import Svc

router = APIRouter(
    prefix=f"{PREFIX}/review",
    include_in_schema=False,
    dependencies=[allow(STATUS_READERS), Depends(check_csrf)],
)
run = asyncio.to_thread
BACK = f"{PREFIX}/review"


@router.get("")
async def queue(s: Svc, request: Request) -> Response:
    pending, total = await run(s.contributions.list, "pending", 0, 100)
    entries = await s.knowledge.backend.faq_entries(None, 100, False)
    return render(
        request,
        "review.html",
        "review",
        pending=pending,
        total=total,
        faq=[FaqEntry(**e) for e in entries],
        done=request.query_params.get("done", ""),
    )


@router.post("/contributions/{contribution_id}/accept", dependencies=[allow(OPERATORS)])
async def accept(
    s: Svc,
    request: Request,
    contribution_id: str,
    title: Annotated[str, Form(max_length=500)] = "",
    text: Annotated[str, Form(max_length=20_000)] = "",
    region: Annotated[str, Form(max_length=100)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Into the knowledge base, as the reviewer left it in the form."""
    review = parsed(
        Review, title=title or None, text=text or None, region=region or None, reason=reason
    )
    done = await s.review.accept(contribution_id, caller_of(request).key_id, review)
    return RedirectResponse(f"{BACK}?done=accepted:{done.document_id}", status_code=303)


@router.post("/contributions/{contribution_id}/reject", dependencies=[allow(OPERATORS)])
async def reject(
    s: Svc,
    request: Request,
    contribution_id: str,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    review = parsed(Review, reason=reason)
    await s.review.reject(contribution_id, caller_of(request).key_id, review)
    return RedirectResponse(f"{BACK}?done=rejected:{contribution_id}", status_code=303)


@router.post("/faq/{entry_id}/approve", dependencies=[allow(OPERATORS)])
async def approve(s: Svc, entry_id: str) -> Response:
    """Nodes may answer with it from their next delta on."""
    await s.knowledge.backend.approve_faq(entry_id)
    return RedirectResponse(f"{BACK}?done=approved:{entry_id}", status_code=303)


@router.post("/faq/{entry_id}/withdraw", dependencies=[allow(OPERATORS)])
async def withdraw(s: Svc, entry_id: str) -> Response:
    """Nodes stop answering with it at their next delta."""
    await s.knowledge.backend.withdraw_faq(entry_id)
    return RedirectResponse(f"{BACK}?done=withdrawn:{entry_id}", status_code=303)
