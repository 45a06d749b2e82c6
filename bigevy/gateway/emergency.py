"""The answer to an emergency: the local numbers and the safety steps, straight from the
knowledge base, without waiting for the language model.

An emergency must not queue behind ordinary questions for the model, and a small model
paraphrasing first aid can invent a dose or a number (seen with SmolLM2-135M). So the reply is
extractive: numbers found in the knowledge base for the node's region (else the global ones),
then the first steps of the best-matching safety document, cut to fit the SMS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bigevy.api.knowledge import Citation, EmergencyNumber, SearchHit, SearchRequest
from bigevy.gateway.knowledge import KnowledgeGateway
from bigevy.knowledge.taxonomy import Category
from bigevy.sentences import prose
from bigevy.triage import EmergencyKind, Triage

#: Who answers each kind of emergency, in the words numbers are listed under.
SERVICES: dict[EmergencyKind, tuple[str, ...]] = {
    "medical": ("ambulance", "emergency", "red cross"),
    "fire": ("fire", "emergency"),
    "police": ("police", "emergency"),
    "disaster": ("emergency", "red cross", "fire", "police"),
}
_LISTING = re.compile(
    r"\b(police|ambulance|fire|emergency|red cross)\b[^:\n]{0,40}?:\s*"
    r"(\d{2,6}(?:\s*(?:or|/|,)\s*\d{2,6})*)",
    re.IGNORECASE,
)
SAFETY = [Category.emergency, Category.healthcare, Category.weather_safety]
NUMBERS_QUERY = "emergency phone numbers police ambulance fire"


def listed_numbers(text: str) -> list[EmergencyNumber]:
    """`Service: 999 or 112` listings in a text, one entry per number, in order."""
    found: list[EmergencyNumber] = []
    for service, numbers in _LISTING.findall(text):
        for number in re.findall(r"\d{2,6}", numbers):
            entry = EmergencyNumber(service=service.lower(), number=number)
            if entry not in found:
                found.append(entry)
    return found


@dataclass
class EmergencyReply:
    numbers: list[EmergencyNumber]
    sms_text: str  # what to fit into the SMS, most urgent first
    answer: str
    citations: list[Citation]


class EmergencyResponder:
    def __init__(self, knowledge: KnowledgeGateway) -> None:
        self.knowledge = knowledge

    async def numbers(
        self, kind: EmergencyKind, region: str | None
    ) -> tuple[list[EmergencyNumber], list[Citation]]:
        """The region's numbers for this kind of emergency; the global ones if it has none."""
        for regions in ([region] if region else [], ["global"]):
            if not regions:
                continue
            found = await self.knowledge.search(
                SearchRequest(
                    query=NUMBERS_QUERY, top_k=5, categories=[Category.emergency], regions=regions
                )
            )
            for hit in found.hits:
                listed = listed_numbers(hit.text)
                if listed:
                    wanted = [n for n in listed if n.service in SERVICES[kind]] or listed
                    return wanted, [hit.citation]
        return [], []

    async def reply(
        self, message: str, found: Triage, region: str | None, language: str
    ) -> EmergencyReply:
        """`found` is the message's triage: its kind picks the numbers, its topic (English)
        leads the search for the steps, so a message in any language finds them."""
        assert found.kind is not None, "only emergencies are answered here"
        numbers, citations = await self.numbers(found.kind, region)
        safety = await self.knowledge.search(
            SearchRequest(
                query=f"{found.topic}. {message}" if found.topic else message,
                top_k=3,
                categories=SAFETY,
                regions=[region, "global"] if region else ["global"],
                languages=sorted({language, "en"}),  # the shipped safety pack is English
            )
        )
        steps = [_body(h) for h in safety.hits if not listed_numbers(h.text)][:2]
        for hit in safety.hits:
            if not listed_numbers(hit.text) and hit.citation not in citations:
                citations.append(hit.citation)
        call = _call_line(numbers)
        return EmergencyReply(
            numbers=numbers,
            sms_text=" ".join([call, *steps[:1]]),
            answer=" ".join([call, *steps]),
            citations=citations[: 1 + len(steps)],
        )


def _call_line(numbers: list[EmergencyNumber]) -> str:
    if not numbers:
        return "Call your local emergency number now."
    by_number: dict[str, list[str]] = {}
    for n in numbers:
        by_number.setdefault(n.number, []).append(n.service)
    parts = [f"{number} ({'/'.join(services)})" for number, services in by_number.items()]
    return f"Call {' or '.join(parts)} now."


def _body(hit: SearchHit) -> str:
    """The passage as prose, without the title a Markdown chunk starts with."""
    text = prose(hit.text)
    title = hit.citation.title.strip()
    return text[len(title) :].lstrip(" .:") if title and text.startswith(title) else text
