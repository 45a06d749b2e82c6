"""Extractive answers in-process (no Ray): the real embedding model on the real starter pack."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bigevy.answers.compose import Composer, source_sentences
from bigevy.answers.sentences import prose_sentences
from bigevy.answers.sms import segment_count
from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read
from bigevy.knowledge.records import Hit

DOCS = {r.document["id"]: r.document for r in read(STARTER_KNOWLEDGE, {}) if r.document}


def hit(doc_id: str, text: str | None = None) -> Hit:
    """A passage as the knowledge base returns it: the title line, then the text."""
    doc = DOCS[doc_id]
    return Hit(
        chunk_id=f"{doc_id}#0",
        document_id=doc_id,
        title=doc["title"],
        text=f"{doc['title']}\n{text or doc['text']}",
        url="",
        category=doc["category"],
        source=doc["source"],
        score=1.0,
        similarity=0.5,
    )


class RealEmbedder:
    def __init__(self) -> None:
        self.model = Embedder(EmbedderSpec())
        self.calls: list[list[str]] = []

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        self.calls.append(texts)
        return self.model.encode_array(texts), 0


@pytest.fixture(scope="module")
def embedder() -> RealEmbedder:
    return RealEmbedder()


def test_candidates_are_whole_sentences_once_without_the_title() -> None:
    text = DOCS["dehydration"]["text"]
    overlapping = [hit("dehydration"), hit("dehydration", text[len(text) // 2 :])]
    found = source_sentences(overlapping)
    texts = [s.text for s in found]
    assert len(texts) == len(set(texts))
    assert "Diarrhoea and dehydration" not in texts  # the title line a chunk opens with
    assert all(s.text in prose_sentences(text) for s in found if s.passage == 0)
    assert all(s.scored == s.text and s.hit.document_id == "dehydration" for s in found)


def test_a_translation_is_read_and_its_english_scored() -> None:
    (found, *_) = source_sentences([hit("burns")], [hit("sw/burns")])
    assert found.text == prose_sentences(DOCS["sw/burns"]["text"])[0]
    assert found.scored == prose_sentences(DOCS["burns"]["text"])[0]
    assert found.hit.document_id == "sw/burns"


def test_the_sms_is_the_first_thing_to_do_and_fits(embedder: RealEmbedder) -> None:
    composer = Composer(embedder)
    question = "My child has diarrhoea, what do I do?"
    composed = asyncio.run(composer.compose(question, [hit("dehydration"), hit("heat")], 1))
    assert composed is not None
    assert "oral rehydration salts" in composed.sms and segment_count(composed.sms) == 1
    source = prose_sentences(DOCS["dehydration"]["text"])
    assert all(s.text in source for s in composed.sentences)  # nothing but the source's own
    positions = [s.position for s in composed.sentences]
    assert positions == sorted(positions)  # read in the document's order
    # The same passages again are not embedded again: only a new question is.
    asyncio.run(composer.compose("What do I give a child with diarrhoea?", [hit("dehydration")], 1))
    assert embedder.calls[-1] == ["What do I give a child with diarrhoea?"]


def test_a_best_sentence_too_long_for_the_sms_is_cut_not_skipped(embedder: RealEmbedder) -> None:
    long = (
        "Press firmly on the wound with a clean cloth or your hand and keep pressing, and if "
        "blood soaks through do not remove the cloth but add more on top and press harder."
    )
    passage = hit("bleeding", f"{long} Keep the person warm.")
    composed = asyncio.run(Composer(embedder).compose("how to stop bleeding", [passage], 1))
    assert composed is not None and len(long) > 160
    assert composed.sms.startswith(long[:100]) and composed.sms.endswith("...")
    assert segment_count(composed.sms) == 1
