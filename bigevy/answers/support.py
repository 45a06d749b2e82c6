"""Whether a sentence a model wrote is backed by the passages it wrote from.

A generative model (`answers: generative`) is trusted to write, not to be right: each of its
sentences is kept only if the passages support it. Three tests, each catching what the others
miss, with thresholds set on the dev half of `benchmarks/data/support_sentences.jsonl`
(supported, unsupported and contradicting sentences written from the starter pack;
`benchmarks/support_check.py` measures them):

- *close to a source sentence*: the cosine of its embedding and the nearest passage sentence's
  reaches `SIMILARITY_FLOOR` (a sentence about something else is not backed);
- *the same polarity as that sentence*: a negation in one and not the other ("Do not put butter
  on a burn" / "Put butter on the burn") flips the advice while the cosine barely moves;
- *its words are the passages'*: at least `COVERAGE_FLOOR` of its content words occur in the
  passages (advice the sources never give, "take paracetamol", brings words of its own).

The floors were chosen on the dev half to let the fewest contradictions through while keeping
two thirds of the supported sentences. On the test half, with the quantity rule every generated
sentence also passes (bigevy.answers.grounding), the check keeps 61 % of supported sentences, 0 % of
unsupported ones and **12 % of contradicting ones** ("pull sharply outwards and downwards" for
"inwards and upwards" keeps the cosine and the words). No entailment model can be installed
here; this is the measured stand-in, not a proof, and why a model not trusted to write is
configured `extractive`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from bigevy.answers.sentences import prose_sentences

#: Cosine with the nearest passage sentence a supported sentence reaches.
SIMILARITY_FLOOR = 0.5
#: Share of a sentence's content words the passages must hold.
COVERAGE_FLOOR = 0.9
_WORDS = re.compile(r"[^\W\d_]+")
#: Words that turn advice into its opposite, in the languages nodes ask in (matched lowercased,
#: apostrophes dropped: "don't" is "dont").
NEGATIONS = frozenset(
    {"not", "no", "never", "dont", "doesnt", "cannot", "cant", "wont", "avoid", "without"}
    | {"ne", "pas", "jamais", "sans", "nunca", "sin", "não", "nao", "nem"}
    | {"hapana", "bila", "kamwe"}  # Swahili negates verbs by prefix too (usi-): not read
)
#: Words too common to say whether a sentence brings something of its own.
_COMMON = frozenset(
    {"the", "and", "for", "with", "from", "into", "about", "that", "this", "there", "their"}
    | {"them", "they", "you", "your", "our", "was", "were", "are", "has", "have", "had", "but"}
    | {"its", "can", "will", "should", "would", "could", "must", "may", "any", "some", "all"}
    | {"very", "more", "most", "also", "only", "just", "then", "than", "when", "where", "what"}
    | {"which", "who", "how", "why", "such", "each", "other", "person", "people", "someone"}
)

Embed = Callable[[list[str]], Awaitable[np.ndarray]]


def negated(text: str) -> bool:
    return any(w in NEGATIONS for w in _WORDS.findall(text.lower().replace("'", "")))


def _content(text: str) -> set[str]:
    """Content words by their first five letters ("cooling" and "cool" share "cool")."""
    return {w[:5] for w in _WORDS.findall(text.lower()) if len(w) > 3 and w not in _COMMON}


class SupportCheck:
    def __init__(self, embed: Embed) -> None:
        self.embed = embed

    async def supported(
        self, sentences: Sequence[str], passages: Sequence[str]
    ) -> list[int | None]:
        """For each of `sentences`, the index of the passage that backs it, or None (see the
        module's docstring)."""
        sources = [(i, s) for i, p in enumerate(passages) for s in prose_sentences(p)]
        if not sentences or not sources:
            return [None] * len(sentences)
        vectors = await self.embed([*sentences, *(s for _, s in sources)])
        written, given = vectors[: len(sentences)], vectors[len(sentences) :]
        words = set().union(*(_content(p) for p in passages))
        found: list[int | None] = []
        for i, sentence in enumerate(sentences):
            cosines = given @ written[i]
            nearest = int(np.argmax(cosines))
            passage, source = sources[nearest]
            own = _content(sentence)
            coverage = len(own & words) / len(own) if own else 1.0
            backed = (
                cosines[nearest] >= SIMILARITY_FLOOR
                and negated(sentence) == negated(source)
                and coverage >= COVERAGE_FLOOR
            )
            found.append(passage if backed else None)
        return found
