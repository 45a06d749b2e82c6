"""What knowledge is about and where it came from: the fixed vocabularies of the store."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

#: How urgent an entry is: `critical` ones reach every node that wants them first.
Priority = Literal["critical", "high", "normal", "low"]


class Category(StrEnum):
    # The 15 global categories of the knowledge base.
    general_knowledge = "general_knowledge"
    science = "science"
    technology = "technology"
    medicine = "medicine"
    law = "law"
    business = "business"
    education = "education"
    history = "history"
    geography = "geography"
    culture = "culture"
    news = "news"
    research = "research"
    academic = "academic"
    reference = "reference"
    encyclopedia = "encyclopedia"
    # Local services a lilEVY node answers about.
    emergency = "emergency"
    weather_safety = "weather_safety"
    healthcare = "healthcare"
    government = "government"
    utilities = "utilities"
    transportation = "transportation"
    community = "community"
    local_business = "local_business"
    # Questions nodes escalate often, with bigEVY's answer (bigevy/knowledge/faq.py).
    faq = "faq"


#: Every category of vetted knowledge: all but `faq`, which holds bigEVY's earlier answers,
#: not sources. Cited, an FAQ entry made an ungrounded answer come back as a grounded one; in a
#: search's results, earlier answers ranked above every real source.
SOURCES = [category for category in Category if category != Category.faq]


class Source(StrEnum):
    wikipedia = "wikipedia"
    academic = "academic"
    news = "news"
    government = "government"
    medical = "medical"
    legal = "legal"
    weather = "weather"
    local = "local"
    node_contributed = "node_contributed"
    faq = "faq"  # built by bigEVY from escalations
