"""Accepting a node's contribution: a `node_contributed` document of the node's region.

Safe to repeat: the document is written under an id derived from the contribution, so a retry
after a failure writes the same document again."""

from __future__ import annotations

import asyncio

from bigevy.fleet.contributions import ContributionQueue
from bigevy.http.contributions.protocol import ContributionOut, Review
from bigevy.http.knowledge.protocol import DocumentReplace
from bigevy.http.knowledge.serving import KnowledgeGateway


class ContributionReview:
    def __init__(self, queue: ContributionQueue, knowledge: KnowledgeGateway) -> None:
        self.queue = queue
        self.knowledge = knowledge

    async def accept(
        self, contribution_id: str, reviewer: str | None, review: Review
    ) -> ContributionOut:
        item, region = await asyncio.to_thread(self.queue.begin_accept, contribution_id)
        document_id = f"contributed/{item.node_id}/{item.id}"
        language = item.metadata.get("language")
        body = DocumentReplace(
            title=review.title or item.title,
            text=review.text or item.text,
            category=item.category,
            source="node_contributed",
            region=review.region or region,
            language=language if isinstance(language, str) and 2 <= len(language) <= 16 else "en",
        )
        # Decided first, so a reject arriving meanwhile gets 409 rather than leaving a
        # rejected contribution live in the knowledge base; undone if the write fails.
        decided = await asyncio.to_thread(
            self.queue.decide, contribution_id, "accepted", reviewer, review.reason, document_id
        )
        try:
            await self.knowledge.put(document_id, body)
        except BaseException:
            await asyncio.to_thread(self.queue.reopen, contribution_id)
            raise
        return decided

    async def reject(
        self, contribution_id: str, reviewer: str | None, review: Review
    ) -> ContributionOut:
        return await asyncio.to_thread(
            self.queue.decide, contribution_id, "rejected", reviewer, review.reason
        )
