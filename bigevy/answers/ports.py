"""What answering an escalation needs from the rest of bigEVY: a retriever and a generator.

The answer service depends on these two protocols only, so it can be built in one process with
the real knowledge service and a model server (tests/unit/test_answer_service.py), and behind the
gateway with Serve handles to the same classes. Both speak bigEVY's own records, not wire
models: HTTP is the route's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bigevy.config import ModelSpec
from bigevy.knowledge.records import Hit, SearchFilters, SearchMode


class Retriever(Protocol):
    """The knowledge base: `KnowledgeService` in-process, or its deployment through a handle.

    It also keeps what is built from answers, beside the one writer of documents, which drops
    them in the same call that changes a source: the answer cache (bigevy/answers/cache.py)
    and the FAQ.
    """

    async def search(
        self, query: str, mode: SearchMode, filters: SearchFilters, k: int
    ) -> list[Hit]:
        """The best `k` documents' passages for `query`, best first."""
        ...

    async def get(self, document_id: str) -> dict[str, Any]:
        """The document's fields; raises `NotFound` if there is none."""
        ...

    async def cached_answer(self, key: dict[str, Any], question: str) -> dict[str, Any] | None: ...

    async def observe_question(
        self,
        question: str,
        answer: str,
        grounded: bool,
        region: str,
        language: str,
        sources: list[str],
    ) -> list[str]:
        """Count an escalated question towards its region's FAQ (bigevy/knowledge/faq.py)."""
        ...

    async def remember_answer(
        self,
        key: dict[str, Any],
        question: str,
        answer: dict[str, Any],
        sources: list[str],
        asked_at: float,
    ) -> bool: ...


@dataclass(frozen=True)
class Written:
    text: str
    model: str  # the id of the model that wrote it


class Generator(Protocol):
    """The language models: which one answers, and writing with it."""

    def spec(self, model: str | None) -> ModelSpec:
        """The model's configuration (None: the default); raises `ModelNotFound`."""
        ...

    async def write(
        self, model: str | None, system: str, user: str, max_tokens: int | None
    ) -> Written:
        """The model's reply to one system and one user message (never streamed)."""
        ...
