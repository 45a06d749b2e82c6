"""The numbers to call in an emergency, from the knowledge base. A question that asks for a
service's number ("what's the ambulance number in accra") gets that service's line the same way.

An emergency must not queue behind ordinary questions for the model, and a small model
paraphrasing first aid can invent a dose or a number (seen with SmolLM2-135M). So the reply is
extractive (bigevy/answers/service.py): the numbers found in the knowledge base for the node's
region (else the global ones), then the safety documents' own sentences, composed as any
extractive answer is (bigevy/answers/compose.py).
"""

from __future__ import annotations

import re
import unicodedata

from bigevy.answers.ports import Retriever
from bigevy.answers.triage import EmergencyKind
from bigevy.http.evy.protocol import EmergencyNumber
from bigevy.knowledge.records import Hit, SearchFilters
from bigevy.knowledge.taxonomy import Category

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
#: The safety passages an emergency's steps are chosen from.
SAFETY_PASSAGES = 3
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


class EmergencyNumbers:
    """The numbers to call, as the knowledge base of a region lists them."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever

    async def numbers(
        self, services: tuple[str, ...], region: str | None
    ) -> tuple[list[EmergencyNumber], list[Hit]]:
        """The region's numbers for these services (all listed if it lists none of them, or
        for no services), and the passage listing them; the global ones if the region has
        none."""
        for regions in ([region] if region else [], ["global"]):
            if not regions:
                continue
            filters = SearchFilters(categories=[Category.emergency.value], regions=regions)
            for hit in await self.retriever.search(NUMBERS_QUERY, "hybrid", filters, 5):
                listed = listed_numbers(hit.text)
                if listed:
                    wanted = [n for n in listed if n.service in services] or listed
                    return wanted, [hit]
        return [], []


#: "Call ... now." in the languages nodes escalate in: the one sentence of an emergency's SMS
#: that no vetted document says, so it is fixed text, with the numbers the knowledge base lists.
CALL_NOW = {
    "en": ("Call {} now.", "or", "Call your local emergency number now."),
    "fr": ("Appelez le {} maintenant.", "ou", "Appelez le numéro d'urgence local maintenant."),
    "es": ("Llame al {} ahora.", "o", "Llame ahora al número de emergencias local."),
    "pt": ("Ligue para o {} agora.", "ou", "Ligue agora para o número de emergência local."),
    "sw": ("Piga simu {} sasa.", "au", "Piga simu sasa kwa nambari ya dharura ya eneo lako."),
}


def call_line(numbers: list[EmergencyNumber], language: str = "en") -> str:
    """What to call, first in an emergency's SMS: `Call 999 (ambulance/emergency) now.`"""
    with_numbers, or_, without = CALL_NOW.get(language, CALL_NOW["en"])
    if not numbers:
        return without
    by_number: dict[str, list[str]] = {}
    for n in numbers:
        by_number.setdefault(n.number, []).append(n.service)
    parts = [f"{number} ({'/'.join(services)})" for number, services in by_number.items()]
    return with_numbers.format(f" {or_} ".join(parts))
