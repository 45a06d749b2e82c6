"""The escalation use case in one process, without Ray: the answer service over the real
knowledge service (LanceDB, the starter pack), the real embedding model and llama.cpp."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from bigevy.answers.grounding import quantities
from bigevy.answers.service import AnswerService
from bigevy.answers.sms import segment_count
from bigevy.config import KnowledgeSpec, ModelSpec, Settings
from bigevy.http.evy.protocol import EvyAnswer, EvyQuery
from bigevy.http.evy.writer import ChatWriter
from bigevy.http.openai.serving import OpenAIService
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.faq import FaqStore
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read
from bigevy.knowledge.records import DocumentIn
from bigevy.knowledge.service import KnowledgeService
from bigevy.knowledge.store import KnowledgeStore
from bigevy.serving.model_server import ModelServer

T = TypeVar("T")
GENERATIVE = "smollm2-generative"
DOCS = {r.document["id"]: r.document for r in read(STARTER_KNOWLEDGE, {}) if r.document}


class Vectors:
    """The embedding model as the composer calls it."""

    def __init__(self, model: Embedder) -> None:
        self.model = model

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        return self.model.encode_array(texts), 0


class InProcess:
    """The service and what it is built from, on one event loop."""

    def __init__(self, where: Path) -> None:
        self.loop = asyncio.new_event_loop()
        settings = Settings(data_dir=where)
        default = settings.models[0]
        generative = ModelSpec(
            **{**default.model_dump(), "id": GENERATIVE, "answers": "generative"}
        )
        self.settings = Settings(data_dir=where, models=[default, generative])
        embedder = Embedder(self.settings.embedder)
        spec = KnowledgeSpec()
        store = KnowledgeStore(
            str(where / "lancedb"),
            embedding_model=embedder.model_id,
            dimensions=embedder.dimensions,
            chunk_layout=layout(spec.chunk_size, spec.chunk_overlap),
        )

        async def embed(texts: list[str]) -> list[list[float]]:
            return embedder.encode(texts)

        faq = FaqStore(str(where / "lancedb"), embedder.model_id, embedder.dimensions)
        self.knowledge = KnowledgeService(store, embed, spec, faq=faq)
        self.run(self.knowledge.put_many([DocumentIn(**d) for d in DOCS.values()]))
        store.maintain()
        models = {m.id: ModelServer(m) for m in self.settings.models}
        self.run(self._start(models))
        self.service = AnswerService(
            ChatWriter(OpenAIService(self.settings, models)),
            self.knowledge,
            Vectors(embedder),
            self.settings.embedder.relevance_floor,
        )

    @staticmethod
    async def _start(models: dict[str, ModelServer]) -> None:
        for server in models.values():
            server.start()
            await server.wait_ready(timeout=120)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(work)

    def ask(self, message: str, enrolled: str | None = None, **fields: Any) -> EvyAnswer:
        query = EvyQuery(node_id="node-1", message=message, **fields)
        return self.run(self.service.query(query, enrolled))


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    built = InProcess(tmp_path_factory.mktemp("answers"))
    yield built
    built.loop.close()


def source_text(answer: EvyAnswer) -> str:
    return " ".join(DOCS[c.document_id]["text"] for c in answer.citations)


def test_an_extractive_answer_is_the_sources_own_sentences(app: InProcess) -> None:
    answer = app.ask("My child has diarrhoea, what do I do?", region="KE")
    assert answer.answer_mode == "extractive" and answer.model == "knowledge-base"
    assert "oral rehydration salts" in answer.sms and segment_count(answer.sms) == 1
    cited = {c.document_id for c in answer.citations}
    for sentence in answer.sentences:
        assert sentence.document_id in cited
        assert sentence.text in DOCS[sentence.document_id]["text"]


def test_a_swahili_emergency_gets_numbers_then_swahili_steps(app: InProcess) -> None:
    answer = app.ask("mtoto wangu hapumui msaada", region="KE", language="sw")
    assert answer.triage.emergency and answer.triage.kind == "medical"
    assert answer.sms.startswith("Piga simu 999") and segment_count(answer.sms) <= 1
    cited = [c.document_id for c in answer.citations]
    assert cited[:2] == ["emergency-numbers-ke", "sw/cpr"]
    steps = [s for s in answer.sentences if s.document_id == "sw/cpr"]
    assert steps and all(s.text in DOCS["sw/cpr"]["text"] for s in steps)


def test_a_generated_answer_keeps_only_what_its_sources_back(app: InProcess) -> None:
    answer = app.ask("How do I treat a burn?", model=GENERATIVE, max_tokens=80)
    assert answer.answer_mode in ("generative", "extractive") and answer.citations
    # No number, dose or time the cited documents do not give.
    assert quantities(answer.answer) <= quantities(source_text(answer))
    cited = {c.document_id for c in answer.citations}
    assert answer.sentences and all(s.document_id in cited for s in answer.sentences)


def test_a_question_nothing_covers_gets_no_verified_answer_in_its_language(
    app: InProcess,
) -> None:
    answer = app.ask("quelle est la capitale de la France ?", language="fr")
    assert answer.answer_mode == "none" and not answer.citations
    assert "vérifiée" in answer.sms


def test_an_answer_asked_again_comes_from_the_cache(app: InProcess) -> None:
    question = "how do I make river water safe to drink"
    first = app.ask(question)
    assert first.timings["cache_hit"] == 0.0 and first.citations

    async def cached() -> EvyAnswer:
        while True:  # the answer is cached after the reply, in the background
            again = await app.service.query(EvyQuery(node_id="node-2", message=question))
            if again.timings["cache_hit"]:
                return again
            await asyncio.sleep(0.05)

    again = app.run(asyncio.wait_for(cached(), timeout=30))
    assert again.sms == first.sms and again.citations == first.citations


def test_a_question_asked_often_ships_to_the_askers_region_as_an_faq(app: InProcess) -> None:
    question = "what should I do if my house is flooding"
    for _ in range(3):
        answer = app.ask(question, enrolled="Riverside", region="Riverside")
    assert answer.answer_mode == "extractive"

    async def published() -> list[dict[str, Any]]:
        while True:  # counted after the reply, in the background
            entries = await app.knowledge.faq_entries("Riverside", 10)
            if entries and entries[0]["published"]:
                return entries
            await asyncio.sleep(0.05)

    (entry,) = app.run(asyncio.wait_for(published(), timeout=30))
    assert entry["answer"] == answer.sms and "flood" in entry["sources"]
    assert app.run(app.knowledge.faq_entries("elsewhere", 10)) == []
