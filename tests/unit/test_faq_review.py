"""`faq.review: true`: an FAQ answer ships to nodes only once an operator has approved it, and
a changed answer needs approving again. The knowledge service in-process (real LanceDB, the
real embedding model), as its deployment runs it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bigevy.config import EmbedderSpec, FaqSpec, KnowledgeSpec
from bigevy.errors import Conflict
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.faq import FaqStore
from bigevy.knowledge.records import DocumentIn, SearchFilters
from bigevy.knowledge.service import KnowledgeService
from bigevy.knowledge.store import KnowledgeStore

WATER = DocumentIn(
    "water",
    "Safe water",
    "Boil water for one minute before drinking it. Store it in a clean covered container.",
    "healthcare",
    "local",
)
QUESTION = "how do I make water safe to drink"


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder(EmbedderSpec())


def service(where: Path, embedder: Embedder) -> KnowledgeService:
    spec = KnowledgeSpec(faq=FaqSpec(review=True, min_count=2))
    uri = str(where / "lancedb")
    store = KnowledgeStore(
        uri,
        embedding_model=embedder.model_id,
        dimensions=embedder.dimensions,
        chunk_layout=layout(spec.chunk_size, spec.chunk_overlap),
    )

    async def embed(texts: list[str]) -> list[list[float]]:
        return embedder.encode(texts)

    faq = FaqStore(uri, embedder.model_id, embedder.dimensions)
    return KnowledgeService(store, embed, spec, faq=faq)


def test_an_answer_ships_only_once_approved_and_again_once_changed(
    tmp_path: Path, embedder: Embedder
) -> None:
    knowledge = service(tmp_path, embedder)

    async def scenario() -> None:
        await knowledge.put(WATER)

        async def ask(answer: str) -> list[str]:
            return await knowledge.observe_question(
                QUESTION, answer, True, "Faq Town", "en", ["water"]
            )

        async def shipped() -> list[str]:
            filters = SearchFilters(categories=["faq"], regions=["Faq Town"])
            rows, _ = await knowledge.list_documents(filters, 0, 10)
            return [r["text"] for r in rows]

        boil = "Boil water for one minute before drinking it."
        await ask(boil)
        assert await ask(boil) == []  # asked often enough, but not approved
        (waiting,) = await knowledge.faq_entries("Faq Town", 10, awaiting_review=True)
        assert waiting["answer"] == boil and not waiting["published"]
        approved = await knowledge.approve_faq(waiting["id"])
        assert approved["published"] and not approved["awaiting_review"]
        assert await shipped() == [boil]
        assert await knowledge.faq_entries("Faq Town", 10, awaiting_review=True) == []

        # Another backed answer replaces it: the new text waits for its own approval, and
        # nothing unapproved ships meanwhile.
        store = "Store it in a clean covered container."
        await ask(store)
        (again,) = await knowledge.faq_entries("Faq Town", 10, awaiting_review=True)
        assert again["answer"] == store and await shipped() == []

        # Withdrawn (its source changed), there is nothing to approve until asked again.
        await knowledge.put(DocumentIn(**{**WATER.__dict__, "text": "Boil it for 3 minutes."}))
        with pytest.raises(Conflict):
            await knowledge.approve_faq(again["id"])

    asyncio.run(scenario())
