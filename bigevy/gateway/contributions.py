"""Contribution routes: nodes offer local knowledge; operators accept it into the knowledge
base or reject it. Accepting is safe to repeat: the document is written under an id derived
from the contribution, so a retry after a failure writes the same document again."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from bigevy.api.contributions import (
    ContributionBatch,
    ContributionList,
    ContributionOut,
    ContributionsQueued,
    Review,
)
from bigevy.api.knowledge import DocumentReplace
from bigevy.api.openai import error_responses
from bigevy.fleet.contributions import ContributionQueue
from bigevy.fleet.roles import NODES, OPERATORS, STATUS_READERS
from bigevy.gateway.access import allow
from bigevy.gateway.fleet import caller_of

ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429)


def add_contribution_routes(router: APIRouter, queue: ContributionQueue, knowledge: Any) -> None:
    """`knowledge`: the gateway's `KnowledgeGateway` (accepted documents go through it)."""

    async def submit(batch: ContributionBatch, request: Request) -> ContributionsQueued:
        node_id = caller_of(request).node_id
        assert node_id
        ids = await asyncio.to_thread(queue.submit, node_id, batch.documents)
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
            responses=ERRORS,
            tags=["sync"],
            dependencies=[allow(NODES)],
            summary=summary,
        )

    @router.get(
        "/v1/contributions",
        responses=ERRORS,
        response_model=ContributionList,
        tags=["sync"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def list_contributions(
        status: str | None = Query("pending", pattern="^(pending|accepted|rejected)$"),
        offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=1000),
    ) -> ContributionList:
        rows, total = await asyncio.to_thread(queue.list, status, offset, limit)
        return ContributionList(data=rows, total=total)

    @router.post(
        "/v1/contributions/{contribution_id}/accept",
        responses=ERRORS,
        response_model=ContributionOut,
        tags=["sync"],
        dependencies=[allow(OPERATORS)],
    )
    async def accept(
        contribution_id: str, request: Request, review: Review | None = None
    ) -> ContributionOut:
        """Into the knowledge base as a `node_contributed` document of the node's region."""
        review = review or Review()
        item, region = await asyncio.to_thread(queue.begin_accept, contribution_id)
        document_id = f"contributed/{item.node_id}/{item.id}"
        language = item.metadata.get("language")
        body = DocumentReplace(
            title=item.title,
            text=item.text,
            category=item.category,
            source="node_contributed",
            region=review.region or region,
            language=language if isinstance(language, str) and 2 <= len(language) <= 16 else "en",
        )
        # Decided first, so a reject arriving meanwhile gets 409 rather than leaving a
        # rejected contribution live in the knowledge base; undone if the write fails.
        decided = await asyncio.to_thread(
            queue.decide,
            contribution_id,
            "accepted",
            caller_of(request).key_id,
            review.reason,
            document_id,
        )
        try:
            await knowledge.put(document_id, body)
        except BaseException:
            await asyncio.to_thread(queue.reopen, contribution_id)
            raise
        return decided

    @router.post(
        "/v1/contributions/{contribution_id}/reject",
        responses=ERRORS,
        response_model=ContributionOut,
        tags=["sync"],
        dependencies=[allow(OPERATORS)],
    )
    async def reject(
        contribution_id: str, request: Request, review: Review | None = None
    ) -> ContributionOut:
        review = review or Review()
        return await asyncio.to_thread(
            queue.decide, contribution_id, "rejected", caller_of(request).key_id, review.reason
        )
