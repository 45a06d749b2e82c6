"""Places named in an SMS: found where a place is expected, not in every ordinary word."""

import json
from pathlib import Path

import pytest

from bigevy.answers.places import countries_named, places_named, region_named

MESSAGES = Path(__file__).parents[2] / "benchmarks" / "data" / "triage_messages.jsonl"


@pytest.mark.parametrize(
    ("message", "region"),
    [
        ("ambulance in kampala", "UG"),
        ("What is the ambulance number in Kenya?", "KE"),
        ("police number in south africa", "ZA"),  # a name of two words
        ("I live in Gulu and my son has fever", "UG"),  # a town, not only capitals
        ("flooding in virginia", "US"),  # a US state, not the town in South Africa
        ("Nataka ambulensi huko Mombasa", "KE"),
        ("inondation près de Beira", "MZ"),
        ("je suis à Abidjan", "CI"),
        ("Help! In Lagos there is fire", "NG"),  # "In" opens a sentence: still a locative
        ("Can I come to Nairobi", "KE"),  # capitalised mid-sentence
        ("noticias del huracan en mexico", "MX"),
        ("flooding in Paris", "FR"),  # the most populous place of the name
    ],
)
def test_a_named_place_gives_its_country(message: str, region: str) -> None:
    assert region_named(message) == region


@pytest.mark.parametrize(
    "message",
    [
        "J'ai mal à la tête",  # Tete is a town in Mozambique
        "comment soigner un petit mal de tete",
        "write a story about a man attacked by a lion",  # Man is a town in Ivory Coast
        "Police number please",  # sentence-initial capitals are not names
        "ambulance number kampala",  # no locative word, no capital: not trusted
        "i slept in mango grove",  # a town of India, but in lowercase only a big city counts
        "water in van is cold",  # Van, Turkey, is capitalised when it is meant
        "in a moment",
    ],
)
def test_ordinary_words_are_not_places(message: str) -> None:
    assert region_named(message) is None


def test_the_triage_messages_name_no_place_they_do_not_mean() -> None:
    """The triage set's 308 SMS in five languages: each place found is one the sender meant."""
    found = {
        m["text"]: region_named(m["text"])
        for m in map(json.loads, MESSAGES.read_text().splitlines())
    }
    assert {text: code for text, code in found.items() if code} == {
        "whats the number for ambulance service in kampala": "UG",
        "which snakes are poisonous in kenya": "KE",
        "news says there was a big earthquake in turkey": "TR",
        "inondations au mozambique aux infos": "MZ",
        "noticias del huracan en mexico": "MX",
    }


def test_every_place_a_message_names_is_found_in_order() -> None:
    assert places_named("from Nairobi to Kampala, then in kenya again") == ["KE", "UG"]


@pytest.mark.parametrize(
    ("text", "countries"),
    [
        ("Kampala, India has a hospital.", {"IN"}),  # anywhere, not only after "in"
        ("India has 112.", {"IN"}),  # at a sentence's start too
        ("Call 911 in the USA, 999 in the UK.", {"US", "GB"}),
        ("Democratic Republic of the Congo", {"CD"}),  # not the Republic of the Congo too
        ("Floods in New Jersey and New Mexico", {"US"}),  # US states, not Jersey or Mexico
        ("Let us know; tell us in the uk", set()),  # "us", "uk": acronyms count in capitals
        ("Malaria is common in South America and in india", set()),  # a capital is needed
    ],
)
def test_the_countries_an_answer_names(text: str, countries: set[str]) -> None:
    assert countries_named(text) == countries
