"""The knowledge deployment: the knowledge base's one writer, and its searcher."""

from __future__ import annotations

from ray.serve.handle import DeploymentHandle

from bigevy.config import Settings
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.faq import FaqStore
from bigevy.knowledge.service import Embed, KnowledgeService
from bigevy.knowledge.store import KnowledgeStore
from deployments.encoder import BatchedEncoder
from deployments.handles import HandleCalls


async def open_knowledge(settings: Settings, embedder_handle: DeploymentHandle) -> KnowledgeService:
    embedder = HandleCalls(embedder_handle)
    info = await embedder.info()

    async def embed(texts: list[str]) -> list[list[float]]:
        vectors, _ = await embedder.embed(texts)
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
    embed_query = (
        _local_query_encoder(settings, info)
        if settings.knowledge.embed_queries == "local"
        else None
    )
    service = KnowledgeService(store, embed, settings.knowledge, faq, embed_query)
    service.start_upkeep()
    return service


def _local_query_encoder(settings: Settings, info: dict) -> Embed:
    """A search embeds one short text: the hop to the embedder replica and its batch wait
    cost more than the encoding (benchmarks/RESULTS.md, retrieval at scale). No batch wait:
    queries that arrive while one is encoded go in the next call. One stream on every
    thread: a single query encodes fastest that way."""
    spec = settings.embedder.model_copy(update={"streams": 1})
    queries = BatchedEncoder(spec, batch_wait_timeout_s=0)
    local = (queries.embedder.model_id, queries.embedder.dimensions)
    if local != (info["id"], info["dimensions"]):
        raise RuntimeError("the query encoder and the embedder disagree on the model")

    async def embed_query(texts: list[str]) -> list[list[float]]:
        return (await queries.encode(texts)).tolist()

    return embed_query
