"""The starter pack's safety documents in French, Spanish, Portuguese and Swahili: each a file
of the same name under `starter/<lang>/`, with the English front matter plus `language`, and
sentence for sentence the English text, every number written with the same digits.

People may act on these texts in an emergency: a translation that drops a sentence, merges
two, or turns "20 minutes" into "2 minutes" fails here, named by file and sentence.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bigevy.answers.sentences import sentences
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, Record, read

LANGUAGES = ("fr", "es", "pt", "sw")
#: Everything but the emergency-number lists, which are numbers per country, not prose.
ENGLISH = sorted(
    path for path in STARTER_KNOWLEDGE.glob("*.md") if not path.name.startswith("emergency-numbers")
)
NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@cache
def pack() -> dict[Path, Record]:
    """The starter pack as the ingester reads it: ids are relative to the pack ("fr/burns")."""
    return {Path(record.origin): record for record in read(STARTER_KNOWLEDGE, {})}


def document(path: Path) -> dict[str, Any]:
    record = pack()[path]
    assert record.error is None and record.document is not None, f"{path}: {record.error}"
    return record.document


def numbers(sentence: str) -> list[str]:
    """The numbers a sentence writes in digits, a decimal comma read as a dot."""
    return [found.replace(",", ".") for found in NUMBER.findall(sentence)]


def test_the_safety_documents_are_found() -> None:
    assert len(ENGLISH) == 15


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("english", ENGLISH, ids=lambda path: path.stem)
def test_translation_matches_english_sentence_by_sentence(english: Path, language: str) -> None:
    translated = english.parent / language / english.name
    assert translated.is_file(), f"missing translation {translated}"
    original, translation = document(english), document(translated)

    assert translation["language"] == language, translated
    assert translation["id"] == f"{language}/{english.stem}", translated
    for field in ("category", "source", "priority", "region"):
        assert translation.get(field) == original.get(field), f"{translated}: {field}"
    assert translation["title"].strip(), f"{translated}: no title"

    ours = [s.text for s in sentences(original["text"])]
    theirs = [s.text for s in sentences(translation["text"])]
    assert len(theirs) == len(ours), (
        f"{translated}: {len(theirs)} sentences, the English {english.name} has {len(ours)}:\n"
        + "\n".join(f"  en: {s}" for s in ours)
        + "\n"
        + "\n".join(f"  {language}: {s}" for s in theirs)
    )
    for number, (en, other) in enumerate(zip(ours, theirs, strict=True), 1):
        assert numbers(other) == numbers(en), (
            f"{translated}, sentence {number}: numbers {numbers(other)} where the English has "
            f"{numbers(en)}\n  en: {en}\n  {language}: {other}"
        )
