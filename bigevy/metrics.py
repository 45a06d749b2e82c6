"""The metrics bigEVY exports, through Ray's metrics API.

Recorded in whichever replica does the work, they are aggregated by each node's Ray metrics
agent and scraped with Ray's own (Serve's requests, latencies, replicas, queues): Prometheus
finds every node through the discovery file Ray writes into its session dir. Ray prefixes
every name with `ray_`: `escalations_total` is `ray_bigevy_escalations_total` in PromQL.

Labels stay bounded: never a node id, a question or a document id. A value a client chooses
(a language) is kept only when it is one bigEVY knows, else `other`; a region is the one the
node was enrolled in (an operator's choice), not the one a message names.
"""

from __future__ import annotations

from collections.abc import Iterable

from ray.util.metrics import Counter, Gauge, Histogram

from bigevy.knowledge.ingest import STARTER_KNOWLEDGE

#: Languages the safety pack is written in; any other is counted as `other`.
LANGUAGES = frozenset({"en"} | {p.name for p in STARTER_KNOWLEDGE.iterdir() if p.is_dir()})
#: Seconds: an SMS answer's stages take milliseconds (a cached answer) to a minute (a 13B
#: model on a busy GPU).
LATENCY_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60]


def bounded(value: str | None, known: Iterable[str], other: str = "other") -> str:
    """`value` when it is among `known`, else `other` (`none` when there is no value)."""
    if not value:
        return "none"
    return value if value in known else other


ESCALATIONS = Counter(
    "bigevy_escalations_total",
    description="Escalations answered, by the node's region, language, answer mode, outcome "
    "(answered, no_verified_answer, emergency, number, cache_hit) and emergency kind.",
    tag_keys=("region", "language", "answer_mode", "outcome", "emergency_kind"),
)
ESCALATION_SECONDS = Histogram(
    "bigevy_escalation_seconds",
    description="Time an escalation spent in each stage (retrieval, compose, generation) and "
    "in all (total).",
    boundaries=LATENCY_S,
    tag_keys=("stage",),
)
REFUSALS = Counter(
    "bigevy_http_errors_total",
    description="Error replies, by status and bigEVY's error code (429 rate limits, 401 "
    "authentication failures by reason, 503 with Retry-After, ...).",
    tag_keys=("status", "code"),
)
RETRY_AFTER = Histogram(
    "bigevy_retry_after_seconds",
    description="The Retry-After told to callers refused for now (429, 503).",
    boundaries=[1, 2, 5, 10, 30, 60],
    tag_keys=("status",),
)
HEARTBEATS = Counter(
    "bigevy_heartbeats_total",
    description="Heartbeats stored, by the node's region.",
    tag_keys=("region",),
)
NODE_BATTERY = Histogram(
    "bigevy_node_battery_percent",
    description="Battery charge nodes report in their heartbeats.",
    boundaries=[10, 20, 30, 50, 70, 90, 100],
    tag_keys=("region",),
)
NODE_FREE_STORAGE = Histogram(
    "bigevy_node_free_storage_mb",
    description="Free storage nodes report in their heartbeats.",
    boundaries=[16, 64, 256, 1024, 4096, 16384],
    tag_keys=("region",),
)
NODE_OUTBOX = Histogram(
    "bigevy_node_outbox_depth",
    description="Messages waiting in a node's outbox, as its heartbeat reports them.",
    boundaries=[0.5, 1, 5, 20, 100, 500],  # Ray takes positive bounds: le=0.5 is "empty"
    tag_keys=("region",),
)
NODES = Gauge(
    "bigevy_nodes",
    description="Enrolled nodes by state (online, stale, offline, never_seen, revoked) and "
    "region; every gateway replica reports the same figure (aggregate with max).",
    tag_keys=("state", "region"),
)
PACKAGE_BYTES = Counter(
    "bigevy_sync_package_bytes_total",
    description="Knowledge package bytes served to nodes; `resumed` downloads continue a cut "
    "one (an HTTP Range).",
    tag_keys=("resumed",),
)
SYNC_ERRORS = Counter(
    "bigevy_sync_errors_total",
    description="Packages nodes refused or failed to apply (a failed verification among them).",
)
ALERT_DELIVERY = Histogram(
    "bigevy_alert_seconds",
    description="Seconds from an alert's version being posted to its reaching a node "
    "(`delivered`, by stream or heartbeat) and to the node's acknowledging it (`acked`).",
    boundaries=[0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600],
    tag_keys=("event", "via"),
)
