"""The EVY prototype's `/llm/generate` and `/search`, answered by today's services."""

from __future__ import annotations

import time

from bigevy.http.knowledge.protocol import SearchRequest
from bigevy.http.knowledge.serving import KnowledgeGateway
from bigevy.http.legacy.protocol import (
    LegacyGenerateRequest,
    LegacyGenerateResponse,
    LegacySearchRequest,
    LegacySearchResponse,
)
from bigevy.http.openai.protocol import ChatCompletion, ChatCompletionRequest, ChatMessage
from bigevy.http.openai.serving import OpenAIService
from bigevy.serving.profiles import system_prompt


class LegacyService:
    def __init__(self, llm: OpenAIService, knowledge: KnowledgeGateway) -> None:
        self.llm = llm
        self.knowledge = knowledge

    async def generate(self, request: LegacyGenerateRequest) -> LegacyGenerateResponse:
        started = time.perf_counter()
        user = request.prompt
        if request.context and request.context.strip():
            user = f"Context:\n{request.context.strip()}\n\nQuestion: {request.prompt}"
        reply = await self.llm.chat(
            ChatCompletionRequest(
                model=request.model,
                messages=[
                    ChatMessage(role="system", content=system_prompt("general")),
                    ChatMessage(role="user", content=user),
                ],
                max_tokens=request.max_length,
                temperature=request.temperature,
            )
        )
        assert isinstance(reply, ChatCompletion)  # not streamed
        return LegacyGenerateResponse(
            response=reply.choices[0].message.content,
            model_used=reply.model,
            tokens_used=reply.usage.total_tokens,
            processing_time=round(time.perf_counter() - started, 4),
        )

    async def search(self, request: LegacySearchRequest) -> LegacySearchResponse:
        found = await self.knowledge.search(
            SearchRequest(
                query=request.query,
                top_k=request.top_k,
                categories=request.filter_values("category"),
                sources=request.filter_values("source"),
                regions=request.filter_values("region"),
                languages=request.filter_values("language"),
            )
        )
        return LegacySearchResponse(
            documents=[hit.text for hit in found.hits],
            scores=[hit.score for hit in found.hits],
            metadata=[
                {
                    "document_id": hit.citation.document_id,
                    "chunk_id": hit.chunk_id,
                    "title": hit.citation.title,
                    "source": hit.citation.source,
                    "url": hit.citation.url,
                    "category": hit.category,
                }
                for hit in found.hits
            ],
        )
