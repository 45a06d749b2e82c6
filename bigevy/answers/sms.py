"""SMS segments: which encoding a text needs, how many parts it takes, and cutting an answer
to fit a number of parts at a sentence or word boundary.

GSM 03.38 7-bit: 160 septets in one SMS, 153 per part of a concatenated SMS (the user data
header takes the rest); characters of the extension table (`^{}\\[~]|€` and form feed) take two
septets, and the escape never splits from its character across parts. Any character outside
GSM-7 makes the whole message UCS-2: 70 UTF-16 code units in one SMS, 67 per part; a character
outside the BMP (most emoji) takes two units, and a surrogate pair never splits across parts.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal

from bigevy.answers.sentences import prose_sentences

Encoding = Literal["GSM-7", "UCS-2"]

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

LIMITS: dict[Encoding, tuple[int, int]] = {"GSM-7": (160, 153), "UCS-2": (70, 67)}
ELLIPSIS = "..."  # three GSM-7 septets; "…" would force UCS-2


#: Typography a phone's GSM-7 lacks, as GSM-7 writes it.
_PLAIN = str.maketrans(
    {
        "\u2018": "'",  # quotation marks
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u00ab": '"',
        "\u00bb": '"',
        "\u2013": "-",  # dashes
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",  # no-break spaces
        "\u202f": " ",
    }
)


def as_sent(text: str) -> str:
    """`text` as it is sent: in GSM-7 where dropping accents GSM-7 lacks gets it there.

    One accent outside GSM-7 makes a whole SMS UCS-2, 70 characters instead of 160: "saúde"
    cut a Portuguese answer to its first half-sentence. Accents GSM-7 has (é, è, à, ñ, ü, ...)
    stay; "ç", "ã", "ê" become "c", "a", "e", as people write on basic phones. A text in
    another script stays UCS-2.
    """
    if encoding_of(text) == "GSM-7":
        return text
    allowed = GSM7_BASIC | GSM7_EXTENSION
    plain = "".join(c if c in allowed else _unaccented(c) for c in text.translate(_PLAIN))
    return plain if encoding_of(plain) == "GSM-7" else text


def _unaccented(char: str) -> str:
    base = "".join(c for c in unicodedata.normalize("NFD", char) if not unicodedata.combining(c))
    return base or char


def encoding_of(text: str) -> Encoding:
    """The encoding a phone must use for `text` (detected, never assumed)."""
    allowed = GSM7_BASIC | GSM7_EXTENSION
    return "GSM-7" if all(c in allowed for c in text) else "UCS-2"


def _unit_cost(char: str, encoding: Encoding) -> int:
    if encoding == "GSM-7":
        return 2 if char in GSM7_EXTENSION else 1
    return 2 if ord(char) > 0xFFFF else 1


def units(text: str, encoding: Encoding | None = None) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) of `text`."""
    encoding = encoding or encoding_of(text)
    return sum(_unit_cost(c, encoding) for c in text)


def segment_count(text: str) -> int:
    """How many SMS parts `text` takes (0 for an empty text)."""
    if not text:
        return 0
    encoding = encoding_of(text)
    single, per_part = LIMITS[encoding]
    if units(text, encoding) <= single:
        return 1
    parts, room = 1, per_part
    for char in text:
        cost = _unit_cost(char, encoding)
        if cost > room:  # an escape pair or surrogate pair moves whole to the next part
            parts, room = parts + 1, per_part
        room -= cost
    return parts


def fits(text: str, max_segments: int) -> bool:
    """Whether `text`, as it is sent, takes at most `max_segments` parts."""
    return segment_count(as_sent(text)) <= max_segments


@dataclass(frozen=True)
class SmsFit:
    text: str
    encoding: Encoding
    segments: int
    truncated: bool


def fit_sms(text: str, max_segments: int = 1) -> SmsFit:
    """`text` as prose (one run of sentences, no list markers: `sentences.prose`), cut if
    needed to fit `max_segments` SMS parts (see `cut_prose`)."""
    if max_segments < 1:
        raise ValueError(f"max_segments must be at least 1, got {max_segments}")
    text, truncated = cut_prose(as_sent(text), lambda candidate: fits(candidate, max_segments))
    text = as_sent(text)  # a cut may leave out what kept the whole text UCS-2
    return SmsFit(
        text=text, encoding=encoding_of(text), segments=segment_count(text), truncated=truncated
    )


def cut_prose(text: str, fits: Callable[[str], bool]) -> tuple[str, bool]:
    """`text` as prose, and whether it had to be cut so that `fits` holds.

    A cut ends at the last whole sentence that fits, or else at the last whole word followed
    by "..."; only a single word longer than the whole budget is cut inside itself. `fits`
    must only get harder to meet as a text grows.
    """
    parts = prose_sentences(text)
    text = " ".join(parts)
    if fits(text):
        return text, False
    # The longest prefix that fits with an ellipsis.
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(text[:mid].rstrip() + ELLIPSIS):
            low = mid
        else:
            high = mid - 1
    room = low + len(ELLIPSIS)  # a cut at a sentence end needs no ellipsis
    ends = [end - 1 for end in accumulate(len(part) + 1 for part in parts)]  # +1: the spaces
    for end in reversed([end for end in ends if end <= room]):
        if fits(text[:end]):
            return text[:end], True
    prefix = text[:low]
    if low < len(text) and not text[low].isspace() and " " in prefix:
        prefix = prefix[: prefix.rindex(" ")]  # never end inside a word
    return prefix.rstrip(" ,;:-") + ELLIPSIS, True
