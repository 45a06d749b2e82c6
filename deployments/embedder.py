"""Serve shell over `Embedder`: concurrent requests are batched into one model call."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ray import serve

from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder


@serve.deployment(name="embedder")
class EmbedderDeployment:
    def __init__(self, spec: EmbedderSpec) -> None:
        self.embedder = Embedder(spec)
        # One thread calls torch, always the same: each calling thread gets an OpenMP team of
        # its own, and teams left spinning by earlier callers compete with the current one
        # (measured gain small here, 27 -> 26 ms per query: benchmarks/RESULTS.md).
        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch")
        self._embed_one.set_max_batch_size(spec.max_batch_size)
        self._embed_one.set_batch_wait_timeout_s(spec.batch_wait_timeout_ms / 1000)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _embed_one(self, texts: list[str]) -> list[np.ndarray]:
        """Serve gathers single texts from concurrent callers into `texts`."""
        loop = asyncio.get_running_loop()
        return list(await loop.run_in_executor(self._torch, self.embedder.encode_array, texts))

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        """float32 vectors for `texts` (a row each, in order) and the tokens read."""
        vectors = await asyncio.gather(*(self._embed_one(text) for text in texts))
        return np.stack(vectors), self.embedder.count_tokens(texts)

    def info(self) -> dict[str, object]:
        return {"id": self.embedder.model_id, "dimensions": self.embedder.dimensions}
