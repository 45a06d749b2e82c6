"""The answer to an emergency: the local numbers and the safety steps, straight from the
knowledge base, without waiting for the language model. A question that asks for a service's
number ("what's the ambulance number in accra") gets that service's line the same way.

An emergency must not queue behind ordinary questions for the model, and a small model
paraphrasing first aid can invent a dose or a number (seen with SmolLM2-135M). So the reply is
extractive: numbers found in the knowledge base for the node's region (else the global ones),
then the first steps of the best-matching safety document, cut to fit the SMS.
"""

from __future__ import annotations

import re
import unicodedata
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
#: A service's name in the languages triage reads (accents folded), as numbers are listed.
SERVICE_WORDS: dict[str, tuple[str, ...]] = {
    "police": ("police", "policia", "polisi", "gendarmerie"),
    "ambulance": ("ambulance", "ambulancia", "ambulensi"),
    "fire": ("fire", "pompiers", "bomberos", "bombeiros", "zimamoto", "zima moto"),
    "red cross": ("red cross", "croix rouge", "cruz roja", "cruz vermelha", "msalaba mwekundu"),
    "emergency": (
        "emergency",
        "emergencies",
        "urgence",
        "urgences",
        "urgencia",
        "urgencias",
        "emergencia",
        "emergencias",
        "dharura",
    ),
}
#: Asking for a number, not to call one: "should I call an ambulance?" wants advice.
_NUMBER_WORD = re.compile(r"\b(numbers?|numeros?|nambari|namba|hotline|helpline)\b")
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


def services_asked(message: str) -> tuple[str, ...] | None:
    """The services whose number `message` asks for, or None if it asks for no service's
    number. () for the emergency numbers in general: every one listed."""
    folded = unicodedata.normalize("NFKD", message.lower()).encode("ascii", "ignore").decode()
    text = " " + " ".join(re.findall(r"[a-z]+", folded)) + " "
    if not _NUMBER_WORD.search(text):
        return None
    named = [s for s, words in SERVICE_WORDS.items() if any(f" {w} " in text for w in words)]
    if not named:
        return None
    return tuple(s for s in named if s != "emergency")


def numbers_line(numbers: list[EmergencyNumber]) -> str:
    """Each service's numbers, in the order listed: `Police: 191. Ambulance: 193.`"""
    by_service: dict[str, list[str]] = {}
    for n in numbers:
        by_service.setdefault(n.service, []).append(n.number)
    return " ".join(f"{s.title()}: {' or '.join(ns)}." for s, ns in by_service.items())


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
        self, services: tuple[str, ...], region: str | None
    ) -> tuple[list[EmergencyNumber], list[Citation]]:
        """The region's numbers for these services (all listed if it lists none of them, or
        for no services); the global ones if the region has none."""
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
                    wanted = [n for n in listed if n.service in services] or listed
                    return wanted, [hit.citation]
        return [], []

    async def reply(
        self, message: str, found: Triage, region: str | None, language: str
    ) -> EmergencyReply:
        """`found` is the message's triage: its kind picks the numbers, its topic (English)
        leads the search for the steps, so a message in any language finds them."""
        assert found.kind is not None, "only emergencies are answered here"
        numbers, citations = await self.numbers(SERVICES[found.kind], region)
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
