"""Which retrieved passages an escalation's answer may draw on and cite.

A search returns its top k whether or not the knowledge base holds anything about the question:
asked for the capital of France, the starter pack's best match is CPR. A small model then
answers from whatever it is given (SmolLM2-135M, asked about a thunderstorm with the lightning,
cyclone and earthquake passages, said to stay indoors "until the shaking stops"), and every
answer cites something, so it counts as grounded. Two tests keep a passage, both chosen on the
dev half of `benchmarks/data/starter_relevance.jsonl` (`benchmarks/passage_selection.py`):

- it is about the question: the cosine of the question and the passage's document reaches the
  embedding model's `relevance_floor` (a property of the model's similarity scale);
- it is not far behind the best passage kept: at least `RELATIVE_SCORE` of its hybrid score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar


class Scored(Protocol):
    @property
    def score(self) -> float: ...

    @property
    def similarity(self) -> float | None: ...


H = TypeVar("H", bound=Scored)

#: Share of the best kept passage's hybrid score (z-scores fused) a passage needs.
RELATIVE_SCORE = 0.5


def on_topic(hits: Sequence[H], floor: float, relative: float = RELATIVE_SCORE) -> list[H]:
    """The `hits` (best first) an answer may use: a cosine similarity of at least `floor`,
    and a score of at least `relative` times the best one's."""
    kept = [h for h in hits if h.similarity is not None and h.similarity >= floor]
    if not kept:
        return []
    best = kept[0].score
    if best <= 0:  # nothing stands out of the candidates: the best alone
        return kept[:1]
    return [h for h in kept if h.score >= relative * best]
