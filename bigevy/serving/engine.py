"""The contract every LLM engine honours, so the gateway never knows which one it talks to.

An engine is built from a `ModelSpec`, loads its weights in `start()`, and answers
`generate()` with an async stream of `GenerationEvent`s:

1. exactly one `start` event, after the request was validated against the model
   (prompt tokens counted; `ContextLengthExceeded` is raised *before* it, so callers can
   answer 400 before any byte of a stream is sent);
2. zero or more `delta` events, each carrying one or more new tokens of text;
3. exactly one `end` event with the finish reason (`stop`, `length` or `cancelled`) and
   token counts.

Closing the stream early (`aclose()`, task cancellation) must stop the generation promptly:
that is how a client that hangs up frees the model.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from bigevy.config import ModelSpec
from bigevy.errors import BigEvyError


@dataclass
class GenerationRequest:
    """What the gateway asks of a model. Exactly one of `prompt` and `messages` is set."""

    request_id: str
    max_tokens: int | None
    temperature: float
    top_p: float
    prompt: str | None = None
    messages: list[dict[str, str]] | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    repeat_penalty: float | None = None  # None: the model's configured default


@dataclass
class GenerationEvent:
    """One step of a generation. `error` events only travel between processes (see ModelServer)."""

    kind: Literal["start", "delta", "end", "error"]
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    error: BigEvyError | None = None


@dataclass
class EngineStats:
    """Counters an engine keeps about itself, for `/v1/admin/models`."""

    requests: int = 0
    active: int = 0
    cancelled: int = 0
    tokens_generated: int = 0
    decode_seconds: float = 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_generated / self.decode_seconds if self.decode_seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "active": self.active,
            "cancelled": self.cancelled,
            "tokens_generated": self.tokens_generated,
            "tokens_per_second": round(self.tokens_per_second, 2),
        }


class LLMEngine(abc.ABC):
    """One loaded model. Implementations: `LlamaCppEngine` (CPU), `VLLMEngine` (GPU)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.stats = EngineStats()

    @abc.abstractmethod
    async def start(self) -> None:
        """Load the weights. May take minutes for a big model; raises if it cannot."""

    @abc.abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        """Stream the events described in the module docstring."""

    @abc.abstractmethod
    async def check_health(self) -> None:
        """Raise if the engine can no longer serve (Serve then replaces the replica)."""

    @property
    def context_length(self) -> int:
        return self.spec.context_length
