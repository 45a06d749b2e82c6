"""Where connectors deliver in the server: the knowledge base and the alert service."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bigevy.alerts.service import AlertService
from bigevy.errors import BigEvyError, NotFound
from bigevy.http.alerts.protocol import AlertIn
from bigevy.knowledge.records import DocumentIn

log = logging.getLogger("ray.serve")


class ServerSink:
    """`knowledge`: the knowledge deployment's methods as awaitables (or a KnowledgeService).

    A document the knowledge base refuses on its own (too large) is logged and skipped: the
    source is not at fault and retrying cannot help. Anything else raises, so the runner
    offers the batch again after its backoff.
    """

    def __init__(self, knowledge: Any, alerts: AlertService) -> None:
        self.knowledge = knowledge
        self.alert_service = alerts

    async def documents(self, docs: list[DocumentIn]) -> None:
        for outcome, doc in zip(await self.knowledge.put_many(docs), docs, strict=True):
            if isinstance(outcome, BigEvyError):
                log.warning("connector document %s refused: %s", doc.id, outcome.message)

    async def alerts(self, alerts: list[AlertIn], source: str) -> None:
        for alert in alerts:
            # NotFound: a cancel of an alert this source never sent; nothing to withdraw.
            with contextlib.suppress(NotFound):
                await asyncio.to_thread(self.alert_service.post, alert, None, f"source:{source}")

    async def deleted(self, ids: list[str]) -> None:
        for document_id in ids:
            with contextlib.suppress(NotFound):  # already gone
                await self.knowledge.delete(document_id)
