"""The metrics bigEVY exports, through Ray's metrics API.

Recorded in whichever replica does the work, they are aggregated by each node's Ray metrics
agent and scraped with Ray's own (Serve's requests, latencies, replicas, queues): Prometheus
finds every node through the discovery file Ray writes into its session dir. Ray prefixes
every name with `ray_`: `escalations_total` is `ray_bigevy_escalations_total` in PromQL.

Gauges are set again every interval by whoever reports them: Ray evicts a gauge value that
is not refreshed, so a figure set once would vanish from Prometheus.

Labels stay bounded: never a node id, a question or a document id. A value a client chooses
(a language) is kept only when it is one bigEVY knows, else `other`; a region is the one the
node was enrolled in (an operator's choice), not the one a message names.

`BIGEVY_METRICS=off` (default `on`) turns them off, for operators who do not scrape: no Ray
metric is made and recording does nothing. `deployments/app.py` passes it on to every replica.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from bigevy.knowledge.ingest import STARTER_KNOWLEDGE

#: Languages the safety pack is written in; any other is counted as `other`.
LANGUAGES = frozenset({"en"} | {p.name for p in STARTER_KNOWLEDGE.iterdir() if p.is_dir()})
#: Seconds: an SMS answer's stages take milliseconds (a cached answer) to a minute (a 13B
#: model on a busy GPU).
LATENCY_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60]
#: The environment variable that turns bigEVY's metrics off.
SWITCH = "BIGEVY_METRICS"


def recording() -> bool:
    """Whether bigEVY records its metrics: `BIGEVY_METRICS` is `on` (the default) or `off`."""
    value = os.environ.get(SWITCH, "on")
    if value not in ("on", "off"):
        raise ValueError(f"{SWITCH} must be 'on' or 'off', not {value!r}")
    return value == "on"


recording()  # a wrong value stops every process at import, not each request later


class _Off:
    """Every metric with `BIGEVY_METRICS=off`: records nothing."""

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        pass

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        pass

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        pass


_OFF = _Off()


class _Metric:
    """A Ray metric made on first use. Ray is imported then, not when this module is: importing
    Ray reads its auth settings from the environment, and `bigevy up` (which imports the fleet
    service, and so this module) sets them only once it knows which token its Ray takes."""

    def __init__(self, kind: str, name: str, **options: Any) -> None:
        self.kind, self.name, self.options = kind, name, options
        self._made: Any = None

    def _metric(self) -> Any:
        if self._made is None:
            if not recording():
                self._made = _OFF  # decided once: the hot path stays one call either way
            else:
                from ray.util import metrics

                self._made = getattr(metrics, self.kind)(self.name, **self.options)
        return self._made

    def inc(self, value: float = 1.0, tags: dict[str, str] | None = None) -> None:
        self._metric().inc(value, tags=tags)

    def observe(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._metric().observe(value, tags=tags)

    def set(self, value: float, tags: dict[str, str] | None = None) -> None:
        self._metric().set(value, tags=tags)


def Counter(name: str, **options: Any) -> _Metric:
    return _Metric("Counter", name, **options)


def Gauge(name: str, **options: Any) -> _Metric:
    return _Metric("Gauge", name, **options)


def Histogram(name: str, **options: Any) -> _Metric:
    return _Metric("Histogram", name, **options)


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
NODE_SMS = Counter(
    "bigevy_node_sms_total",
    description="SMS nodes received (`received`), and of them those they answered from FAQ "
    "entries (`faq_answered`), as their heartbeats report, by the node's region.",
    tag_keys=("region", "kind"),
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
MODEL_TTFT = Histogram(
    "bigevy_model_ttft_seconds",
    description="Time from a generation's start to its first text, per model.",
    boundaries=[0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30],
    tag_keys=("model",),
)
MODEL_TOKENS_PER_SECOND = Histogram(
    "bigevy_model_tokens_per_second",
    description="Decode rate of each finished generation, per model.",
    boundaries=[5, 10, 20, 40, 80, 160, 320, 640],
    tag_keys=("model",),
)
MODEL_TOKENS = Counter(
    "bigevy_model_tokens_total",
    description="Tokens read (prompt) and written (completion), per model.",
    tag_keys=("model", "kind"),
)
KNOWLEDGE = Gauge(
    "bigevy_knowledge",
    description="The knowledge base: `documents`, `tombstones`, `chunks`, `revision`, "
    "`unindexed_rows` (rows no index covers yet), `reembed_pending` (documents a change of "
    "embedding model has yet to re-embed); reported by its one writer.",
    tag_keys=("measure",),
)
DOCUMENT_WRITES = Counter(
    "bigevy_document_writes_total",
    description="Documents written, by outcome (added, updated, unchanged, deleted).",
    tag_keys=("status",),
)
ANSWER_CACHE = Gauge(
    "bigevy_answer_cache",
    description="The answer cache of each knowledge replica: `entries`, `bytes`, `hits`, "
    "`misses` (the last two count since the replica started).",
    tag_keys=("measure",),
)
FAQ = Gauge(
    "bigevy_faq",
    description="FAQ groups (`groups`: questions grouped by meaning) and, of them, those with "
    "an answer backed by its sources (`answered`); reported by the knowledge writer.",
    tag_keys=("measure",),
)
FAQ_WITHDRAWALS = Counter(
    "bigevy_faq_withdrawals_total",
    description="FAQ answers withdrawn, by reason (`operator`; `source_changed`: a document "
    "an answer came from changed or went).",
    tag_keys=("reason",),
)
CONNECTOR_ROUNDS = Counter(
    "bigevy_connector_rounds_total",
    description="Each source's fetch-and-deliver turns, by whether they succeeded.",
    tag_keys=("source", "ok"),
)
CONNECTOR_ITEMS = Counter(
    "bigevy_connector_items_total",
    description="Items (documents and alerts) each source's successful fetches held.",
    tag_keys=("source",),
)
CONNECTOR_FAILURES_IN_A_ROW = Gauge(
    "bigevy_connector_failures_in_a_row",
    description="How many turns in a row each source has failed (0 once one succeeds).",
    tag_keys=("source",),
)
CONNECTOR_LAST_SUCCESS = Gauge(
    "bigevy_connector_last_success_timestamp_seconds",
    description="Unix time of each source's last successful turn (age: time() - this).",
    tag_keys=("source",),
)
#: An alert not on a node this long after its version was posted counts as waiting.
ALERT_DELIVERY_BUDGET_S = 60.0
ALERTS_WAITING = Gauge(
    "bigevy_alert_nodes_waiting",
    description="Nodes that have not received the current version of a live alert posted "
    f"over {ALERT_DELIVERY_BUDGET_S:.0f} s ago, by the alert's severity; every gateway "
    "replica reports the same figure (aggregate with max).",
    tag_keys=("severity",),
)
#: Lag buckets (seconds) of the sync-lag snapshot.
SYNC_LAG_BOUNDS = (0.0, 3600.0, 86400.0, 7 * 86400.0)
SYNC_LAG = Gauge(
    "bigevy_sync_nodes_within_lag",
    description="Nodes whose knowledge lags the base by at most `le` seconds (cumulative, as "
    "a histogram's buckets; le=+Inf counts every node): the lag as a distribution, never a "
    "series per node.",
    tag_keys=("le",),
)
DATA_DIR_BYTES = Gauge(
    "bigevy_data_dir_bytes",
    description="The disk holding the data dir, as each gateway replica's host sees it: "
    "`free` and `total` bytes.",
    tag_keys=("measure",),
)
