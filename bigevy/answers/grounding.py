"""Phone numbers and countries in a generated answer that its sources do not give are taken out.

The prompt forbids inventing numbers, and small models do it anyway: SmolLM2-135M, asked about
a child's fever with the starter knowledge as sources, told the user to call a US toll-free
number found in none of them. On a basic phone a made-up number is worse than none, and answers
also become FAQ knowledge shipped to nodes, so every sentence with a number the sources do not
give is dropped before the answer is sent or stored. So is a sentence of a grounded answer that
puts things in a country nobody named: beside a correct citation, the same model once wrote
"Kampala, India".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bigevy.answers.places import countries_named, places_named
from bigevy.answers.sentences import join, sentences, unmarked

#: A number as people write one: digits, with spaces, dots, dashes, slashes or brackets between.
_NUMBER = re.compile(r"(?<![\w+])\+?\(?\d[\d\s().\-/]*\d(?!\w)|(?<![\w+])\d(?!\w)")
_DIGIT_RUN = re.compile(r"\d+")
#: Words that make a short number a number to call: "dial 999", "hotline 116", "Police: 984"
#: (the services emergency-number lists name).
_CALL_CUE = re.compile(
    r"\b(call|dial|phone|ring|hotline|helpline|line|number|tel|telephone|contact|text|sms|"
    r"whatsapp|toll-free|free|police|ambulance|fire|emergency|rescue|poison|cross)"
    r"\W+(?:\w+\W+){0,2}$",
    re.IGNORECASE,
)
#: ... or after it: "102-783 is the emergency number", "193 for an ambulance".
_CUE_AFTER = re.compile(
    r"^\W*(?:\w+\W+){0,3}?(call|dial|phone|hotline|helpline|line|number|police|ambulance|"
    r"fire|emergency|rescue|poison)\b",
    re.IGNORECASE,
)
#: A question after a number to call ("what is the police number", "who do I call").
_ASKS_FOR_A_NUMBER = re.compile(
    r"\b(numbers?|call|dial|hotline|helpline|contact|n[uú]mero|appeler|nambari)\b", re.IGNORECASE
)
#: Seven digits or more is a phone number whatever surrounds it.
LONG_NUMBER_DIGITS = 7


@dataclass(frozen=True)
class Checked:
    text: str
    dropped: list[str]  # the sentences taken out


def phone_numbers(text: str, asked: str = "") -> list[str]:
    """The digits of each phone number `text` gives: long ones, and short ones next to a cue
    ("call 112", "193 for an ambulance"), or any of two digits or more when the question `asked`
    is about numbers to call ("what's the ambulance number?" answered "193"). Quantities
    ("5 back blows", "boil for 1 minute") are not numbers to call."""
    about_numbers = bool(_ASKS_FOR_A_NUMBER.search(asked))
    found = []
    for match in _NUMBER.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        cue = about_numbers or (
            _CALL_CUE.search(text[max(0, match.start() - 40) : match.start()])
            or _CUE_AFTER.search(text[match.end() : match.end() + 40])
        )
        if len(digits) >= LONG_NUMBER_DIGITS or (len(digits) >= 2 and cue):
            found.append(digits)
    return found


def given_numbers(sources: Iterable[str]) -> set[str]:
    """Every number the sources write, whole and each run of digits in it ("112/999")."""
    given: set[str] = set()
    for source in sources:
        for match in _NUMBER.finditer(source):
            given.add(re.sub(r"\D", "", match.group()))
            given.update(_DIGIT_RUN.findall(match.group()))
    return given


def drop_unsupported_numbers(answer: str, sources: Iterable[str], asked: str = "") -> Checked:
    """`answer` to the question `asked` without the sentences that give a phone number none of
    `sources` gives."""
    given = given_numbers(sources)
    # without its list marker: "3. 112" is item 3 giving 112, not the number 3112
    return _drop(
        answer, lambda text: any(n not in given for n in phone_numbers(unmarked(text), asked))
    )


#: Number words of the languages nodes escalate in, as digits: "twenty minutes" says 20.
NUMBER_WORDS = {
    **dict.fromkeys(["one", "un", "une", "uno", "una", "um", "uma", "moja"], "1"),
    **dict.fromkeys(["two", "deux", "dos", "dois", "duas", "mbili"], "2"),
    **dict.fromkeys(["three", "trois", "tres", "três", "tatu"], "3"),
    **dict.fromkeys(["four", "quatre", "cuatro", "quatro", "nne"], "4"),
    **dict.fromkeys(["five", "cinq", "cinco", "tano"], "5"),
    **dict.fromkeys(["six", "seis", "sita"], "6"),
    **dict.fromkeys(["seven", "sept", "siete", "sete", "saba"], "7"),
    **dict.fromkeys(["eight", "huit", "ocho", "oito", "nane"], "8"),
    **dict.fromkeys(["nine", "neuf", "nueve", "nove", "tisa"], "9"),
    **dict.fromkeys(["ten", "dix", "diez", "dez", "kumi"], "10"),
    **dict.fromkeys(["twelve", "douze", "doce", "doze"], "12"),
    **dict.fromkeys(["fifteen", "quinze", "quince"], "15"),
    **dict.fromkeys(["twenty", "vingt", "veinte", "vinte", "ishirini"], "20"),
    **dict.fromkeys(["thirty", "trente", "treinta", "trinta", "thelathini"], "30"),
    **dict.fromkeys(["hundred", "cent", "cien", "cem", "mia"], "100"),
}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(sorted(NUMBER_WORDS, key=len, reverse=True)) + r")\b")
#: "1" as an article or pronoun ("one of them", "un enfant") says no quantity.
_NOT_A_QUANTITY = {"1"}


def quantities(text: str) -> set[str]:
    """The numbers `text` gives, as digits: written in digits (each run of digits, so "1.5"
    gives 1 and 5, "112/999" both), or as a number word above one."""
    found = set(_DIGIT_RUN.findall(text))
    words = {NUMBER_WORDS[w] for w in _NUMBER_WORD.findall(text.lower())}
    return found | (words - _NOT_A_QUANTITY)


def drop_unsupported_quantities(answer: str, sources: Iterable[str]) -> Checked:
    """`answer` without the sentences that give a number none of `sources` gives: a dose, a
    time, a duration, a distance, a date or a phone number. A model restating "boil for 1
    minute" as "boil for 10 minutes" changes what a person does; the sources' own numbers
    (as digits or number words) are the only ones an answer may give."""
    given: set[str] = set()
    for source in sources:
        given |= quantities(source)
    return _drop(answer, lambda text: not quantities(unmarked(text)) <= given)


def drop_unsupported_countries(
    answer: str, sources: Iterable[str], asked: str, regions: Iterable[str] = ()
) -> Checked:
    """`answer` to the question `asked` without the sentences that name a country that none of
    `sources`, the question and the asker's `regions` (ISO codes) name. For answers with
    sources only: without any, the model's own knowledge is all there is to check against."""
    named = set(regions) | set(places_named(asked)) | countries_named(asked)
    for source in sources:
        named |= set(places_named(source)) | countries_named(source)
    return _drop(answer, lambda text: not countries_named(text) <= named)


def _drop(answer: str, unsupported: Callable[[str], bool]) -> Checked:
    kept, dropped = [], []
    for sentence in sentences(answer):
        (dropped if unsupported(sentence.text) else kept).append(sentence)
    return Checked(
        text=join(kept) if dropped else answer.strip(), dropped=[s.text for s in dropped]
    )
