"""What the runner remembers per source: its health, and the content hash of each item it
delivered. Kept in one JSON file, replaced atomically (temp file, fsync, rename), so a restart
neither redelivers everything nor finds a half-written file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

STATE_VERSION = 1


class SourceHealth(BaseModel):
    """How a source is doing, as an operator reads it."""

    name: str
    kind: str
    status: Literal["pending", "healthy", "unhealthy"] = "pending"
    reason: str = Field("", description="Why it is unhealthy; empty when healthy.")
    consecutive_failures: int = 0
    last_attempt: float | None = Field(None, description="Unix seconds.")
    last_success: float | None = Field(None, description="Unix seconds.")
    next_due: float = Field(0.0, description="Unix seconds of the next fetch.")
    items_seen: int = Field(0, description="Documents and alerts in the last good fetch.")
    delivered_total: int = Field(0, description="New or changed items and deletions delivered.")
    warnings: list[str] = Field(
        default_factory=list, description="Items skipped or guessed at in the last good fetch."
    )


class SourceState(BaseModel):
    health: SourceHealth
    documents: dict[str, str] = Field(
        default_factory=dict, description="Delivered document id -> content hash."
    )
    alerts: dict[str, str] = Field(
        default_factory=dict, description="Delivered 'sender|identifier' -> content hash."
    )


class StateStore:
    """The runner's memory in a JSON file; with no path, memory only (tests, one-off runs)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> dict[str, SourceState]:
        """Saved states by source name; an unreadable file is set aside, not fatal."""
        if self.path is None or not self.path.exists():
            return {}
        try:
            raw = json.loads(self.path.read_text())
            if raw.get("version") != STATE_VERSION:
                raise ValueError(f"state version {raw.get('version')!r}")
            return {
                name: SourceState.model_validate(state) for name, state in raw["sources"].items()
            }
        except (OSError, ValueError, KeyError, AttributeError, ValidationError) as exc:
            aside = self.path.with_suffix(self.path.suffix + ".corrupt")
            os.replace(self.path, aside)
            raise StateCorrupt(f"{self.path} unreadable ({exc}); moved to {aside}") from None

    def save(self, states: dict[str, SourceState]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "version": STATE_VERSION,
            "sources": {name: state.model_dump(mode="json") for name, state in states.items()},
        }
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, separators=(",", ":"))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class StateCorrupt(Exception):
    """The state file could not be read; it was moved aside and the runner starts afresh."""
