"""Documents from any JSON API, through a field mapping written in the source's config.

`items_path` finds the list of items ("data.items"); `fields` says which key of an item fills
each document field (dotted paths, list indexes as numbers). What no item carries comes from
the source's constants (category, source, region, language, priority). Items that do not fit
the mapping are skipped with a warning; a response where none fits is an error.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from bigevy.connectors.base import Batch, SourceError, document_id, fetch_bytes, make_document
from bigevy.connectors.spec import SourceSpec
from bigevy.knowledge.records import DocumentIn


class JsonApiConnector:
    """A JSON list of items, each mapped field by field onto a document."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec

    async def fetch(self, client: httpx.AsyncClient) -> Batch:
        url = self.spec.url
        assert url is not None
        try:
            data = json.loads(await fetch_bytes(client, self.spec, url))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"invalid JSON from {url}: {exc}") from None
        items = lookup(data, self.spec.items_path)
        if not isinstance(items, list):
            where = f"at {self.spec.items_path!r}" if self.spec.items_path else "at the root"
            raise SourceError(f"{url}: expected a list of items {where}, got {_kind(items)}")
        batch = Batch(complete=bool(self.spec.mirror))
        for n, item in enumerate(items[: self.spec.max_items]):
            try:
                batch.documents.append(self._document(item))
            except ValueError as exc:
                batch.warnings.append(f"item {n} skipped: {exc}")
        if items and not batch.documents:
            raise SourceError(f"{url}: none of {len(items)} items fits the field mapping")
        return batch

    def _document(self, item: Any) -> DocumentIn:
        if not isinstance(item, dict):
            raise ValueError(f"expected an object, got {_kind(item)}")
        spec = self.spec
        values: dict[str, Any] = {
            "category": spec.category,
            "source": spec.source,
            "region": spec.region,
            "language": spec.language,
            "priority": spec.priority or "normal",
        }
        for name, paths in spec.fields.items():
            value = _join([lookup(item, p) for p in ([paths] if isinstance(paths, str) else paths)])
            if value is not None:
                values[name] = value
        if not values.get("id"):
            raise ValueError(f"no id at {spec.fields['id']!r}")
        if not values.get("text"):
            raise ValueError(f"no text at {spec.fields['text']!r}")
        values["id"] = document_id(spec.name, values["id"])
        values.setdefault("title", values["text"].splitlines()[0][:120])
        return make_document(**values)


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path ('data.items', 'links.0.href'); None where there is none."""
    for part in filter(None, path.split(".")):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def _join(values: list[Any]) -> str | None:
    """Scalars as text, lists of them one per line, several paths separated by blank lines."""
    parts = []
    for value in values:
        if isinstance(value, list):
            value = "\n".join(str(v) for v in value if v not in (None, ""))
        if value is None or isinstance(value, dict):
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        if text.strip():
            parts.append(text.strip())
    return "\n\n".join(parts) or None


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
