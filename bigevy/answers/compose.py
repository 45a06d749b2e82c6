"""Answers made of the vetted passages' own sentences: nothing in them was written by a model.

A small model restating a source contradicts it often: with a source saying to give oral
rehydration salts in small sips, SmolLM2-135M told a parent "Do not tell the child to drink
more water". Filters on a model's sentences (numbers, countries, echoes, bare yes/no) each
caught one shape of failure and none caught a contradiction. Choosing among the sources' own
sentences cannot make one, so a model not trusted to write (`answers: extractive`) is not asked.

How sentences are picked:
- every sentence of the kept passages is a candidate, once (chunks overlap), without the title
  a chunk opens with, lead-ins ending in ":" and fragments;
- each is scored by the cosine of its embedding and the question's (the embedding model of the
  knowledge base), plus a bonus for leading its passage (`LEAD_WEIGHT`: vetted documents say
  the first thing to do first, and the cosine misses it: "Give oral rehydration salts (ORS)
  often, in small sips" scores 0.25 against "My child has diarrhoea, what do I do?", "Go to a
  clinic at once if there is blood in the stool ..." 0.73) and for the best passage
  (`BEST_PASSAGE_WEIGHT`: retrieval ranks documents better than a cosine ranks sentences);
  maximal marginal relevance (`MMR_LAMBDA`) keeps a pick from repeating one already made;
- the best pick leads the SMS (cut if it alone does not fit); the next fill it while it still
  fits its segments, and the longer answer up to `ANSWER_CHARS`;
- any sentence of the best passage may be picked (retrieval found it about the question, and
  it is vetted as a whole); one of another passage needs a cosine of `OTHER_PASSAGE_FLOOR`
  itself, so an SMS is not padded with the unrelated sentences of a passage kept for one line;
- the picks are read in the order of their passages' rank and, within a passage, their own
  order, so steps stay in sequence.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from bigevy.answers.sentences import prose_sentences
from bigevy.answers.sms import fit_sms, fits
from bigevy.knowledge.chunking import passage
from bigevy.knowledge.records import Hit

#: Weight of relevance against novelty in maximal marginal relevance.
MMR_LAMBDA = 0.7
#: Cosine added to a passage's first sentence; its n-th gets LEAD_WEIGHT / n.
LEAD_WEIGHT = 0.3
#: Cosine added to the sentences of the best-ranked passage.
BEST_PASSAGE_WEIGHT = 0.1
#: The cosine with the question a sentence of any passage but the best needs.
OTHER_PASSAGE_FLOOR = 0.45
#: The full answer's length (the SMS is usually far shorter).
ANSWER_CHARS = 600
#: Sentence embeddings kept between escalations: the same passages answer many questions.
CACHED_SENTENCES = 20_000
_WORDS = re.compile(r"[^\W\d_]{2,}")


class Embedder(Protocol):
    """The knowledge base's embedding model: L2-normalised vectors, one row per text."""

    async def embed(self, texts: list[str]) -> tuple[np.ndarray, int]: ...


@dataclass(frozen=True)
class SourceSentence:
    """One sentence of a retrieved passage, as the passage says it."""

    text: str  # what the asker reads: the passage's sentence, or its translation's
    scored: str  # what is scored against the question: `text`, or the English it translates
    hit: Hit  # the passage it is read in: the document to cite for it
    passage: int  # the passage's rank among the kept ones
    position: int  # the sentence's place in its passage


@dataclass(frozen=True)
class Composed:
    answer: str
    sms: str
    sentences: list[SourceSentence]  # the answer's, in reading order


def source_sentences(
    hits: Sequence[Hit], translations: Sequence[Hit | None] = ()
) -> list[SourceSentence]:
    """The candidate sentences of `hits` (best first), each once.

    `translations[i]`, where given, is hit i's passage in the asker's language. The embedding
    model is English, so a sentence is scored in English and read in the translation, when
    the two have as many sentences (translations are checked sentence by sentence against the
    English: tests/unit/test_starter_translations.py); otherwise the translation alone is used.
    """
    found: list[SourceSentence] = []
    seen: set[str] = set()
    for rank, hit in enumerate(hits):
        english = _sentences(hit)
        translation = translations[rank] if rank < len(translations) else None
        shown = _sentences(translation) if translation else english
        aligned = len(shown) == len(english)
        shown_in = translation or hit
        for position, text in enumerate(shown):
            key = " ".join(_WORDS.findall(text.lower()))
            if len(key.split()) < 3 or text.endswith(":") or key in seen:
                continue
            seen.add(key)
            scored = english[position] if aligned else text
            found.append(SourceSentence(text, scored, shown_in, rank, position))
    return found


def _sentences(hit: Hit) -> list[str]:
    return prose_sentences(passage(hit.text, hit.title))


class Composer:
    """Picks and orders the sentences that answer a question (see the module's docstring)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()

    async def compose(
        self,
        question: str,
        hits: Sequence[Hit],
        max_segments: int,
        translations: Sequence[Hit | None] = (),
        lead: str = "",
    ) -> Composed | None:
        """The answer and its SMS from `hits`' sentences (read in their `translations`, see
        `source_sentences`); None if they hold none. `question` is scored as it is given: in
        English where the sentences are scored in English. `lead`, if given, opens both and
        takes its share of the SMS first (an emergency's numbers to call)."""
        candidates = source_sentences(hits, translations)
        if not candidates:
            return None
        found = await self.embed([question, *(c.scored for c in candidates)])
        question_vector, vectors = found[0], found[1:]
        cosine = vectors @ question_vector
        relevance = cosine + [_prior(c) for c in candidates]
        ranked = [
            candidates[i]
            for i in _mmr(relevance, vectors)
            if candidates[i].passage == 0 or cosine[i] >= OTHER_PASSAGE_FLOOR
        ]
        if not ranked:  # the best passage said nothing whole, and no other is close enough
            return None
        # The best sentence always leads the SMS: one that does not fit whole (a 70-character
        # UCS-2 SMS) is cut, as any SMS is, rather than passed over for a lesser one.
        if fits(_read(ranked[:1], lead), max_segments):
            sms = _fill(ranked, lead, lambda text: fits(text, max_segments))
        else:
            sms = ranked[:1]
        answer = _fill(ranked, lead, lambda text: len(text) <= ANSWER_CHARS) or sms
        sms_text = fit_sms(_read(sms, lead), max_segments).text
        return Composed(answer=_read(answer, lead), sms=sms_text, sentences=_reading(answer))

    async def embed(self, texts: list[str]) -> np.ndarray:
        """The vectors of `texts`, one row each; a text among the `CACHED_SENTENCES` most
        recently embedded is not embedded again."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            found, _ = await self.embedder.embed(missing)
            self._vectors.update(zip(missing, found, strict=True))
        for text in texts:
            self._vectors.move_to_end(text)
        rows = np.stack([self._vectors[t] for t in texts])
        while len(self._vectors) > CACHED_SENTENCES:
            self._vectors.popitem(last=False)
        return rows


def _prior(sentence: SourceSentence) -> float:
    return LEAD_WEIGHT / (1 + sentence.position) + BEST_PASSAGE_WEIGHT * (sentence.passage == 0)


def _mmr(relevance: np.ndarray, vectors: np.ndarray) -> list[int]:
    """Every candidate's index, in maximal-marginal-relevance order."""
    left = list(range(len(relevance)))
    picked: list[int] = []
    novelty = np.zeros(len(relevance))  # the highest cosine to anything picked so far
    while left:
        best = max(left, key=lambda i: MMR_LAMBDA * relevance[i] - (1 - MMR_LAMBDA) * novelty[i])
        picked.append(best)
        left.remove(best)
        novelty = np.maximum(novelty, vectors @ vectors[best])
    return picked


def _reading(picked: list[SourceSentence]) -> list[SourceSentence]:
    return sorted(picked, key=lambda s: (s.passage, s.position))


def _read(picked: list[SourceSentence], lead: str = "") -> str:
    return " ".join([*([lead] if lead else []), *(s.text for s in _reading(picked))])


def _fill(
    ranked: list[SourceSentence], lead: str, fits_in: Callable[[str], bool]
) -> list[SourceSentence]:
    """The ranked sentences, best first, that fit together after `lead`; a sentence that would
    overflow is passed over for a shorter one further down."""
    picked: list[SourceSentence] = []
    for sentence in ranked:
        if fits_in(_read([*picked, sentence], lead)):
            picked.append(sentence)
    return picked
