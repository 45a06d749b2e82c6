"""Writing knowledge packages in the format of docs/package-format.md.

A package is a zstd-compressed JSON Lines payload and a manifest that names every entry with the
sha256 of its line and the sha256 of the whole payload. The manifest is sent as the exact JSON
text that was signed (Ed25519), so a reader in any language verifies bytes, never a re-encoding.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import zstandard

from bigevy.fleet.signing import SigningKey

FORMAT = "bigevy-package/1"
#: zstd level: 9 compresses text within a few % of 19 at a fraction of the time (package
#: builds for a whole fleet are measured in benchmarks/sync_packages.py).
LEVEL = 9


def entry_line(record: dict[str, Any]) -> bytes:
    """One payload line: canonical JSON (sorted keys, no spaces, UTF-8)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Payload:
    data: bytes  # compressed
    sha256: str
    uncompressed_bytes: int
    entries: list[dict[str, Any]]  # [{"id", "op", "sha256"}] in payload order


def build_payload(records: Iterable[dict[str, Any]]) -> Payload:
    lines, entries = [], []
    for record in records:
        line = entry_line(record)
        lines.append(line)
        entries.append(
            {"id": record["id"], "op": record["op"], "sha256": hashlib.sha256(line).hexdigest()}
        )
    raw = b"\n".join(lines) + (b"\n" if lines else b"")
    data = zstandard.ZstdCompressor(level=LEVEL).compress(raw)
    return Payload(data, hashlib.sha256(data).hexdigest(), len(raw), entries)


@dataclass(frozen=True)
class Signed:
    """A document as its signer wrote it: the JSON text and the signature over its bytes."""

    text: str
    signature: str  # base64 Ed25519

    @classmethod
    def of(cls, document: dict[str, Any], key: SigningKey) -> Signed:
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        return cls(text, base64.b64encode(key.sign(text.encode())).decode())
