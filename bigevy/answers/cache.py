"""Answers to questions asked before, reused for the same question reworded.

Many nodes escalate the same few questions ("how do I make water safe to drink", "how to make
water safe for drinking?"). An escalation that matches an earlier one is answered with that
answer, without retrieval, the composer or a model. A match needs the same key (region, place
named, language, profile, SMS budget and model: each changes the answer), an embedding cosine of
at least `similarity` between the questions, and most of the same words (`word_overlap`, the
Jaccard index of their content words: accents, case, order and small words aside). The cosine
alone cannot tell "ambulance number in Kenya" from "police number in Kenya", nor "2 drops"
from "4 drops" (all-MiniLM-L6-v2 puts such siblings above 0.92); the words can. Both thresholds
were set on labelled paraphrases with near-miss siblings (benchmarks/answer_cache.py) so that
no sibling was taken for a rewording: the cache catches repeats and light rewordings, not
paraphrases in other words.

An answer stays only while its sources do: the cache lives beside the knowledge base's one
writer, which drops every answer citing a document in the same call that changes or deletes
it. Only answers with sources are kept ("no verified answer" could be answered by a document
added later), and never emergencies, which are answered fresh. Its size is bounded in bytes;
the least recently used answers go first.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from bigevy.answers.sentences import comparable
from bigevy.answers.support import NEGATIONS

_WORDS = re.compile(r"[^\W\d_]+|\d+")


def content_words(text: str) -> frozenset[str]:
    """A question's words that carry its meaning: folded (case, accents), each by its first five
    letters ("mosquitos", "mosquito"); words of one or two letters left out, but not numbers
    nor negations ("no dar agua" asks the opposite of "dar agua")."""
    folded = comparable(text)
    return frozenset(
        w[:5] for w in _WORDS.findall(folded) if len(w) > 2 or w.isdigit() or w in NEGATIONS
    )


def word_overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


@dataclass(frozen=True)
class _Entry:
    key: str
    vector: np.ndarray
    words: frozenset[str]
    answer: dict[str, Any]
    sources: frozenset[str]
    size: int


class AnswerCache:
    def __init__(self, max_bytes: int, similarity: float, overlap: float) -> None:
        self.max_bytes = max_bytes
        self.similarity = similarity
        self.overlap = overlap
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # lookups and writes come from the replica's threads

    def lookup(
        self, key: dict[str, Any], question: str, vector: np.ndarray
    ) -> dict[str, Any] | None:
        """The answer to the closest earlier question under `key`, if close enough."""
        wanted, words = _key(key), content_words(question)
        with self._lock:
            scores = [
                (float(e.vector @ vector), i)
                for i, e in self._entries.items()
                if e.key == wanted and word_overlap(e.words, words) >= self.overlap
            ]
            score, best = max(scores, default=(-1.0, -1))
            if score < self.similarity:
                self.misses += 1
                return None
            self._entries.move_to_end(best)
            self.hits += 1
            return self._entries[best].answer

    def store(
        self,
        key: dict[str, Any],
        question: str,
        vector: np.ndarray,
        answer: dict[str, Any],
        sources: Iterable[str],
    ) -> None:
        """Keep `answer` (taken from the documents `sources`) for `key`'s questions like
        `question`; the least recently used go while the cache is over its size."""
        vector = np.asarray(vector, dtype=np.float32)
        size = vector.nbytes + len(json.dumps(answer)) + len(question) + 300  # 300: overhead
        entry = _Entry(_key(key), vector, content_words(question), answer, frozenset(sources), size)
        with self._lock:
            self._entries[self._next] = entry
            self._next += 1
            self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.size

    def drop_citing(self, document_ids: Iterable[str]) -> int:
        """Forget every answer taken from any of `document_ids`; how many went."""
        changed = set(document_ids)
        with self._lock:
            gone = [i for i, e in self._entries.items() if e.sources & changed]
            for i in gone:
                self._bytes -= self._entries.pop(i).size
        return len(gone)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "entries": len(self._entries),
                "bytes": self._bytes,
                "hits": self.hits,
                "misses": self.misses,
            }


def _key(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)
