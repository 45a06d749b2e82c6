"""An `Embedder` behind Serve's dynamic batching, shared by the embedder deployment (documents,
`/v1/embeddings`) and the knowledge deployment (search queries)."""

from __future__ import annotations

import asyncio

import numpy as np
from ray import serve

from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder


class BatchedEncoder:
    def __init__(self, spec: EmbedderSpec, batch_wait_timeout_s: float) -> None:
        self.embedder = Embedder(spec)

        # One batch in flight per torch stream: while one stream encodes, the next batch
        # fills and goes to the other.
        @serve.batch(
            max_batch_size=spec.max_batch_size,
            batch_wait_timeout_s=batch_wait_timeout_s,
            max_concurrent_batches=self.embedder.streams,
        )
        async def encode_batch(texts: list[str]) -> list[np.ndarray]:
            """Serve gathers single texts from concurrent callers into `texts`."""
            return list(await asyncio.wrap_future(self.embedder.submit(texts)))

        self._encode_one = encode_batch

    async def encode(self, texts: list[str]) -> np.ndarray:
        """float32 vectors for `texts`, a row each, in order."""
        return np.stack(await asyncio.gather(*map(self._encode_one, texts)))

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """float32 vectors for `texts` (a row each, in order) and the tokens read."""
        return await self.encode(texts), self.embedder.count_tokens(texts)

    async def info(self) -> dict[str, object]:
        return {"id": self.embedder.model_id, "dimensions": self.embedder.dimensions}
