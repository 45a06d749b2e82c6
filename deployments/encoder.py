"""An `Embedder` behind Serve's dynamic batching, shared by the embedder deployment (documents,
`/v1/embeddings`) and the knowledge deployment (search queries)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from ray import serve

from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder


class BatchedEncoder:
    def __init__(self, spec: EmbedderSpec, batch_wait_timeout_s: float) -> None:
        self.embedder = Embedder(spec)
        # One thread calls torch, always the same: each calling thread gets an OpenMP team of
        # its own, and teams left spinning by earlier callers compete with the current one
        # (measured gain small here, 27 -> 26 ms per query: benchmarks/RESULTS.md).
        self._torch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torch")
        self._encode_one.set_max_batch_size(spec.max_batch_size)
        self._encode_one.set_batch_wait_timeout_s(batch_wait_timeout_s)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
    async def _encode_one(self, texts: list[str]) -> list[np.ndarray]:
        """Serve gathers single texts from concurrent callers into `texts`."""
        loop = asyncio.get_running_loop()
        return list(await loop.run_in_executor(self._torch, self.embedder.encode_array, texts))

    async def encode(self, texts: list[str]) -> np.ndarray:
        """float32 vectors for `texts`, a row each, in order."""
        return np.stack(await asyncio.gather(*map(self._encode_one, texts)))
