"""Chunking: sizes, sentence boundaries and overlap, on real-looking text."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigevy.knowledge.chunking import chunk_text

SENTENCES = [
    "Boil water for at least one minute before drinking it.",
    "If you cannot boil water, use six drops of unscented bleach per gallon.",
    "Let the treated water stand for thirty minutes before use.",
    "Store treated water in clean, covered containers.",
    "During a flood, never walk or drive through moving water.",
    "Six inches of fast water can knock an adult down.",
]


def test_short_text_is_one_chunk() -> None:
    (chunk,) = chunk_text("Boil water first. Then drink it.")
    assert chunk.text == "Boil water first. Then drink it." and chunk.start == 0


def test_chunks_hold_whole_sentences_within_size_and_overlap() -> None:
    text = " ".join(SENTENCES * 8)
    chunks = chunk_text(text, size=300, overlap=80)
    assert len(chunks) > 4
    for chunk in chunks:
        assert len(chunk.text) <= 300
        assert chunk.text[0].isupper() and chunk.text.endswith(".")
        assert text[chunk.start : chunk.end] == chunk.text
    for before, after in itertools.pairwise(chunks):
        shared = before.end - after.start
        assert 0 < shared <= 80  # the next chunk repeats the end of the previous one


def test_a_sentence_longer_than_a_chunk_is_split_between_words() -> None:
    long = "word " * 300
    chunks = chunk_text(long.strip(), size=100, overlap=0)
    assert all(len(c.text) <= 100 for c in chunks)
    assert all(c.text.split() and set(c.text.split()) == {"word"} for c in chunks)


def test_paragraph_breaks_end_sentences() -> None:
    chunks = chunk_text(
        "Title without a period\n\nFirst line of the body. " * 40, size=200, overlap=40
    )
    assert all("\n\n" not in c.text or len(c.text) <= 200 for c in chunks)


@pytest.mark.parametrize(("size", "overlap"), [(10, 0), (600, 300), (600, -1)])
def test_bad_sizes_are_refused(size: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_text("text", size=size, overlap=overlap)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from([*SENTENCES, "word " * 50, "\n\n", "Dr. Smith said so."]), max_size=60
    ).map(" ".join)
)
def test_every_word_is_in_some_chunk(text: str) -> None:
    chunks = chunk_text(text, size=200, overlap=50)
    covered = " ".join(text[c.start : c.end] for c in chunks)
    assert all(len(c.text) <= 200 for c in chunks)
    assert set(text.split()) <= set(covered.split())
