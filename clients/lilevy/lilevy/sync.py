"""Bringing a node's knowledge up to date: manifest → resumable download → verify and apply →
acknowledge. A download cut by the uplink stays on disk as `<package>.part` and the next try
asks only for the bytes after it (HTTP Range); a package that fails verification is reported
to bigEVY and deleted, and the store keeps what it had.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from lilevy.client import EdgeClient
from lilevy.errors import EdgeError, error_from_exception, error_from_response
from lilevy.knowledge import Applied, EdgeKnowledge, OutOfStep, PackageRejected

if TYPE_CHECKING:
    from lilevy.metrics import SyncFailure

CHUNK = 64 * 1024


@dataclass(frozen=True)
class SyncResult:
    applied: Applied | None  # None: already up to date
    downloaded_bytes: int  # bytes this call fetched (less than the package when resumed)


async def download(
    client: EdgeClient, url_path: str, dest: Path, size: int, max_bytes: int | None = None
) -> int:
    """Fetch `url_path` into `dest`, continuing a partial file; bytes fetched by this call.

    `max_bytes` stops early (as a cut uplink would); the part stays for the next call.
    """
    have = dest.stat().st_size if dest.exists() else 0
    if have >= size:
        return 0
    headers = {"Authorization": f"Bearer {client.key}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    fetched = 0
    try:
        async with client.http.stream(
            "GET", client.base_url + url_path, headers=headers, timeout=client.timeout
        ) as response:
            if response.status_code not in (200, 206):
                await response.aread()
                raise error_from_response(response)
            if response.status_code == 200 and have:
                have = 0  # the server sent it all again: start over
            with open(dest, "r+b" if have else "wb") as f:
                f.seek(have)
                async for chunk in response.aiter_bytes(CHUNK):
                    if max_bytes is not None and fetched + len(chunk) > max_bytes:
                        f.write(chunk[: max_bytes - fetched])
                        fetched = max_bytes
                        break
                    f.write(chunk)
                    fetched += len(chunk)
    except httpx.TransportError as exc:
        raise error_from_exception(exc) from exc
    finally:
        if client.metrics is not None:
            client.metrics.downloaded(fetched)  # a cut download's bytes crossed the uplink too
    return fetched


async def sync_knowledge(
    client: EdgeClient,
    store: EdgeKnowledge,
    work_dir: Path,
    *,
    full: bool = False,
    max_bytes: int | None = None,
) -> SyncResult:
    """One round of sync. Raises `PackageRejected` (after telling bigEVY) for a bad package,
    `EdgeError` when bigEVY cannot be reached or refuses; `max_bytes` simulates a cut. A delta
    that does not fit the store is followed by a full snapshot. Counted in the client's
    `metrics`, if it has any."""
    metrics = client.metrics
    try:
        try:
            result = await _sync_once(client, store, work_dir, full, max_bytes)
        except OutOfStep:
            if full:
                raise
            # This store is not where bigEVY thinks (it synced past a backup bigEVY was
            # restored from, or lost an ack): a full snapshot sets it right.
            result = await _sync_once(client, store, work_dir, True, max_bytes)
    except PackageRejected:
        if metrics is not None:
            metrics.sync_failed("rejected")
        raise
    except EdgeError as exc:
        if metrics is not None:
            metrics.sync_failed(_failure(exc))
        raise
    if metrics is not None and result.applied is not None:
        metrics.package_applied()
    return result


def _failure(exc: EdgeError) -> SyncFailure:
    """Why a sync did not finish, as the metrics count it."""
    if exc.code == "download_incomplete":
        return "incomplete"
    if exc.transient:
        return "unavailable"
    if exc.status is None:  # the node refused what bigEVY sent (a bad package id or URL)
        return "rejected"
    return "refused"


async def _sync_once(
    client: EdgeClient, store: EdgeKnowledge, work_dir: Path, full: bool, max_bytes: int | None
) -> SyncResult:
    work_dir.mkdir(parents=True, exist_ok=True)
    reply = await client.request(
        "GET", "/v1/sync/manifest", params={"full": str(full).lower()}, kind="sync"
    )
    if reply.status == 204:
        return SyncResult(None, 0)
    signed = reply.body
    manifest = _peek(signed["manifest"])
    # Neither field is signed: they are checked before use, as anything from the network.
    package_id, url_path = signed["package_id"], signed["download_url"]
    if not isinstance(package_id, str) or not _PACKAGE_ID.fullmatch(package_id):
        raise EdgeError(f"refused package id {package_id!r}", code="bad_package_id")
    if not _local_path(url_path):
        raise EdgeError(f"refused download URL {url_path!r}", code="bad_download_url")
    part = work_dir / f"{package_id}.part"
    fetched = await download(client, url_path, part, manifest["payload_bytes"], max_bytes)
    if part.stat().st_size < manifest["payload_bytes"]:
        raise EdgeError(
            f"download cut at {part.stat().st_size} of {manifest['payload_bytes']} bytes; "
            "the next sync resumes it",
            code="download_incomplete",
        )
    try:
        applied = store.apply(signed["manifest"], signed["signature"], part.read_bytes())
    except PackageRejected as exc:
        part.unlink(missing_ok=True)
        await client.request(
            "POST",
            "/v1/sync/error",
            json={"package_id": signed["package_id"], "error": exc.reason},
            kind="sync",
        )
        raise
    part.unlink(missing_ok=True)
    await client.request(
        "POST",
        "/v1/sync/ack",
        json={
            "package_id": applied.package_id,
            "revision": applied.to_revision,
            "payload_sha256": applied.payload_sha256,
        },
        kind="sync",
    )
    return SyncResult(applied, fetched)


#: A package id as bigEVY makes them; anything else could name a path out of the work dir.
_PACKAGE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _local_path(url_path: object) -> bool:
    """Whether `url_path` is a path on bigEVY itself: appended to the base URL, "@host/x" or
    "//host/x" would send the node's key to another host."""
    if not isinstance(url_path, str) or not url_path.startswith("/") or url_path.startswith("//"):
        return False
    parts = urlsplit(url_path)
    return not parts.scheme and not parts.netloc and "\\" not in url_path


def _peek(manifest_text: str) -> dict:
    """The manifest's sizes, to download by; trusted only after `EdgeKnowledge.check`."""
    return json.loads(manifest_text)
