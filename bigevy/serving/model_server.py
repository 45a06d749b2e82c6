"""A model replica: one engine, loaded in the background so its state can be watched."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, Literal

import psutil

from bigevy import metrics
from bigevy.config import ModelSpec
from bigevy.errors import BigEvyError, ModelFailed, ModelLoading
from bigevy.serving.engine import GenerationEvent, GenerationRequest, LLMEngine

log = logging.getLogger(__name__)

ModelState = Literal["loading", "ready", "failed"]


def engine_class(spec: ModelSpec) -> type[LLMEngine]:
    if spec.engine == "vllm":
        from bigevy.serving.vllm import VLLMEngine

        return VLLMEngine
    from bigevy.serving.llamacpp import LlamaCppEngine

    return LlamaCppEngine


class ModelServer:
    """Owns one engine. `start()` returns at once; the weights load in a background task.

    While loading, requests get `ModelLoading` (503 + Retry-After) rather than hanging; a
    failed load is reported by `describe()` and by `check_health()`, which makes Serve
    replace the replica.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        engine_cls: type[LLMEngine] | None = None,
        retry_after: int = 2,
        replica: str | None = None,
    ) -> None:
        self.spec = spec
        #: The Serve replica this runs in, named in `describe()`.
        self.replica = replica
        self.retry_after = retry_after
        self.engine = (engine_cls or engine_class(spec))(spec)
        self.state: ModelState = "loading"
        self.error: str | None = None
        self.load_seconds: float | None = None
        self._load_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._load_task is None:
            self._load_task = asyncio.get_running_loop().create_task(self._load())

    async def _load(self) -> None:
        started = time.monotonic()
        try:
            await self.engine.start()
        except Exception as exc:
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("model %s failed to load", self.spec.id)
        else:
            self.state = "ready"
            log.info("model %s ready in %.1fs", self.spec.id, time.monotonic() - started)
        self.load_seconds = round(time.monotonic() - started, 3)

    async def wait_ready(self, timeout: float | None = None) -> None:
        self.start()
        assert self._load_task is not None
        await asyncio.wait_for(asyncio.shield(self._load_task), timeout)
        self._raise_unless_ready()

    def _raise_unless_ready(self) -> None:
        if self.state == "loading":
            raise ModelLoading(
                f"model {self.spec.id!r} is still loading", retry_after=self.retry_after
            )
        if self.state == "failed":
            raise ModelFailed(
                f"model {self.spec.id!r} failed to load: {self.error}",
                retry_after=self.retry_after,
            )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        """The engine's stream; a refusal (bad request, still loading) becomes an `error` event.

        Sending expected refusals as data rather than raising keeps them out of Ray's error
        logs and task-error wrapping; the gateway raises them again.
        """
        started = time.monotonic()
        try:
            self._raise_unless_ready()
            stream = self.engine.generate(request)
            first = await anext(stream)
        except BigEvyError as refusal:
            yield GenerationEvent(kind="error", error=refusal)
            return
        async with aclosing(stream):
            yield first
            async for event in _timed(self.spec.id, stream, started):
                yield event

    async def check_health(self) -> None:
        if self.state == "failed":
            raise RuntimeError(f"model {self.spec.id} failed to load: {self.error}")
        await self.engine.check_health()

    async def describe(self) -> dict[str, Any]:
        """This replica's view of its model, for `/v1/admin/models` and `/readyz`."""
        return {
            "id": self.spec.id,
            "engine": self.spec.engine,
            "state": self.state,
            "error": self.error,
            "load_seconds": self.load_seconds,
            "context_length": self.engine.context_length,
            "memory_bytes": psutil.Process(os.getpid()).memory_info().rss,
            **self.engine.stats.as_dict(),
            **({"replica": self.replica} if self.replica else {}),
        }


async def _timed(
    model: str, stream: AsyncIterator[GenerationEvent], started: float
) -> AsyncIterator[GenerationEvent]:
    """The stream, measured: time to the first text, and the decode rate once it ends."""
    tags = {"model": model}
    first: float | None = None
    async for event in stream:
        if event.kind == "delta" and first is None:
            first = time.monotonic()
            metrics.MODEL_TTFT.observe(first - started, tags=tags)
        elif event.kind == "end":
            if event.prompt_tokens:
                metrics.MODEL_TOKENS.inc(event.prompt_tokens, tags={**tags, "kind": "prompt"})
            if event.completion_tokens:
                metrics.MODEL_TOKENS.inc(
                    event.completion_tokens, tags={**tags, "kind": "completion"}
                )
            decoding = time.monotonic() - (first or started)
            if event.completion_tokens > 1 and decoding > 0:
                rate = event.completion_tokens / decoding
                metrics.MODEL_TOKENS_PER_SECOND.observe(rate, tags=tags)
        yield event
