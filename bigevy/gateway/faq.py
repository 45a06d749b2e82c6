"""FAQ routes: what operators see of the entries built from frequent escalations, and taking
one back, or approving one
(with `faq.review` on). Entries are built and withdrawn with their sources by the knowledge service
(bigevy/knowledge/service.py); these routes only show them and withdraw one on request."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from bigevy.api.faq import FaqEntry, FaqList
from bigevy.api.openai import error_responses
from bigevy.fleet.roles import OPERATORS, STATUS_READERS
from bigevy.gateway.access import allow

ERRORS = error_responses(401, 403, 404, 422, 429)
APPROVE_ERRORS = error_responses(401, 403, 404, 409, 422, 429)


def add_faq_routes(router: APIRouter, knowledge: Any) -> None:
    """`knowledge`: the gateway's `KnowledgeGateway`."""

    @router.get(
        "/v1/faq",
        response_model=FaqList,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def list_faq(
        region: str | None = Query(None, min_length=1, max_length=100),
        limit: int = Query(100, ge=1, le=1000),
        awaiting_review: bool = Query(False, description="Only those awaiting approval."),
    ) -> FaqList:
        """FAQ entries, most asked first (of one region, or every region)."""
        entries = await knowledge.backend.faq_entries(region, limit, awaiting_review)
        return FaqList(data=[FaqEntry(**e) for e in entries])

    @router.get(
        "/v1/faq/{entry_id}",
        response_model=FaqEntry,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def show_faq(entry_id: str) -> FaqEntry:
        return FaqEntry(**await knowledge.backend.faq_entry(entry_id))

    @router.post(
        "/v1/faq/{entry_id}/withdraw",
        response_model=FaqEntry,
        responses=ERRORS,
        tags=["knowledge"],
        dependencies=[allow(OPERATORS)],
    )
    async def withdraw_faq(entry_id: str) -> FaqEntry:
        """Take an entry back from the nodes now; it is rebuilt from its sources when next
        asked."""
        return FaqEntry(**await knowledge.backend.withdraw_faq(entry_id))

    @router.post(
        "/v1/faq/{entry_id}/approve",
        response_model=FaqEntry,
        responses=APPROVE_ERRORS,
        tags=["knowledge"],
        dependencies=[allow(OPERATORS)],
    )
    async def approve_faq(entry_id: str) -> FaqEntry:
        """Approve an entry's answer as it is now (with `faq.review` on): it ships to the
        region's nodes while it stays among the most asked. 409 if it has no answer."""
        return FaqEntry(**await knowledge.backend.approve_faq(entry_id))
