"""Documents from a local folder an operator (or a sync job) fills: .md, .txt and .jsonl files.

A .md or .txt file is one document, id `<source>:<relative path>`, titled by its leading
Markdown heading (else its file name). A .jsonl file holds one document per line in bigEVY's
own fields (id, title, text, and optionally category, source, url, region, language,
priority; the source's settings fill the rest); its ids become `<source>:<id>`. Symbolic
links are not followed. The folder is a mirror: a removed file (or
line) is a deleted document. Files are the operator's own, so one unreadable file fails the
whole fetch with its name, instead of quietly deleting what it used to hold.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import httpx

from bigevy.connectors.base import Batch, SourceError, document_id, make_document
from bigevy.connectors.spec import SourceSpec
from bigevy.knowledge.records import DocumentIn

SUFFIXES = frozenset((".md", ".markdown", ".txt", ".jsonl"))


class DirectoryConnector:
    """Every .md, .txt and .jsonl file under a folder (hidden files and folders left out)."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    async def fetch(self, client: httpx.AsyncClient) -> Batch:
        return await asyncio.to_thread(self.scan)

    def scan(self) -> Batch:
        """The folder's documents now (blocking: run it off the event loop)."""
        root = self.spec.path
        assert root is not None
        if not root.is_dir():
            raise SourceError(f"directory {root} does not exist or is not a folder")
        batch = Batch(complete=bool(self.spec.mirror))
        seen: dict[str, Path] = {}
        for path in sorted(self._files(root)):
            for doc in self._read(root, path):
                if doc.id in seen:
                    raise SourceError(f"{path}: document id {doc.id!r} also in {seen[doc.id]}")
                seen[doc.id] = path
                batch.documents.append(doc)
        return batch

    def _files(self, root: Path) -> list[Path]:
        """The folder's own files: no symbolic link is followed (one to the signing key would
        become a searchable document shipped to nodes), nor anything outside the folder."""
        real = root.resolve()
        return [
            p
            for p in root.rglob("*")
            if p.suffix.lower() in SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
            and not _linked(root, p)
            and p.is_file()
            and p.resolve().is_relative_to(real)
        ]

    def _read(self, root: Path, path: Path) -> list[DocumentIn]:
        try:
            # O_NOFOLLOW: a file swapped for a link after the listing is refused too.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            with os.fdopen(fd, "rb") as file:
                if os.fstat(file.fileno()).st_size > self.spec.max_bytes:
                    raise SourceError(f"{path} exceeds {self.spec.max_bytes} bytes")
                content = file.read().decode("utf-8")
        except FileNotFoundError:
            return []  # removed while scanning: gone, as the next scan will also see
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read {path}: {exc}") from None
        if path.suffix.lower() == ".jsonl":
            return [self._line(path, n, line) for n, line in _lines(content)]
        if not content.strip():
            return []
        relative = path.relative_to(root).as_posix()
        return [
            self._document(
                str(path),
                {
                    "id": document_id(self.spec.name, relative),
                    "title": _title(path, content),
                    "text": content.strip(),
                },
            )
        ]

    def _line(self, path: Path, number: int, line: str) -> DocumentIn:
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            raise SourceError(f"{path}:{number}: invalid JSON: {exc}") from None
        if not isinstance(fields, dict):
            raise SourceError(f"{path}:{number}: expected a JSON object per line")
        if isinstance(fields.get("id"), str):
            # Namespaced like every id of the source: a line cannot overwrite a document of
            # another source, or an operator's.
            fields["id"] = document_id(self.spec.name, fields["id"])
        return self._document(f"{path}:{number}", fields)

    def _document(self, where: str, fields: dict[str, object]) -> DocumentIn:
        values = {
            "category": self.spec.category,
            "source": self.spec.source,
            "region": self.spec.region,
            "language": self.spec.language,
            "priority": self.spec.priority or "normal",
            **fields,
        }
        try:
            return make_document(**values)
        except ValueError as exc:
            raise SourceError(f"{where}: {exc}") from None


def _linked(root: Path, path: Path) -> bool:
    """Whether `path` or a folder between it and `root` is a symbolic link."""
    here = path
    while here != root:
        if here.is_symlink():
            return True
        here = here.parent
    return False


def _lines(content: str) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(content.splitlines(), 1) if line.strip()]


def _title(path: Path, content: str) -> str:
    """A leading Markdown heading, else the file name in words."""
    for line in content.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            if heading:
                return heading
        elif line.strip():
            break
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name
