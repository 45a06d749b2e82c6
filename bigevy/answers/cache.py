"""Answers to questions asked before, reused for the same question reworded.

Many nodes escalate the same few questions ("how do I make water safe to drink", "how to make
water safe for drinking?"). An escalation that matches an earlier one is answered with that
answer, without retrieval, the composer or a model. A match needs the same key (region, place
named, language, profile, SMS budget and model: each changes the answer) and an embedding
cosine of at least `similarity` between the questions, a threshold set on labelled paraphrases
(benchmarks/answer_cache.py).

An answer stays only while its sources do: the cache lives beside the knowledge base's one
writer, which drops every answer citing a document in the same call that changes or deletes
it. Only answers with sources are kept ("no verified answer" could be answered by a document
added later), and never emergencies, which are answered fresh. Its size is bounded in bytes;
the least recently used answers go first.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class _Entry:
    key: str
    vector: np.ndarray
    answer: dict[str, Any]
    sources: frozenset[str]
    size: int


class AnswerCache:
    def __init__(self, max_bytes: int, similarity: float) -> None:
        self.max_bytes = max_bytes
        self.similarity = similarity
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self._bytes = 0
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()  # lookups and writes come from the replica's threads

    def lookup(self, key: dict[str, Any], vector: np.ndarray) -> dict[str, Any] | None:
        """The answer to the closest earlier question under `key`, if close enough."""
        wanted = _key(key)
        with self._lock:
            scores = [
                (float(e.vector @ vector), i) for i, e in self._entries.items() if e.key == wanted
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
        vector: np.ndarray,
        answer: dict[str, Any],
        sources: Iterable[str],
    ) -> None:
        """Keep `answer` (taken from the documents `sources`) for `key`'s questions like this
        one; the least recently used go while the cache is over its size."""
        vector = np.asarray(vector, dtype=np.float32)
        size = vector.nbytes + len(json.dumps(answer)) + 200  # 200: the entry's own overhead
        entry = _Entry(_key(key), vector, answer, frozenset(sources), size)
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
