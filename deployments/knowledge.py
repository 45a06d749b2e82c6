"""Serve shell over `KnowledgeService`: the knowledge base's one writer, and its searcher."""

from __future__ import annotations

import asyncio
import logging

from ray import serve
from ray.serve.handle import DeploymentHandle

from bigevy.config import Settings
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.faq import FaqStore
from bigevy.knowledge.service import Embed, KnowledgeService
from bigevy.knowledge.store import KnowledgeStore
from deployments.encoder import BatchedEncoder

log = logging.getLogger("ray.serve")


@serve.deployment(name="knowledge")
class KnowledgeDeployment(KnowledgeService):
    async def __init__(self, settings: Settings, embedder: DeploymentHandle) -> None:
        info = await embedder.info.remote()

        async def embed(texts: list[str]) -> list[list[float]]:
            vectors, _ = await embedder.embed.remote(texts)
            return vectors.tolist()

        store = KnowledgeStore(
            settings.lancedb_uri,
            embedding_model=info["id"],
            dimensions=info["dimensions"],
            vector_index=settings.knowledge.vector_index,
            chunk_layout=layout(settings.knowledge.chunk_size, settings.knowledge.chunk_overlap),
            sole_writer=True,  # repairs what a crash mid-write left behind
        )
        faq = FaqStore(settings.lancedb_uri, info["id"], info["dimensions"])
        embed_query: Embed | None = None
        if settings.knowledge.embed_queries == "local":
            # A search embeds one short text: the hop to the embedder replica and its batch
            # wait cost more than the encoding (benchmarks/RESULTS.md, retrieval at scale).
            # No batch wait: queries that arrive while one is encoded go in the next call.
            # One stream on every thread: a single query encodes fastest that way.
            spec = settings.embedder.model_copy(update={"streams": 1})
            queries = BatchedEncoder(spec, batch_wait_timeout_s=0)
            local = (queries.embedder.model_id, queries.embedder.dimensions)
            if local != (info["id"], info["dimensions"]):
                raise RuntimeError("the query encoder and the embedder disagree on the model")

            async def embed_query(texts: list[str]) -> list[list[float]]:
                return (await queries.encode(texts)).tolist()

        KnowledgeService.__init__(self, store, embed, settings.knowledge, faq, embed_query)
        self._upkeep = asyncio.create_task(self._keep_indexes_current())
        self._reembed = asyncio.create_task(self._reembed_if_needed())

    async def _keep_indexes_current(self) -> None:
        """New rows reach the indexes within one interval of being written."""
        maintained = 0
        while True:
            await asyncio.sleep(self.spec.maintenance_interval_s)
            writes = self.store.writes
            if writes == maintained:
                continue
            try:
                done = await self.maintain()
                maintained = writes
                log.info("knowledge upkeep after %d writes: %s", writes, ", ".join(done))
            except Exception:
                log.exception("knowledge upkeep failed; retrying next interval")

    async def _reembed_if_needed(self) -> None:
        """After a change of embedding model, every document gets the new model's vectors."""
        try:
            if await asyncio.to_thread(self.store.missing_chunks):
                log.warning("re-embedding the knowledge base with %s", self.store.embedding_model)
                done = await self.reembed()
                log.warning("re-embedded %d documents", done)
            elif self.store.other_models():
                await asyncio.to_thread(self.store.drop_other_models)
        except Exception:
            log.exception("re-embedding stopped; it resumes where it was at the next start")
