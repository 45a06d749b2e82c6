"""Serve shell over `Embedder`: concurrent requests are batched into one model call."""

from __future__ import annotations

import numpy as np
from ray import serve

from bigevy.config import EmbedderSpec
from deployments.encoder import BatchedEncoder


@serve.deployment(name="embedder")
class EmbedderDeployment:
    def __init__(self, spec: EmbedderSpec) -> None:
        self.encoder = BatchedEncoder(spec, spec.batch_wait_timeout_ms / 1000)

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """float32 vectors for `texts` (a row each, in order) and the tokens read."""
        return await self.encoder.encode(texts), self.encoder.embedder.count_tokens(texts)

    def info(self) -> dict[str, object]:
        embedder = self.encoder.embedder
        return {"id": embedder.model_id, "dimensions": embedder.dimensions}
