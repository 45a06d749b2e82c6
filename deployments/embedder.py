"""The embedder deployment: concurrent requests batched into one model call."""

from __future__ import annotations

from bigevy.config import EmbedderSpec
from deployments.encoder import BatchedEncoder


async def open_embedder(spec: EmbedderSpec) -> BatchedEncoder:
    return BatchedEncoder(spec, spec.batch_wait_timeout_ms / 1000)
