"""`POST /v1/embeddings`: the knowledge base's embedding model, OpenAI-compatible."""

from __future__ import annotations

from fastapi import APIRouter

from bigevy.fleet.roles import ANY_ROLE
from bigevy.http.access import allow
from bigevy.http.embeddings.protocol import EmbeddingList, EmbeddingRequest
from bigevy.http.errors import ERRORS
from bigevy.http.gate import needs
from bigevy.http.services import Svc

router = APIRouter(tags=["openai"], responses=ERRORS)


@router.post(
    "/v1/embeddings",
    response_model=EmbeddingList,
    dependencies=[allow(ANY_ROLE), needs("embedder")],
)
async def create_embeddings(s: Svc, request: EmbeddingRequest) -> EmbeddingList:
    """Embed texts with the knowledge base's model (vectors are L2-normalised)."""
    return await s.embeddings.create(request)
