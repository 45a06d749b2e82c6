"""The answer cache in-process: matching by meaning under a key, dropping, its size bound."""

from __future__ import annotations

import numpy as np
import pytest

from bigevy.answers.cache import AnswerCache
from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder

KEY = {"region": "KE", "language": "en", "segments": 1}


@pytest.fixture(scope="module")
def embed() -> Embedder:
    return Embedder(EmbedderSpec())


def vector(embed: Embedder, text: str) -> np.ndarray:
    return embed.encode_array([text])[0]


def ask(cache: AnswerCache, embed: Embedder, question: str, key: dict = KEY) -> dict | None:
    return cache.lookup(key, question, vector(embed, question))


def keep(cache: AnswerCache, embed: Embedder, question: str, answer: dict, sources: list) -> None:
    cache.store(KEY, question, vector(embed, question), answer, sources)


def test_a_rewording_is_answered_again_and_another_question_is_not(embed: Embedder) -> None:
    cache = AnswerCache(max_bytes=1 << 20, similarity=0.7, overlap=1.0)
    answer = {"sms": "Ambulance: 999."}
    keep(cache, embed, "What is the ambulance number in Kenya?", answer, ["numbers-ke"])
    assert ask(cache, embed, "what is the ambulance number in kenya") == answer
    assert ask(cache, embed, "Kenya: what is the number of the ambulance?") == answer
    assert ask(cache, embed, "What is the ambulance number in Kenya at night?") is None
    # A sibling: its cosine is above 0.9, but it asks for another service.
    assert ask(cache, embed, "What is the police number in Kenya?") is None
    assert ask(cache, embed, "How do I treat a burn?") is None
    keep(cache, embed, "dar agua al niño con diarrea", {"sms": "Sí."}, ["dehydration"])
    assert ask(cache, embed, "no dar agua al niño con diarrea") is None  # the opposite
    other_region = {**KEY, "region": "GH"}  # the same words under another key: not the same
    assert ask(cache, embed, "What is the ambulance number in Kenya?", other_region) is None
    assert cache.stats() | {"bytes": 0} == {"entries": 2, "bytes": 0, "hits": 2, "misses": 5}


def test_an_answer_goes_with_any_of_its_sources(embed: Embedder) -> None:
    cache = AnswerCache(max_bytes=1 << 20, similarity=0.9, overlap=0.9)
    keep(
        cache, embed, "How do I make water safe to drink?", {"sms": "Boil it."}, ["water", "flood"]
    )
    keep(cache, embed, "What do I put on a burn?", {"sms": "Cool it."}, ["burns"])
    assert cache.drop_citing(["flood"]) == 1
    assert ask(cache, embed, "How do I make water safe to drink?") is None
    assert cache.stats()["entries"] == 1


def test_the_least_recently_used_go_when_the_cache_is_full(embed: Embedder) -> None:
    questions = [f"question number {i} about water" for i in range(3)]
    size = vector(embed, questions[0]).nbytes + 400
    cache = AnswerCache(max_bytes=2 * size, similarity=0.999, overlap=1.0)
    for i, question in enumerate(questions[:2]):
        keep(cache, embed, question, {"n": i}, ["doc"])
    assert ask(cache, embed, questions[0]) == {"n": 0}  # now the most recently used
    keep(cache, embed, questions[2], {"n": 2}, ["doc"])
    assert ask(cache, embed, questions[1]) is None and ask(cache, embed, questions[0]) == {"n": 0}
    assert cache.stats()["bytes"] <= cache.max_bytes
