"""The contract every connector keeps, the one error it raises, and the shared HTTP fetch.

A connector turns one source into a `Batch`. It never decides what is new: the runner compares
each batch with what it delivered before. Anything wrong with the source (unreachable, HTTP
error, timeout, bytes that are not the promised format) is raised as `SourceError`, whose
message becomes the source's health reason, so it is written for an operator to act on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from pydantic import ValidationError

from bigevy.api.alerts import AlertIn
from bigevy.api.knowledge import DocumentCreate
from bigevy.connectors.spec import SourceSpec
from bigevy.errors import BigEvyError
from bigevy.knowledge.records import DocumentIn


class SourceError(BigEvyError):
    """A source could not be read or did not hold what it should; the message says which."""

    status_code = 502
    type = "source_error"


@dataclass
class Batch:
    """Everything a source holds right now, as bigEVY's documents and alerts.

    `complete` means the batch is the whole source (a mirror): ids delivered before and missing
    now are deleted. `deleted` names ids the source itself reports as gone. `warnings` are items
    skipped or guessed at, shown in the source's health.
    """

    documents: list[DocumentIn] = field(default_factory=list)
    alerts: list[AlertIn] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    complete: bool = False
    warnings: list[str] = field(default_factory=list)


class Connector(Protocol):
    """One source's reader. Built from its `SourceSpec`; holds no delivery state."""

    spec: SourceSpec

    async def fetch(self, client: httpx.AsyncClient) -> Batch:
        """The source's current items; raises `SourceError` when it cannot tell."""
        ...


async def fetch_bytes(client: httpx.AsyncClient, spec: SourceSpec, url: str) -> bytes:
    """GET `url` with the source's headers, timeout and size limit; failures as `SourceError`."""
    try:
        async with client.stream(
            "GET", url, headers=spec.headers, timeout=spec.timeout_s, follow_redirects=True
        ) as response:
            if response.status_code >= 400:
                raise SourceError(f"HTTP {response.status_code} from {url}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > spec.max_bytes:
                    raise SourceError(f"response from {url} exceeds {spec.max_bytes} bytes")
            return bytes(body)
    except httpx.TimeoutException:
        raise SourceError(f"timed out after {spec.timeout_s:g}s fetching {url}") from None
    except httpx.HTTPError as exc:
        raise SourceError(f"cannot fetch {url}: {type(exc).__name__}: {exc}") from None


_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._:/-]")


def document_id(source_name: str, key: str) -> str:
    """A knowledge-base id for item `key` of a source: readable, stable, and valid.

    Characters the store refuses become '-', with a short hash of the original appended so
    two keys that differ only there stay two documents.
    """
    clean = _ID_UNSAFE.sub("-", key).strip("-") or "item"
    if clean != key or len(source_name) + 1 + len(clean) > 256:
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        clean = f"{clean[: 240 - len(source_name)]}-{digest}"
    return f"{source_name}:{clean}"


def make_document(**fields: Any) -> DocumentIn:
    """A `DocumentIn` checked like the knowledge API checks it; `ValueError` says what is wrong."""
    if isinstance(fields.get("title"), str):
        fields["title"] = clip(fields["title"].strip(), 500)
    try:
        checked = DocumentCreate.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(problems) from None
    return DocumentIn(**checked.model_dump())


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
