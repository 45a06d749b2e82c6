"""Serve shell over `KnowledgeService`: the knowledge base's one writer, and its searcher."""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle

from bigevy.config import Settings
from bigevy.knowledge.service import KnowledgeService
from bigevy.knowledge.store import KnowledgeStore


@serve.deployment(name="knowledge")
class KnowledgeDeployment(KnowledgeService):
    async def __init__(self, settings: Settings, embedder: DeploymentHandle) -> None:
        info = await embedder.info.remote()

        async def embed(texts: list[str]) -> list[list[float]]:
            vectors, _ = await embedder.embed.remote(texts)
            return vectors

        store = KnowledgeStore(
            settings.lancedb_uri, embedding_model=info["id"], dimensions=info["dimensions"]
        )
        store.repair()  # whatever a crash mid-write left behind
        KnowledgeService.__init__(self, store, embed, settings.knowledge)
