"""Wire models of the update routes: artifacts, rollouts, node reports, maintenance windows."""

from __future__ import annotations

import re
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ArtifactKind = Literal["model", "software", "config"]
RolloutState = Literal["active", "paused", "completed", "aborted", "rolling_back", "rolled_back"]
NodeStatus = Literal[
    "pending", "offered", "downloading", "installed", "healthy", "failed", "rolled_back"
]
#: What a node may report of itself (the rest bigEVY sets).
Reported = Literal["downloading", "installed", "healthy", "failed", "rolled_back"]
Action = Literal["pause", "resume", "abort", "rollback"]

VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+:-]{0,63}$"
_WINDOW = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


class ArtifactOut(BaseModel):
    id: str
    kind: ArtifactKind
    version: str
    name: str
    size: int
    sha256: str
    hardware: list[str]
    created_at: float
    created_by: str | None
    signed: str = Field(description="The signed description, as the exact JSON text signed.")
    signature: str = Field(description="Base64 Ed25519 signature of `signed`.")
    download_url: str
    rollouts: int = Field(0, description="Rollouts that use it.")


class ArtifactList(BaseModel):
    data: list[ArtifactOut]


class Target(BaseModel):
    """Which nodes a rollout reaches: every filter given must hold (`all`: the whole fleet)."""

    model_config = ConfigDict(extra="forbid")

    all: bool = False
    regions: list[str] = Field([], max_length=200)
    hardware: list[str] = Field([], max_length=200)
    nodes: list[str] = Field([], max_length=100_000)

    @model_validator(mode="after")
    def _names_someone(self) -> Target:
        named = bool(self.regions or self.hardware or self.nodes)
        if self.all == named:
            raise ValueError("name the nodes (regions, hardware or nodes), or all, not both")
        return self


class RolloutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    artifact_id: str = Field(max_length=32)
    to: Target
    phases: list[float] = Field(
        [5, 25, 100],
        min_length=1,
        max_length=20,
        description="Cumulative percents of the target, the last 100.",
    )
    pause_above: float | None = Field(
        None, ge=0, lt=1, description="Default: the configured `updates.pause_above`."
    )
    soak_s: float | None = Field(None, ge=0, description="Default: `updates.soak_s`.")
    auto_rollback: bool = Field(False, description="Roll back by itself when it pauses.")

    @field_validator("phases")
    @classmethod
    def _phases_grow_to_100(cls, phases: list[float]) -> list[float]:
        if any(p <= 0 or p > 100 for p in phases):
            raise ValueError("each phase is a percent above 0 and at most 100")
        if any(b <= a for a, b in pairwise(phases)):
            raise ValueError("phases grow: each percent above the one before")
        if phases[-1] != 100:
            raise ValueError(f"the last phase must be 100%, not {phases[-1]:g}%")
        return phases


class Counts(BaseModel):
    pending: int = 0
    offered: int = 0
    downloading: int = 0
    installed: int = 0
    healthy: int = 0
    failed: int = 0
    rolled_back: int = 0


class RolloutEventOut(BaseModel):
    at: float
    actor: str
    event: str
    detail: str


class RolloutOut(BaseModel):
    id: str
    artifact_id: str
    kind: ArtifactKind
    version: str
    target: Target
    phases: list[float]
    phase: int = Field(description="Index into `phases` of the phase now offered.")
    state: RolloutState
    reason: str
    pause_above: float
    soak_s: float
    auto_rollback: bool
    nodes: int
    reached: int = Field(description="Nodes in the phases offered so far.")
    counts: Counts
    phase_started_at: float
    created_at: float
    updated_at: float
    created_by: str | None


class RolloutDetail(RolloutOut):
    events: list[RolloutEventOut] = Field(description="Oldest first.")


class RolloutList(BaseModel):
    data: list[RolloutOut]


class RolloutNodeOut(BaseModel):
    node_id: str
    phase: int
    status: NodeStatus
    detail: str
    offered_at: float | None
    updated_at: float


class RolloutNodeList(BaseModel):
    data: list[RolloutNodeOut]


class RolloutCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=500)


class RolloutReport(BaseModel):
    """A node's news about its install."""

    model_config = ConfigDict(extra="forbid")

    status: Reported
    detail: str = Field("", max_length=500, description="Why it failed, what it runs now.")


class MaintenanceWindow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window: str | None = Field(
        description="'HH:MM-HH:MM' in UTC (may wrap midnight); null: any time.",
        examples=["01:00-05:00"],
    )

    @field_validator("window")
    @classmethod
    def _hh_mm(cls, window: str | None) -> str | None:
        if window is not None and not _WINDOW.match(window):
            raise ValueError("a window reads HH:MM-HH:MM (UTC), e.g. 01:00-05:00")
        return window
