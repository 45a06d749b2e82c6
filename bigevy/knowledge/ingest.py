"""Reading documents out of files: JSONL, Markdown, plain text and HTML, one file or a tree.

A record that cannot be read is reported with its file and line and skipped; the rest go on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

SUFFIXES = {
    ".jsonl": "jsonl",
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
}
#: The knowledge pack bigEVY ships (first aid, water, weather safety): `bigevy up` loads it.
STARTER_KNOWLEDGE = Path(__file__).parent / "starter"
ID_PATTERN = re.compile(r"[^A-Za-z0-9._:/-]+")


@dataclass(frozen=True)
class Record:
    """A document read from a file, or the reason it could not be (`error`)."""

    origin: str  # "path:line" for JSONL, "path" otherwise
    document: dict[str, Any] | None = None
    error: str | None = None


def files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


def read(path: Path, defaults: dict[str, str]) -> Iterator[Record]:
    """Every record of every readable file under `path`, with `defaults` filled in."""
    root = path if path.is_dir() else path.parent
    for file in files(path):
        kind = SUFFIXES.get(file.suffix.lower())
        if kind is None:
            yield Record(str(file), error=f"unsupported file type {file.suffix!r}")
            continue
        if kind == "jsonl":
            yield from _jsonl(file, defaults)
            continue
        try:
            raw = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            yield Record(str(file), error=f"cannot read: {exc}")
            continue
        meta: dict[str, Any] = {}
        if kind == "markdown":
            try:
                meta, raw = _front_matter(raw)
            except ValueError as exc:
                yield Record(str(file), error=str(exc))
                continue
        title, text = {"markdown": _markdown, "text": _plain, "html": _html}[kind](raw, file)
        if not text.strip():
            yield Record(str(file), error="no text")
            continue
        doc_id = _clean_id(str(file.relative_to(root).with_suffix("")))
        document = {**defaults, "id": doc_id, "title": title, "text": text, **meta}
        yield Record(str(file), document=document)


def _clean_id(value: str) -> str:
    return ID_PATTERN.sub("-", value).strip("-./")[:256] or "document"


def _jsonl(file: Path, defaults: dict[str, str]) -> Iterator[Record]:
    with file.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield jsonl_record(line, f"{file}:{number}", defaults)


def jsonl_record(line: str, origin: str, defaults: dict[str, str]) -> Record:
    """One JSONL line (`id` or BEIR's `_id`, `text`, optional fields) as a document."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        return Record(origin, error=f"invalid JSON: {exc.msg}")
    if not isinstance(data, dict):
        return Record(origin, error="not a JSON object")
    doc_id = data.get("id", data.get("_id"))
    text = data.get("text")
    if doc_id is None or not isinstance(text, str) or not text.strip():
        return Record(origin, error="needs an id (or _id) and a non-empty text")
    document = {
        **defaults,
        "id": _clean_id(str(doc_id)),
        "title": str(data.get("title") or text[:80]),
        "text": text,
    }
    for key in ("category", "source", "url", "region", "language", "priority"):
        if isinstance(data.get(key), str):
            document[key] = data[key]
    return Record(origin, document=document)


def _front_matter(raw: str) -> tuple[dict[str, Any], str]:
    """A leading `---` YAML block sets document fields (category, source, region, ...)."""
    if not raw.startswith("---\n"):
        return {}, raw
    end = raw.find("\n---", 4)
    if end < 0:
        raise ValueError("front matter opened with --- but never closed")
    try:
        meta = yaml.safe_load(raw[4:end]) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError("front matter must be a mapping")
    return {str(k): str(v) for k, v in meta.items()}, raw[end + 4 :]


def _unwrap(text: str) -> str:
    """Hard-wrapped lines joined back into paragraphs; paragraphs kept apart by a blank line."""
    paragraphs = re.split(r"\n\s*\n", text)
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _markdown(raw: str, file: Path) -> tuple[str, str]:
    heading = re.search(r"^#\s+(.+)$", raw, re.M)
    if heading and raw[heading.end() :].strip():
        # The heading that titles the document is not also its first paragraph: every chunk
        # starts with the title already, and answers quoted "Malaria Malaria spreads ...".
        raw = raw[: heading.start()] + raw[heading.end() :]
    text = re.sub(r"^#{1,6}\s*(.*)$", r"\1\n", raw, flags=re.M)  # a heading is a paragraph
    text = re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", text)
    text = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", text)
    return (heading.group(1).strip() if heading else file.stem), _unwrap(text)


def _plain(raw: str, file: Path) -> tuple[str, str]:
    first = next((line.strip() for line in raw.splitlines() if line.strip()), file.stem)
    return first[:200], _unwrap(raw)


class _HTMLText(HTMLParser):
    SKIP = {"script", "style", "nav", "footer", "head"}
    BLOCK = {"p", "div", "br", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section"}

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.title = ""
        self._skipping = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skipping:
            self.parts.append(data)


def _html(raw: str, file: Path) -> tuple[str, str]:
    parser = _HTMLText()
    parser.feed(raw)
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    text = re.sub(r"\s*\n\s*", "\n", text).strip()
    return (parser.title.strip() or file.stem), text
