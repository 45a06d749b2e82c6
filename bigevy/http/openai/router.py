"""The OpenAI-compatible routes: models, chat completions and completions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from bigevy.fleet.roles import ANY_ROLE
from bigevy.http.access import allow
from bigevy.http.errors import ERRORS
from bigevy.http.openai.protocol import (
    ChatCompletion,
    ChatCompletionRequest,
    Completion,
    CompletionRequest,
    ModelCard,
    ModelList,
)
from bigevy.http.services import Svc

router = APIRouter(tags=["openai"], responses=ERRORS, dependencies=[allow(ANY_ROLE)])


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """Server-sent events, unbuffered by any proxy on the way."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/v1/models", response_model=ModelList)
async def list_models(s: Svc) -> ModelList:
    return s.openai.list_models()


@router.get("/v1/models/{model_id}", response_model=ModelCard)
async def get_model(s: Svc, model_id: str) -> ModelCard:
    return s.openai.get_model(model_id)


@router.post("/v1/chat/completions", response_model=ChatCompletion)
async def chat_completions(s: Svc, request: ChatCompletionRequest) -> Any:
    """Chat; `stream: true` answers with server-sent events."""
    result = await s.openai.chat(request)
    return result if isinstance(result, ChatCompletion) else event_stream(result)


@router.post("/v1/completions", response_model=Completion)
async def completions(s: Svc, request: CompletionRequest) -> Any:
    result = await s.openai.completions(request)
    return result if isinstance(result, Completion) else event_stream(result)
