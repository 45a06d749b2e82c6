"""Contribution routes: nodes offer local knowledge; operators accept it into the knowledge
base (`serving.py`) or reject it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request

from bigevy.fleet.roles import NODES, OPERATORS, STATUS_READERS
from bigevy.http.access import allow, caller_of
from bigevy.http.contributions.protocol import (
    ContributionBatch,
    ContributionList,
    ContributionOut,
    ContributionsQueued,
    Review,
)
from bigevy.http.errors import ERRORS
from bigevy.http.services import Svc

router = APIRouter(tags=["sync"], responses=ERRORS)


async def submit(s: Svc, batch: ContributionBatch, request: Request) -> ContributionsQueued:
    node_id = caller_of(request).node_id
    assert node_id
    ids = await asyncio.to_thread(s.contributions.submit, node_id, batch.documents)
    return ContributionsQueued(count=len(ids), ids=ids)


for path, summary in (
    (
        "/v1/sync/contributions",
        "Offer local knowledge for review (not searchable until an operator accepts it).",
    ),
    ("/sync/knowledge", "The EVY prototype's route for the same."),
):
    router.add_api_route(
        path,
        submit,
        methods=["POST"],
        status_code=202,
        response_model=ContributionsQueued,
        dependencies=[allow(NODES)],
        summary=summary,
    )


@router.get(
    "/v1/contributions",
    response_model=ContributionList,
    dependencies=[allow(STATUS_READERS)],
)
async def list_contributions(
    s: Svc,
    status: str | None = Query("pending", pattern="^(pending|accepted|rejected)$"),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> ContributionList:
    rows, total = await asyncio.to_thread(s.contributions.list, status, offset, limit)
    return ContributionList(data=rows, total=total)


@router.post(
    "/v1/contributions/{contribution_id}/accept",
    response_model=ContributionOut,
    dependencies=[allow(OPERATORS)],
)
async def accept(
    s: Svc, contribution_id: str, request: Request, review: Review | None = None
) -> ContributionOut:
    """Into the knowledge base as a `node_contributed` document of the node's region."""
    reviewer = caller_of(request).key_id
    return await s.review.accept(contribution_id, reviewer, review or Review())


@router.post(
    "/v1/contributions/{contribution_id}/reject",
    response_model=ContributionOut,
    dependencies=[allow(OPERATORS)],
)
async def reject(
    s: Svc, contribution_id: str, request: Request, review: Review | None = None
) -> ContributionOut:
    return await s.review.reject(contribution_id, caller_of(request).key_id, review or Review())
