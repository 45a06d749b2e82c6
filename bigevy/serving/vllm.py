"""GPU engine: vLLM through Ray Serve LLM (`ray.serve.llm.LLMServer` / `LLMConfig`).

NOT EXECUTED on the development machines (no GPU, vLLM not installable there). The config
translation (`llm_config_dict`) and the deployment resources (`gpu_placement`) are tested;
the code that imports `ray.serve.llm` only runs on a GPU host with `bigevy[gpu]` installed.

`ray.serve.llm` cannot be imported without vLLM, so every import of it stays inside
`start()`; building the Serve app graph for a GPU config never needs it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from bigevy.config import ModelSpec
from bigevy.errors import ContextLengthExceeded, InvalidRequest, ModelLoading
from bigevy.serving.engine import GenerationEvent, GenerationRequest, LLMEngine
from bigevy.serving.markup import defused


def llm_config_dict(spec: ModelSpec) -> dict[str, Any]:
    """The `ray.serve.llm.LLMConfig` for a registry entry, as plain data."""
    engine_kwargs = {"max_model_len": spec.context_length, **spec.engine_kwargs}
    config: dict[str, Any] = {
        "model_loading_config": {"model_id": spec.id, "model_source": spec.source},
        "engine_kwargs": engine_kwargs,
    }
    if spec.deployment.accelerator_type:
        config["accelerator_type"] = spec.deployment.accelerator_type
    return config


def tensor_parallel_size(spec: ModelSpec) -> int:
    return int(spec.engine_kwargs.get("tensor_parallel_size", 1)) * int(
        spec.engine_kwargs.get("pipeline_parallel_size", 1)
    )


def gpu_placement(spec: ModelSpec) -> dict[str, Any]:
    """Serve options reserving the GPUs vLLM's workers will use, one bundle per GPU.

    Mirrors what `LLMServer.get_deployment_options` does: the replica's own bundle first,
    then one GPU bundle per tensor/pipeline-parallel worker, packed onto as few hosts as possible.
    """
    gpu_bundle: dict[str, float] = {"GPU": 1.0}
    if spec.deployment.accelerator_type:
        gpu_bundle[f"accelerator_type:{spec.deployment.accelerator_type}"] = 0.001
    return {
        "ray_actor_options": {"num_cpus": spec.deployment.num_cpus},
        "placement_group_bundles": [{"CPU": spec.deployment.num_cpus}]
        + [dict(gpu_bundle) for _ in range(tensor_parallel_size(spec))],
        "placement_group_strategy": "STRICT_PACK" if tensor_parallel_size(spec) <= 8 else "PACK",
    }


class VLLMEngine(LLMEngine):
    """Adapts Ray Serve LLM's `LLMServer` (vLLM inside) to bigEVY's engine contract."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self._server: Any = None

    async def start(self) -> None:
        from ray.serve.llm import LLMConfig, LLMServer

        server = LLMServer.sync_init(LLMConfig(**llm_config_dict(self.spec)))
        await server.start()
        self._server = server

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest

        if self._server is None:
            raise ModelLoading(f"model {self.spec.id!r} is still loading", retry_after=5)
        common: dict[str, Any] = {
            "model": self.spec.id,
            "max_tokens": request.max_tokens or self.spec.sampling.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "repetition_penalty": request.repeat_penalty or self.spec.sampling.repeat_penalty,
            "stop": request.stop or None,
            "seed": request.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if request.messages is not None:
            # vLLM renders and tokenizes the chat whole, special tokens on (markup.py).
            messages = [{**m, "content": defused(m["content"])} for m in request.messages]
            stream = await self._server.chat(ChatCompletionRequest(messages=messages, **common))
        else:
            stream = await self._server.completions(
                CompletionRequest(prompt=request.prompt or "", **common)
            )
        self.stats.requests += 1
        self.stats.active += 1
        started = False
        prompt_tokens = completion_tokens = 0
        finish: str | None = None
        try:
            async for batch in stream:
                for item in batch if isinstance(batch, list) else [batch]:
                    payload = _sse_payload(item)
                    if payload is None:
                        continue
                    usage = payload.get("usage") or {}
                    prompt_tokens = usage.get("prompt_tokens", prompt_tokens)
                    completion_tokens = usage.get("completion_tokens", completion_tokens)
                    if not started:
                        started = True
                        yield GenerationEvent(kind="start", prompt_tokens=prompt_tokens)
                    for choice in payload.get("choices", []):
                        delta = choice.get("delta", {}).get("content") or choice.get("text") or ""
                        if delta:
                            yield GenerationEvent(
                                kind="delta", text=delta, completion_tokens=completion_tokens
                            )
                        finish = choice.get("finish_reason") or finish
            self.stats.tokens_generated += completion_tokens
            yield GenerationEvent(
                kind="end",
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish,
            )
        finally:
            self.stats.active -= 1

    async def check_health(self) -> None:
        if self._server is not None:
            await self._server.check_health()


def _sse_payload(item: Any) -> dict[str, Any] | None:
    """One streamed item from LLMServer: an SSE string, or an ErrorResponse to raise."""
    if not isinstance(item, str):
        error = getattr(item, "error", item)
        message = getattr(error, "message", str(error))
        if "maximum context length" in message:
            raise ContextLengthExceeded(message, param="messages")
        raise InvalidRequest(message)
    data = item.strip().removeprefix("data:").strip()
    if not data or data == "[DONE]":
        return None
    return json.loads(data)
