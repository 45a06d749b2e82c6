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


def test_a_rewording_is_answered_again_and_another_question_is_not(embed: Embedder) -> None:
    cache = AnswerCache(max_bytes=1 << 20, similarity=0.85)
    answer = {"sms": "Boil water for 1 minute."}
    cache.store(KEY, vector(embed, "How do I make water safe to drink?"), answer, ["water"])
    assert cache.lookup(KEY, vector(embed, "how do i make water safe to drink")) == answer
    assert cache.lookup(KEY, vector(embed, "How do I treat a burn?")) is None
    other_region = {**KEY, "region": "GH"}  # the same words under another key: not the same
    assert cache.lookup(other_region, vector(embed, "How do I make water safe to drink?")) is None
    assert cache.stats() | {"bytes": 0} == {"entries": 1, "bytes": 0, "hits": 1, "misses": 2}


def test_an_answer_goes_with_any_of_its_sources(embed: Embedder) -> None:
    cache = AnswerCache(max_bytes=1 << 20, similarity=0.85)
    water = vector(embed, "How do I make water safe to drink?")
    cache.store(KEY, water, {"sms": "Boil it."}, ["water", "flood"])
    cache.store(KEY, vector(embed, "What do I put on a burn?"), {"sms": "Cool it."}, ["burns"])
    assert cache.drop_citing(["flood"]) == 1
    assert cache.lookup(KEY, water) is None
    assert cache.stats()["entries"] == 1


def test_the_least_recently_used_go_when_the_cache_is_full(embed: Embedder) -> None:
    questions = [f"question number {i} about water" for i in range(3)]
    vectors = [vector(embed, q) for q in questions]
    cache = AnswerCache(max_bytes=2 * (vectors[0].nbytes + 300), similarity=0.999)
    for i, v in enumerate(vectors[:2]):
        cache.store(KEY, v, {"n": i}, ["doc"])
    assert cache.lookup(KEY, vectors[0]) == {"n": 0}  # now the most recently used
    cache.store(KEY, vectors[2], {"n": 2}, ["doc"])
    assert cache.lookup(KEY, vectors[1]) is None and cache.lookup(KEY, vectors[0]) == {"n": 0}
    assert cache.stats()["bytes"] <= cache.max_bytes
