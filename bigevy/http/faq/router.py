"""FAQ routes: what operators see of the entries built from frequent escalations, and taking
one back, or approving one
(with `faq.review` on). Entries are built and withdrawn with their sources by the knowledge service
(bigevy/knowledge/service.py); these routes only show them and withdraw one on request."""

from __future__ import annotations

from fastapi import APIRouter, Query

from bigevy.fleet.roles import OPERATORS, STATUS_READERS
from bigevy.http.access import allow
from bigevy.http.errors import ERRORS
from bigevy.http.faq.protocol import FaqEntry, FaqList
from bigevy.http.services import Svc

router = APIRouter(tags=["knowledge"], responses=ERRORS)


@router.get(
    "/v1/faq",
    response_model=FaqList,
    dependencies=[allow(STATUS_READERS)],
)
async def list_faq(
    s: Svc,
    region: str | None = Query(None, min_length=1, max_length=100),
    limit: int = Query(100, ge=1, le=1000),
    awaiting_review: bool = Query(False, description="Only those awaiting approval."),
) -> FaqList:
    """FAQ entries, most asked first (of one region, or every region)."""
    entries = await s.knowledge.backend.faq_entries(region, limit, awaiting_review)
    return FaqList(data=[FaqEntry(**e) for e in entries])


@router.get(
    "/v1/faq/{entry_id}",
    response_model=FaqEntry,
    dependencies=[allow(STATUS_READERS)],
)
async def show_faq(s: Svc, entry_id: str) -> FaqEntry:
    return FaqEntry(**await s.knowledge.backend.faq_entry(entry_id))


@router.post(
    "/v1/faq/{entry_id}/withdraw",
    response_model=FaqEntry,
    dependencies=[allow(OPERATORS)],
)
async def withdraw_faq(s: Svc, entry_id: str) -> FaqEntry:
    """Take an entry back from the nodes now; it is rebuilt from its sources when next
    asked."""
    return FaqEntry(**await s.knowledge.backend.withdraw_faq(entry_id))


@router.post(
    "/v1/faq/{entry_id}/approve",
    response_model=FaqEntry,
    dependencies=[allow(OPERATORS)],
)
async def approve_faq(s: Svc, entry_id: str) -> FaqEntry:
    """Approve an entry's answer as it is now (with `faq.review` on): it ships to the
    region's nodes while it stays among the most asked. 409 if it has no answer."""
    return FaqEntry(**await s.knowledge.backend.approve_faq(entry_id))
