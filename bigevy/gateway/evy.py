"""Answering a lilEVY escalation: retrieve, ground the prompt, generate, fit the SMS."""

from __future__ import annotations

import time

from bigevy.api.knowledge import EvyAnswer, EvyQuery, SearchRequest
from bigevy.api.openai import ChatCompletion, ChatCompletionRequest, ChatMessage
from bigevy.gateway.knowledge import KnowledgeGateway
from bigevy.gateway.service import OpenAIService
from bigevy.serving.profiles import system_prompt
from bigevy.sms import fit_sms

GROUNDING = (
    "Answer using the numbered sources below when they are relevant, and say so when they "
    "do not answer the question. Never invent phone numbers or facts."
)
PASSAGE_CHARS = 600


class EvyService:
    def __init__(self, llm: OpenAIService, knowledge: KnowledgeGateway) -> None:
        self.llm = llm
        self.knowledge = knowledge

    async def query(self, query: EvyQuery) -> EvyAnswer:
        started = time.perf_counter()
        system = f"{system_prompt(query.profile)}\n\n{GROUNDING}"  # unknown profile: 400 first
        regions = [query.region, "global"] if query.region else []
        found = await self.knowledge.search(
            SearchRequest(
                query=query.message, top_k=query.top_k, regions=regions, languages=[query.language]
            )
        )
        retrieved = time.perf_counter()
        # One line per passage, whitespace collapsed: small models copy line breaks and
        # headings into their answer (seen with SmolLM2-135M).
        sources = "\n".join(
            f"[{i}] {' '.join(hit.text.split())[:PASSAGE_CHARS]}"
            for i, hit in enumerate(found.hits, 1)
        )
        user = f"Sources:\n{sources}\n\nQuestion: {query.message}" if sources else query.message
        reply = await self.llm.chat(
            ChatCompletionRequest(
                model=query.model,
                messages=[
                    ChatMessage(role="system", content=system),
                    ChatMessage(role="user", content=user),
                ],
                max_tokens=query.max_tokens,
                temperature=0.2,
            )
        )
        assert isinstance(reply, ChatCompletion)  # not streamed
        answer = reply.choices[0].message.content.strip()
        sms = fit_sms(answer, query.max_sms_segments)
        done = time.perf_counter()
        citations, seen = [], set()
        for hit in found.hits:
            if hit.citation.document_id not in seen:
                seen.add(hit.citation.document_id)
                citations.append(hit.citation)
        return EvyAnswer(
            answer=answer,
            sms=sms.text,
            sms_segments=sms.segments,
            sms_encoding=sms.encoding,
            citations=citations,
            model=reply.model,
            timings={
                "retrieval_ms": round((retrieved - started) * 1000, 1),
                "generation_ms": round((done - retrieved) * 1000, 1),
                "total_ms": round((done - started) * 1000, 1),
            },
        )
