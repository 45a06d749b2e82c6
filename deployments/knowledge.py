"""Serve shell over `KnowledgeService`: the knowledge base's one writer, and its searcher."""

from __future__ import annotations

import asyncio
import logging

from ray import serve
from ray.serve.handle import DeploymentHandle

from bigevy.config import Settings
from bigevy.knowledge.service import KnowledgeService
from bigevy.knowledge.store import KnowledgeStore

log = logging.getLogger("ray.serve")


@serve.deployment(name="knowledge")
class KnowledgeDeployment(KnowledgeService):
    async def __init__(self, settings: Settings, embedder: DeploymentHandle) -> None:
        info = await embedder.info.remote()

        async def embed(texts: list[str]) -> list[list[float]]:
            vectors, _ = await embedder.embed.remote(texts)
            return vectors

        store = KnowledgeStore(
            settings.lancedb_uri,
            embedding_model=info["id"],
            dimensions=info["dimensions"],
            vector_index=settings.knowledge.vector_index,
        )
        store.repair()  # whatever a crash mid-write left behind
        KnowledgeService.__init__(self, store, embed, settings.knowledge)
        self._upkeep = asyncio.create_task(self._keep_indexes_current())

    async def _keep_indexes_current(self) -> None:
        """New rows reach the indexes within one interval of being written."""
        maintained = None
        while True:
            await asyncio.sleep(self.spec.maintenance_interval_s)
            revision = self.store.revision()
            if revision == maintained:
                continue
            try:
                done = await self.maintain()
                maintained = revision
                log.info("knowledge upkeep at revision %d: %s", revision, ", ".join(done))
            except Exception:
                log.exception("knowledge upkeep failed; retrying next interval")
