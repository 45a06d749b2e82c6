"""Escalated questions as analytics keeps and shows them: redacted when stored, grouped by
meaning when read, so that "how to treat diarrhoea" and "treatment for diarrhea" are one line
of the list of what to write next."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import numpy as np

#: What a stored question may not hold: addresses, links, and any run of digits that could be
#: a phone, ID or account number (a child's age, "2 years", stays).
_EMAIL = re.compile(r"\S+@\S+")
_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_NUMBER = re.compile(r"\+?\d[\d\s().-]{4,}\d|\d{3,}")
#: Longer than any SMS question worth reading in a list.
MAX_CHARS = 320

#: Cosine at which two questions ask the same thing (MiniLM: paraphrases score 0.75-0.95,
#: questions on the same topic but asking different things 0.5-0.7).
SIMILARITY = 0.72


def redacted(question: str) -> str:
    """The question without what identifies its asker beyond its words."""
    text = _EMAIL.sub("[email]", question)
    text = _LINK.sub("[link]", text)
    text = _NUMBER.sub("[number]", text)
    return " ".join(text.split())[:MAX_CHARS]


@dataclass
class Asked:
    """One wording of a question and how often it was asked (`unanswered` of them with no
    verified answer)."""

    text: str
    count: int
    unanswered: int = 0


@dataclass
class Group:
    """Questions asking the same thing; `question` is its most asked wording."""

    question: str
    count: int = 0
    unanswered: int = 0
    wordings: list[str] = field(default_factory=list)


Embed = Callable[[list[str]], Awaitable[np.ndarray]]


async def by_meaning(
    asked: Iterable[Asked], embed: Embed, similarity: float = SIMILARITY, batch: int = 64
) -> list[Group]:
    """`asked` grouped by meaning, most asked first.

    Most asked wordings lead: each wording joins the group whose leading wording is nearest, if
    near enough, else leads a new group (one pass, so a group never drifts away from what its
    leader asks)."""
    ordered = sorted(asked, key=lambda a: (-a.count, a.text))
    if not ordered:
        return []
    texts = [a.text for a in ordered]
    parts = [await embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]
    vectors = np.concatenate([np.asarray(p, dtype=np.float32) for p in parts])
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    groups: list[Group] = []
    leaders = np.empty_like(vectors)  # row i: the vector of group i's leading wording
    for one, vector in zip(ordered, vectors, strict=True):
        scores = leaders[: len(groups)] @ vector
        nearest = int(np.argmax(scores)) if len(groups) else -1
        if nearest < 0 or scores[nearest] < similarity:
            nearest = len(groups)
            groups.append(Group(question=one.text))
            leaders[nearest] = vector
        group = groups[nearest]
        group.count += one.count
        group.unanswered += one.unanswered
        if one.text != group.question:
            group.wordings.append(one.text)
    groups.sort(key=lambda g: (-g.count, g.question))
    return groups
