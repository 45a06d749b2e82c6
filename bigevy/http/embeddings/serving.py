"""The logic behind `POST /v1/embeddings`, independent of Ray and of HTTP."""

from __future__ import annotations

import base64
from typing import Protocol

import numpy as np

from bigevy.config import EmbedderSpec
from bigevy.errors import InvalidRequest, ModelNotFound
from bigevy.http.embeddings.protocol import (
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
)


class EmbedderClient(Protocol):
    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]: ...


class EmbeddingService:
    def __init__(self, spec: EmbedderSpec, client: EmbedderClient) -> None:
        self.spec = spec
        self.client = client

    async def create(self, request: EmbeddingRequest) -> EmbeddingList:
        if request.model not in (None, self.spec.id):
            raise ModelNotFound(
                f"The embedding model {request.model!r} does not exist. Available: {self.spec.id}",
                param="model",
            )
        texts = request.texts
        if len(texts) > self.spec.max_inputs:
            raise InvalidRequest(
                f"at most {self.spec.max_inputs} texts per request, got {len(texts)}",
                param="input",
            )
        vectors, tokens = await self.client.embed(texts)
        data = [
            Embedding(index=i, embedding=_encode(vector, request.encoding_format))
            for i, vector in enumerate(vectors)
        ]
        return EmbeddingList(
            data=data,
            model=self.spec.id,
            usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
        )

    async def vectors(self, texts: list[str]) -> np.ndarray:
        """`texts` embedded, in order (bigEVY's own use: analytics groups questions)."""
        return (await self.client.embed(texts))[0]


def _encode(vector: np.ndarray, encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":  # what the openai client asks for by default
        return base64.b64encode(vector.astype("<f4", copy=False).tobytes()).decode("ascii")
    return vector.tolist()
