"""Wire models of the fleet routes: keys, enrolment, nodes and their heartbeats."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bigevy.fleet.roles import Role
from bigevy.http.alerts.protocol import SignedAlert

NodeState = Literal["online", "stale", "offline", "never_seen", "revoked"]


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    role: Role
    name: str = Field("", max_length=200)
    expires_in_s: int | None = Field(None, ge=60, description="None: never expires.")
    node_id: str | None = Field(None, description="Required for (and only for) a node key.")

    @model_validator(mode="after")
    def _node_keys_name_their_node(self) -> KeyCreate:
        if (self.role == Role.node) != (self.node_id is not None):
            raise ValueError("a node key needs node_id, and only a node key may have one")
        return self


class KeyOut(BaseModel):
    id: str
    role: Role
    name: str
    node_id: str | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    rotated_from: str | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="Shown once: only its hash is stored.")


class KeyList(BaseModel):
    data: list[KeyOut]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    expires_in_s: int | None = Field(None, ge=60, le=30 * 86400)
    region: str | None = Field(None, max_length=100, description="Pins the node's region.")
    note: str = Field("", max_length=200)


class TokenCreated(BaseModel):
    id: str
    token: str = Field(description="One-time; shown once.")
    expires_at: float
    region: str | None
    note: str


class TokenRevoked(BaseModel):
    id: str
    expires_at: float = Field(description="Now, or earlier if it had expired already.")


class NodeDescription(BaseModel):
    """What a lilEVY node says about itself when it enrols."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=200)
    region: str = Field("global", min_length=1, max_length=100)
    location: str = Field("", max_length=200)
    phone_number: str = Field("", max_length=32, pattern=r"^(\+?[0-9 ()-]{3,31})?$")
    hardware: str = Field("", max_length=200)
    model: str = Field("", max_length=200, description="The node's tiny local model.")
    storage_mb: int = Field(0, ge=0, le=10_000_000)
    software_version: str = Field("", max_length=64)


class EnrollRequest(NodeDescription):
    token: str = Field(min_length=1, max_length=200)


class Enrollment(BaseModel):
    node_id: str
    node_key: str = Field(description="The node's own API key; shown once.")
    signing_public_key: str = Field(description="Base64 Ed25519 key that signs packages.")
    heartbeat_interval_s: int


class HeartbeatIn(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    battery_percent: float | None = Field(None, ge=0, le=100)
    power_source: Literal["mains", "solar", "battery", "unknown"] = "unknown"
    uptime_s: float = Field(0, ge=0)
    sms_in: int = Field(0, ge=0, description="SMS received since the last heartbeat.")
    sms_out: int = Field(0, ge=0, description="SMS sent since the last heartbeat.")
    faq_answers: int = Field(
        0, ge=0, description="SMS the node answered from its FAQ entries since the last one."
    )
    queue_depth: int = Field(0, ge=0)
    model_version: str = Field("", max_length=200)
    knowledge_revision: int | None = Field(None, ge=0)
    free_storage_mb: float | None = Field(None, ge=0)
    connectivity: list[Literal["sms", "lora", "internet"]] = Field(default=[], max_length=3)
    measured_at: float | None = Field(
        None,
        ge=0,
        description="Unix seconds when the node took these figures (an outbox "
        "delivers late); default: when bigEVY receives them.",
    )


class Directive(BaseModel):
    """Something the node should do; a node that only heartbeats still learns everything."""

    type: Literal["knowledge_update", "artifact_update", "artifact_rollback"]
    detail: dict[str, Any] = {}


class HeartbeatReply(BaseModel):
    node_id: str
    state: NodeState
    server_time: float
    heartbeat_interval_s: int
    directives: list[Directive]
    alerts: list[SignedAlert] = Field(
        default=[], description="Alerts the node has not acknowledged (verify, show, ack)."
    )


class HeartbeatOut(HeartbeatIn):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    received_at: float


class NodeOut(NodeDescription):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    id: str
    state: NodeState
    enrolled_at: float
    last_seen_at: float | None
    revoked_at: float | None
    last_status: dict[str, Any] | None
    maintenance_window: str | None = Field(
        None, description="When updates may be offered ('HH:MM-HH:MM' UTC); null: any time."
    )


class NodeDetail(NodeOut):
    heartbeats: list[HeartbeatOut] = Field(description="The most recent first.")


class NodeList(BaseModel):
    data: list[NodeOut]
    total: int
