"""The metadata database's tables: who may call bigEVY, which nodes exist and how they are.

Knowledge lives in LanceDB; this is the small, relational rest, shared by every gateway
replica: SQLite in the data dir on one host, PostgreSQL when replicas run on many hosts.
Times are Unix seconds (floats): the same on both databases, and what the API speaks.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """A key is `bevy_<id>_<secret>`: the id finds the row, only the secret's hash is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    node_id: Mapped[str | None] = mapped_column(ForeignKey("nodes.id"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)
    #: The key this one replaced by rotation, for the audit trail.
    rotated_from: Mapped[str | None] = mapped_column(String(32))


class Node(Base):
    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(100), index=True)
    location: Mapped[str] = mapped_column(String(200), default="")
    phone_number: Mapped[str] = mapped_column(String(32), default="")
    hardware: Mapped[str] = mapped_column(String(200), default="")
    model: Mapped[str] = mapped_column(String(200), default="")
    storage_mb: Mapped[int] = mapped_column(Integer, default=0)
    software_version: Mapped[str] = mapped_column(String(64), default="")
    enrolled_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float | None] = mapped_column(Float, index=True)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    #: The latest heartbeat's figures, so listing the fleet reads one row per node.
    last_status: Mapped[dict | None] = mapped_column(JSON)
    #: The node's one live alert stream (any gateway replica): a newer one replaces it.
    alert_stream: Mapped[str | None] = mapped_column(String(32))
    #: "HH:MM-HH:MM" in UTC (may wrap midnight): updates are offered only inside it.
    maintenance_window: Mapped[str | None] = mapped_column(String(11))


class EnrollmentToken(Base):
    """One-time: only its hash is kept, and `used_by` is set in the same transaction as the
    node it created."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(200), default="")
    region: Mapped[str | None] = mapped_column(String(100))
    created_by: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)
    used_by: Mapped[str | None] = mapped_column(ForeignKey("nodes.id"))


class Heartbeat(Base):
    __tablename__ = "heartbeats"
    __table_args__ = (
        UniqueConstraint("node_id", "idempotency_key", name="uq_heartbeat_idempotency"),
        Index("ix_heartbeats_node_time", "node_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"))
    received_at: Mapped[float] = mapped_column(Float)
    measured_at: Mapped[float] = mapped_column(Float)
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    battery_percent: Mapped[float | None] = mapped_column(Float)
    power_source: Mapped[str] = mapped_column(String(16))
    uptime_s: Mapped[float] = mapped_column(Float)
    sms_in: Mapped[int] = mapped_column(Integer)
    sms_out: Mapped[int] = mapped_column(Integer)
    queue_depth: Mapped[int] = mapped_column(Integer)
    model_version: Mapped[str] = mapped_column(String(200), default="")
    knowledge_revision: Mapped[int | None] = mapped_column(Integer)
    free_storage_mb: Mapped[float | None] = mapped_column(Float)
    connectivity: Mapped[list] = mapped_column(JSON)
    faq_answers: Mapped[int | None] = mapped_column(Integer)


class IdempotentReply(Base):
    """A reply already given to (caller, Idempotency-Key): a retried request gets it again
    instead of being done twice (a lilEVY outbox retries until it hears back)."""

    __tablename__ = "idempotent_replies"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotent_reply"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(100))
    route: Mapped[str] = mapped_column(String(100))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class Escalation(Base):
    """One answered lilEVY question, for analytics. SMS are personal: the question is kept
    redacted (no digits, no addresses), not for an emergency, and only for
    `question_retention_s`; its length, language and outcome stay for `escalation_retention_s`."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_region_time", "region", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node_id: Mapped[str | None] = mapped_column(ForeignKey("nodes.id"), index=True)
    received_at: Mapped[float] = mapped_column(Float, index=True)
    language: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(100))
    message_chars: Mapped[int] = mapped_column(Integer)
    emergency_kind: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(200))
    #: Which build of `model` answered (ModelSpec.served_version); None before revision 0007.
    model_version: Mapped[str | None] = mapped_column(String(64))
    sms_segments: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    #: None on escalations recorded before analytics (revision 0005): read as `unknown`.
    outcome: Mapped[str | None] = mapped_column(String(24))
    answer_mode: Mapped[str | None] = mapped_column(String(16))
    #: The knowledge category of the first document cited (`none`: nothing was cited).
    category: Mapped[str | None] = mapped_column(String(32))
    question: Mapped[str | None] = mapped_column(Text)


class NodeSync(Base):
    """What knowledge a node holds (the package it acknowledged), and how its sync goes."""

    __tablename__ = "node_sync"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    knowledge_revision: Mapped[int] = mapped_column(Integer, default=0)
    package_id: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[float] = mapped_column(Float)
    acked_at: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_error_at: Mapped[float | None] = mapped_column(Float)


class Subscription(Base):
    """What a node wants to hold; no row: the defaults (its region and global, every category,
    the default budget and shares)."""

    __tablename__ = "subscriptions"

    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    categories: Mapped[list] = mapped_column(JSON, default=list)
    regions: Mapped[list] = mapped_column(JSON, default=list)
    languages: Mapped[list] = mapped_column(JSON, default=list)
    budget_mb: Mapped[float] = mapped_column(Float)
    shares: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[float] = mapped_column(Float)


class Package(Base):
    """A package built for one node: its signed manifest; the payload is a file beside it."""

    __tablename__ = "packages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # delta | full
    base_package_id: Mapped[str | None] = mapped_column(String(64))
    from_revision: Mapped[int] = mapped_column(Integer)
    to_revision: Mapped[int] = mapped_column(Integer)
    entry_count: Mapped[int] = mapped_column(Integer)
    payload_bytes: Mapped[int] = mapped_column(Integer)
    payload_sha256: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    acked_at: Mapped[float | None] = mapped_column(Float)


class Artifact(Base):
    """A file for the fleet (a model, software, config): stored once per sha256, described by
    the signed document nodes verify before installing it."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("kind", "version", name="uq_artifact_kind_version"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # model | software | config
    version: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    #: Hardware it runs on (a node's `hardware`); empty: any.
    hardware: Mapped[list] = mapped_column(JSON, default=list)
    signed: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(32))


class Rollout(Base):
    """An artifact offered to a set of nodes phase by phase (`phases`: cumulative percents)."""

    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[dict] = mapped_column(JSON)
    phases: Mapped[list] = mapped_column(JSON)
    phase: Mapped[int] = mapped_column(Integer, default=0)
    #: active | paused | completed | aborted | rolling_back | rolled_back
    state: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    pause_above: Mapped[float] = mapped_column(Float)
    soak_s: Mapped[float] = mapped_column(Float)
    auto_rollback: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Failures an operator accepted by resuming: only later ones count towards a pause.
    accepted_failures: Mapped[int] = mapped_column(Integer, default=0)
    phase_started_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(32))


class RolloutNode(Base):
    """One node of a rollout: its phase (fixed at creation) and how its install goes."""

    __tablename__ = "rollout_nodes"
    __table_args__ = (Index("ix_rollout_nodes_node_status", "node_id", "status"),)

    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    phase: Mapped[int] = mapped_column(Integer)
    #: pending | offered | downloading | installed | healthy | failed | rolled_back
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(500), default="")
    offered_at: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class RolloutEvent(Base):
    """Every change of a rollout's state, and who made it (`key:<id>`, `node:<id>`, `bigevy`)."""

    __tablename__ = "rollout_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id"), index=True)
    at: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str] = mapped_column(String(500), default="")


class Restore(Base):
    """A restore from a backup. Their count is the knowledge `generation` package manifests
    carry: a node that synced past the backup learns from it that bigEVY went back in time."""

    __tablename__ = "restores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    backup_id: Mapped[str] = mapped_column(String(64))
    backup_created_at: Mapped[float] = mapped_column(Float)
    restored_at: Mapped[float] = mapped_column(Float)


class BackupRun(Base):
    """A scheduled backup claimed by one gateway replica (`slot`: which interval it is)."""

    __tablename__ = "backup_runs"

    slot: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    started_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    backup_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(String(500))


OPERATOR_ORIGIN = "operator"


class Alert(Base):
    """An emergency alert (CAP's core fields) and the signed text nodes receive; `version`
    grows with every change (update, cancel), which is what nodes acknowledge."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("origin", "sender", "identifier", name="uq_alert_origin_identity"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    #: Who posted it: "operator", or "source:<name>" for a connector. CAP's (sender,
    #: identifier) names an alert within its origin only: a feed cannot update or cancel an
    #: operator's alert, or another feed's, by naming the same pair.
    origin: Mapped[str] = mapped_column(String(120), default=OPERATOR_ORIGIN)
    sender: Mapped[str] = mapped_column(String(200))
    identifier: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # active | cancelled
    event: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    urgency: Mapped[str] = mapped_column(String(16))
    regions: Mapped[list] = mapped_column(JSON)
    headline: Mapped[str] = mapped_column(String(500))
    sent: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float, index=True)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(32))
    signed: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))


class AlertDelivery(Base):
    """An alert version handed to a node (pushed or in a heartbeat reply), and its ack."""

    __tablename__ = "alert_deliveries"

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    first_sent_at: Mapped[float] = mapped_column(Float)
    last_sent_at: Mapped[float] = mapped_column(Float)
    sends: Mapped[int] = mapped_column(Integer)
    via: Mapped[str] = mapped_column(String(16))  # stream | heartbeat
    acked_version: Mapped[int | None] = mapped_column(Integer)
    acked_at: Mapped[float | None] = mapped_column(Float)


class Contribution(Base):
    """Knowledge a node offers from its own area, waiting for a person to review it."""

    __tablename__ = "contributions"
    __table_args__ = (UniqueConstraint("node_id", "content_hash"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node_id: Mapped[str] = mapped_column(ForeignKey("nodes.id"), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending|accepted|rejected
    title: Mapped[str] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(32))
    extra: Mapped[dict] = mapped_column(JSON, default=dict)  # the node's metadata
    received_at: Mapped[float] = mapped_column(Float)
    reviewed_at: Mapped[float | None] = mapped_column(Float)
    reviewed_by: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(500), default="")
    document_id: Mapped[str | None] = mapped_column(String(256))


class ConsoleSession(Base):
    """A signed-in console browser: its cookie reads `bevysession_<id>_<secret>`, only the
    secret's hash is kept. It acts with its API key's role, and ends with the key."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
