"""How an answer divides into sentences, and the same answer as prose for an SMS.

Models answer in lines and lists ("1. Boil it\\n2. Keep it covered"), and chunks keep a list's
"- " items on one line; a basic phone shows one run of text. The grounding check drops whole
sentences, the SMS fitter cuts after one and the knowledge-base fallback quotes the first few,
so all three divide a text the same way, here. Split by punctuation alone, "germs\\n2. Use a
filter" ended a sentence at "2." and an SMS read "1. Boil water to kill germs 2." (seen with
SmolLM2-135M).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
#: A list item's or heading's marker: "1.", "2)", "-", "*", "•", "#".
_MARK = r"(?:\d{1,2}[.)]|[-*•]|#{1,6})"
_MARKER = re.compile(rf"^(?:{_MARK}\s+)+")  # "- 1. Small" has two
_BULLET_LINE = re.compile(r"^([-*•])\s")
_NUMBERED = re.compile(r"(?:^|(?<=\s))(\d{1,2})[.)](?=\s|$)")
_EMPHASIS = re.compile(r"\*\*|__")
#: Markers with no item after them: "...; 2." at the very end is a list cut short.
_BARE_MARKERS = re.compile(rf"(?:{_MARK}(?:\s+|$))+")


@dataclass(frozen=True)
class Sentence:
    text: str  # whitespace collapsed, list marker kept
    opens_line: bool  # whether it starts a line (or a list item) of the text


def _has_letter(text: str) -> bool:
    return any(c.isalpha() for c in text)


def _items(line: str) -> list[str]:
    """A line's list items: a line that opens with "- " lists one item after each " - ", and
    numbers in a row ("2." then "3."), a "1." after a colon ("The steps are: 1.") or any
    number after a semicolon start an item each ("... call for help; 2. Keep them still" was
    an SMS ending "; 2."). A lone "10." elsewhere is no list, and neither are values after
    labels: "Police: 17. Fire: 18." lost both numbers when any number after a colon opened
    an item."""
    bullet = _BULLET_LINE.match(line)
    if bullet:
        return [item for item in re.split(rf"\s+(?={re.escape(bullet[1])}\s)", line) if item]
    runs: list[list[re.Match[str]]] = []
    for marker in _NUMBERED.finditer(line):
        if runs and int(marker[1]) == int(runs[-1][-1][1]) + 1:
            runs[-1].append(marker)
        else:
            runs.append([marker])
    starts = [marker.start(1) for run in runs if _is_list(line, run) for marker in run]
    if not starts:
        return [line]
    bounds = [0, *starts, len(line)]
    return [item for a, b in pairwise(bounds) if (item := line[a:b].strip())]


def _is_list(line: str, run: list[re.Match[str]]) -> bool:
    """Whether numbers in a row (or one alone) on `line` are a list's markers."""

    def after(marker: re.Match[str], mark: str) -> bool:
        return line[: marker.start(1)].rstrip().endswith(mark)

    first = run[0]
    if after(first, ";") or (first[1] == "1" and (len(run) > 1 or after(first, ":"))):
        return True
    return len(run) > 1 and not any(after(marker, ":") for marker in run)


def sentences(text: str) -> list[Sentence]:
    """Each line and list item of `text`, split after ".", "!" or "?" once a piece holds a
    letter, so "1." opening an item is no sentence. A piece with no letter ("2." on its own)
    goes with the next sentence, or with the last one at the end, where list markers alone
    (an item the answer never wrote) are dropped."""
    found: list[Sentence] = []
    carried = ""
    for raw_line in text.splitlines():
        for item in _items(" ".join(raw_line.split())):
            opens_line, start = True, 0
            pieces = []
            for match in _END.finditer(item):
                if _has_letter(item[start : match.end()]):
                    pieces.append(item[start : match.end()].strip())
                    start = match.end()
            pieces.append(item[start:].strip())
            for piece in filter(None, pieces):
                if not _has_letter(piece):
                    carried = f"{carried} {piece}".strip()
                    continue
                found.append(Sentence(f"{carried} {piece}".strip(), opens_line or bool(carried)))
                carried, opens_line = "", False
    if _BARE_MARKERS.fullmatch(carried):
        carried = ""
    if carried and found:
        last = found[-1]
        found[-1] = Sentence(f"{last.text} {carried}", last.opens_line)
    elif carried:
        found.append(Sentence(carried, True))
    return found


def join(kept: Iterable[Sentence]) -> str:
    """Sentences back into a text, each line of the original on a line of its own."""
    text = ""
    for sentence in kept:
        if text:
            text += "\n" if sentence.opens_line else " "
        text += sentence.text
    return text


def prose_sentences(text: str) -> list[str]:
    """The sentences of `text` as an SMS shows them: no list markers or emphasis, and a line
    that ends without punctuation ends with "." before the next ("- Police: 999\\n- Fire: 998"
    becomes "Police: 999." and "Fire: 998")."""
    found: list[str] = []
    for sentence in sentences(text):
        words = unmarked(sentence.text)
        if not words:
            continue
        if found and sentence.opens_line and found[-1][-1].isalnum():
            found[-1] += "."
        found.append(words)
    return found


def unmarked(sentence: str) -> str:
    """A sentence without its list marker ("3. ") and emphasis ("**")."""
    return _EMPHASIS.sub("", _MARKER.sub("", sentence)).strip()


def prose(text: str) -> str:
    return " ".join(prose_sentences(text))


def comparable(text: str) -> str:
    """Text as compared with what an SMS may carry: lowercase, without accents (an SMS drops
    those GSM-7 lacks), whitespace collapsed."""
    plain = unicodedata.normalize("NFKD", text.lower())
    return " ".join("".join(c for c in plain if not unicodedata.combining(c)).split())
