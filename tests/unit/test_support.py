"""The support check of a model's sentences, in-process with the real embedding model."""

from __future__ import annotations

import asyncio

import numpy as np

from bigevy.answers.support import SupportCheck, negated
from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read

DOCS = {r.document["id"]: r.document["text"] for r in read(STARTER_KNOWLEDGE, {}) if r.document}


def test_a_sentence_is_kept_only_where_a_passage_backs_it() -> None:
    model = Embedder(EmbedderSpec())

    async def embed(texts: list[str]) -> np.ndarray:
        return model.encode_array(texts)

    written = [
        "Cool the burn under cool, clean running water for 20 minutes.",  # the source's
        "Put butter or oil on the burn to soothe it.",  # the source says not to
        "Take paracetamol for the pain and rest in bed.",  # the source never says it
        "Give oral rehydration salts often, in small sips.",  # the second passage's
    ]
    found = asyncio.run(
        SupportCheck(embed).supported(written, [DOCS["burns"], DOCS["dehydration"]])
    )
    assert found == [0, None, None, 1]


def test_negations_in_every_language_nodes_ask_in() -> None:
    assert negated("Don't move the person.") and negated("Ne bougez pas.")
    assert negated("Kamwe usimpe maji.") and negated("Não dê água.")
    assert not negated("Give water often.") and not negated("Notify the clinic.")
