"""The logic behind the OpenAI-compatible routes, independent of Ray and of HTTP.

It talks to models through `ModelClient`s: a Serve deployment handle in production, a
`ModelServer` in-process in tests of this class alone. It never knows the engine.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any, Protocol

from bigevy.config import MAX_OUTPUT_TOKENS, ModelSpec, Settings
from bigevy.errors import InvalidRequest, ModelNotFound
from bigevy.http.admin.protocol import ModelStatus, Readiness
from bigevy.http.openai.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ModelCard,
    ModelList,
    Usage,
    model_dump_sse,
)
from bigevy.http.serve_status import IN_PROCESS, DeploymentState, DeploymentView
from bigevy.ops.model_files import max_seq_length
from bigevy.serving.engine import GenerationEvent, GenerationRequest
from bigevy.serving.profiles import apply_profile

log = logging.getLogger(__name__)

#: How long admin/readiness wait for a replica to describe itself before using the last answer.
DESCRIBE_TIMEOUT_S = 3.0


class ModelClient(Protocol):
    """How the gateway reaches one model, wherever its replicas run."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]: ...

    async def describe(self) -> dict[str, Any]: ...


class OpenAIService:
    def __init__(
        self,
        settings: Settings,
        models: Mapping[str, ModelClient],
        deployments: DeploymentView | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.deployments = deployments
        self.started = int(time.time())
        self._last_described: dict[str, dict[str, Any]] = {}

    # -- requests -------------------------------------------------------------------------

    def resolve(self, model_id: str | None) -> tuple[ModelSpec, ModelClient]:
        model_id = model_id or self.settings.default_model
        spec = self.settings.model(model_id or "")
        if spec is None or model_id not in self.models:
            raise ModelNotFound(
                f"The model {model_id!r} does not exist. Available: "
                f"{', '.join(m.id for m in self.settings.models)}",
                param="model",
            )
        return spec, self.models[model_id]

    @staticmethod
    def _generation(
        request: ChatCompletionRequest | CompletionRequest, spec: ModelSpec, request_id: str
    ) -> GenerationRequest:
        if request.n != 1:
            raise InvalidRequest("only n=1 is supported", param="n")
        max_tokens = request.max_tokens
        if isinstance(request, ChatCompletionRequest) and request.max_completion_tokens:
            max_tokens = request.max_completion_tokens
        if max_tokens is not None and not 1 <= max_tokens <= MAX_OUTPUT_TOKENS:
            raise InvalidRequest(
                f"max_tokens must be between 1 and {MAX_OUTPUT_TOKENS}, got {max_tokens}",
                param="max_tokens",
                code="invalid_max_tokens",
            )
        return GenerationRequest(
            request_id=request_id,
            max_tokens=max_tokens,
            temperature=spec.sampling.temperature
            if request.temperature is None
            else request.temperature,
            top_p=spec.sampling.top_p if request.top_p is None else request.top_p,
            stop=request.stop_list,
            seed=request.seed,
            repeat_penalty=request.repetition_penalty,
        )

    async def _open(
        self, client: ModelClient, generation: GenerationRequest
    ) -> tuple[GenerationEvent, AsyncIterator[GenerationEvent]]:
        """Start a generation and wait for its `start` event, so errors come before any byte."""
        stream = client.generate(generation)
        try:
            first = await anext(stream)
        except BaseException:
            await stream.aclose()
            raise
        if first.kind == "error" and first.error is not None:
            await stream.aclose()
            raise first.error
        return first, stream

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion | AsyncIterator[str]:
        spec, client = self.resolve(request.model)
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        generation = self._generation(request, spec, request_id)
        messages = [
            {"role": "system" if m.role == "developer" else m.role, "content": str(m.content)}
            for m in request.messages
        ]
        generation.messages = apply_profile(messages, request.profile)
        first, stream = await self._open(client, generation)
        created = int(time.time())
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return self._chat_sse(stream, request_id, created, spec.id, first, include_usage)
        text, end = await _collect(stream)
        return ChatCompletion(
            id=request_id,
            created=created,
            model=spec.id,
            choices=[
                ChatChoice(message=AssistantMessage(content=text), finish_reason=end.finish_reason)
            ],
            usage=_usage(first, end),
            profile=request.profile,
        )

    async def _chat_sse(
        self,
        stream: AsyncIterator[GenerationEvent],
        request_id: str,
        created: int,
        model: str,
        first: GenerationEvent,
        include_usage: bool,
    ) -> AsyncIterator[str]:
        def chunk(delta: ChatDelta, finish: str | None = None) -> str:
            return model_dump_sse(
                ChatCompletionChunk(
                    id=request_id,
                    created=created,
                    model=model,
                    choices=[ChatChunkChoice(delta=delta, finish_reason=finish)],
                )
            )

        async with aclosing(stream):
            yield chunk(ChatDelta(role="assistant", content=""))
            async for event in stream:
                if event.kind == "delta":
                    yield chunk(ChatDelta(content=event.text))
                elif event.kind == "end":
                    yield chunk(ChatDelta(), event.finish_reason)
                    if include_usage:
                        yield model_dump_sse(
                            ChatCompletionChunk(
                                id=request_id,
                                created=created,
                                model=model,
                                choices=[],
                                usage=_usage(first, event),
                            )
                        )
            yield "data: [DONE]\n\n"

    async def completions(self, request: CompletionRequest) -> Completion | AsyncIterator[str]:
        spec, client = self.resolve(request.model)
        request_id = f"cmpl-{uuid.uuid4().hex}"
        generation = self._generation(request, spec, request_id)
        generation.prompt = request.prompt_text
        first, stream = await self._open(client, generation)
        created = int(time.time())
        prefix = request.prompt_text if request.echo else ""
        if request.stream:
            return self._completion_sse(stream, request_id, created, spec.id, prefix)
        text, end = await _collect(stream)
        return Completion(
            id=request_id,
            created=created,
            model=spec.id,
            choices=[CompletionChoice(text=prefix + text, finish_reason=end.finish_reason)],
            usage=_usage(first, end),
        )

    async def _completion_sse(
        self,
        stream: AsyncIterator[GenerationEvent],
        request_id: str,
        created: int,
        model: str,
        prefix: str,
    ) -> AsyncIterator[str]:
        def chunk(text: str, finish: str | None = None) -> str:
            return model_dump_sse(
                Completion(
                    id=request_id,
                    created=created,
                    model=model,
                    choices=[CompletionChoice(text=text, finish_reason=finish)],
                )
            )

        async with aclosing(stream):
            if prefix:
                yield chunk(prefix)
            async for event in stream:
                if event.kind == "delta":
                    yield chunk(event.text)
                elif event.kind == "end":
                    yield chunk("", event.finish_reason)
            yield "data: [DONE]\n\n"

    # -- models and operations ------------------------------------------------------------

    def _card(self, spec: ModelSpec) -> ModelCard:
        return ModelCard(
            id=spec.id,
            created=self.started,
            context_length=spec.context_length,
            engine=spec.engine,
            description=spec.description,
        )

    @functools.cached_property
    def _embedder_card(self) -> ModelCard:
        spec = self.settings.embedder
        return ModelCard(
            id=spec.id,
            created=self.started,
            kind="embedding",
            context_length=max_seq_length(spec.source),
            engine="sentence_transformers",
            description="Embeds texts for /v1/embeddings and the knowledge base's search.",
        )

    def list_models(self) -> ModelList:
        """Every model served: the chat models, then the embedding model (as vLLM lists all)."""
        return ModelList(data=[*map(self._card, self.settings.models), self._embedder_card])

    def get_model(self, model_id: str) -> ModelCard:
        if model_id == self.settings.embedder.id:
            return self._embedder_card
        spec, _ = self.resolve(model_id)
        return self._card(spec)

    async def _describe(self, spec: ModelSpec, deployment: DeploymentState) -> dict[str, Any]:
        """A replica's own report; else what Serve says (loading, failed) or the last report.

        A replica answers only once its model is loaded; while none runs, a call would wait,
        so it is not made. A busy replica may not answer in time: its last report stands.
        """
        if deployment.replicas.get("RUNNING"):
            try:
                found = await asyncio.wait_for(
                    self.models[spec.id].describe(), timeout=DESCRIBE_TIMEOUT_S
                )
            except Exception as exc:  # a busy or dead replica is reported, not raised
                log.warning("describe(%s) failed: %s", spec.id, exc)
            else:
                self._last_described[spec.id] = found
                return found
        state = deployment.model_state
        if state == "unknown" and spec.id in self._last_described:
            return self._last_described[spec.id]
        return {"state": state, "error": deployment.message or None}

    async def _views(self) -> dict[str, DeploymentState]:
        """Serve's status (a controller round trip, kept off the event loop)."""
        if self.deployments is None:
            return {}
        return await asyncio.to_thread(self.deployments.deployments)

    async def model_status(
        self, views: dict[str, DeploymentState] | None = None
    ) -> list[ModelStatus]:
        views = await self._views() if views is None else views
        deployments = [views.get(m.deployment_name, IN_PROCESS) for m in self.settings.models]
        reports = await asyncio.gather(
            *(self._describe(m, d) for m, d in zip(self.settings.models, deployments, strict=True))
        )
        return [
            ModelStatus(
                **{
                    **report,
                    "id": spec.id,
                    "engine": spec.engine,
                    "context_length": spec.context_length,
                    "deployment": spec.deployment_name,
                    "deployment_status": deployment.status,
                    "replicas": deployment.replicas,
                }
            )
            for spec, deployment, report in zip(
                self.settings.models, deployments, reports, strict=True
            )
        ]

    async def readiness(self) -> Readiness:
        views = await self._views()
        statuses = await self.model_status(views)
        deployment_status = {name: d.status for name, d in views.items()}
        ready = all(s.state == "ready" for s in statuses) and all(
            status == "HEALTHY" for status in deployment_status.values()
        )
        return Readiness(
            ready=ready,
            models={s.id: s.state for s in statuses},
            deployments=deployment_status,
            checked_at=time.time(),
        )


async def _collect(stream: AsyncIterator[GenerationEvent]) -> tuple[str, GenerationEvent]:
    parts: list[str] = []
    end = GenerationEvent(kind="end", finish_reason="stop")
    async with aclosing(stream):
        async for event in stream:
            if event.kind == "delta":
                parts.append(event.text)
            elif event.kind == "end":
                end = event
    return "".join(parts), end


def _usage(first: GenerationEvent, end: GenerationEvent) -> Usage:
    prompt = first.prompt_tokens or end.prompt_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=end.completion_tokens,
        total_tokens=prompt + end.completion_tokens,
    )
