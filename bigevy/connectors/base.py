"""The contract every connector keeps, the one error it raises, and the shared HTTP fetch.

A connector turns one source into a `Batch`. It never decides what is new: the runner compares
each batch with what it delivered before. Anything wrong with the source (unreachable, HTTP
error, timeout, bytes that are not the promised format) is raised as `SourceError`, whose
message becomes the source's health reason, so it is written for an operator to act on.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from bigevy.connectors.spec import SourceSpec
from bigevy.errors import BigEvyError
from bigevy.http.alerts.protocol import AlertIn
from bigevy.http.knowledge.protocol import DocumentCreate
from bigevy.knowledge.records import DocumentIn


class SourceError(BigEvyError):
    """A source could not be read or did not hold what it should; the message says which.
    Its URLs are shown without credentials: readers see it in the sources' health."""

    status_code = 502
    type = "source_error"

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(redact_urls(message), **kwargs)


#: Query parameters that may carry a credential (`?apikey=`, `&access_token=`, `&sig=`).
_SECRET_PARAM = re.compile(r"key|token|secret|pass|sig|auth|credential|session", re.IGNORECASE)
_URL = re.compile(r"https?://[^\s'\"<>]+")


def shown_url(url: str) -> str:
    """`url` as anyone may read it: no user info, and `***` for the values of query
    parameters named like credentials (a feed's API key in its URL)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = "&".join(
        f"{name}=***" if _SECRET_PARAM.search(name) else f"{name}={value}" if sep else name
        for name, sep, value in (p.partition("=") for p in parts.query.split("&") if p)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_urls(text: str) -> str:
    """`text` with every URL in it as `shown_url` shows it."""
    return _URL.sub(lambda m: shown_url(m.group(0)), text)


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


#: Redirects followed for one fetch, at most.
MAX_REDIRECTS = 5


async def fetch_bytes(client: httpx.AsyncClient, spec: SourceSpec, url: str) -> bytes:
    """GET `url` with the source's timeout and size limit; failures as `SourceError`.

    `url` is the source's own, or a link or redirect found in what it served. Those are
    followed only within the source's origin or to a host it lists in `follow_hosts`, never
    to a loopback, private or link-local address other than its own, and the source's headers
    (API keys) go only to its own origin (`checked_target`). Redirects are followed here, not
    by httpx, so every hop is checked."""
    for _ in range(MAX_REDIRECTS + 1):
        await checked_target(spec, url)
        headers = spec.headers if _origin(url) == _origin(spec.url or "") else {}
        try:
            async with client.stream(
                "GET", url, headers=headers, timeout=spec.timeout_s, follow_redirects=False
            ) as response:
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    continue
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
    raise SourceError(f"more than {MAX_REDIRECTS} redirects fetching {url}")


async def checked_target(spec: SourceSpec, url: str) -> None:
    """`SourceError` unless `url` may be fetched for this source: its own origin (which the
    operator chose, loopback or not), or a host its `follow_hosts` names that resolves to no
    loopback, private, link-local or reserved address (a feed's link must not reach the
    server's own network)."""
    if _origin(url) == _origin(spec.url or ""):
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or host not in spec.follow_hosts:
        raise SourceError(
            f"{url}: links and redirects are followed only within {_origin(spec.url or '')} "
            "or to the source's follow_hosts"
        )
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port)
    except OSError as exc:
        raise SourceError(f"cannot resolve {host}: {exc}") from None
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not ip.is_global or ip.is_multicast:
            raise SourceError(f"{url}: {host} resolves to {ip}, which is not a public address")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


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
