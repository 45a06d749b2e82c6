"""bigEVY's Grafana dashboards, as code: built with Grafana's Foundation SDK, pushed to a Grafana by
`bigevy dashboards push` or written as JSON for file provisioning (`monitoring/grafana/`).

Every query reads only metrics that exist: bigEVY's own (`bigevy/metrics.py`, which Ray exports
with a `ray_` prefix) and Ray Serve's (names checked against Ray 2.60's `ray/serve/_private`).
Histograms are read through `_bucket` and `_count` only: Ray does not always export `_sum`.
`ray_bigevy_nodes` is a gauge every gateway replica reports alike, so it is aggregated with
`max`, never `sum` (that would count each node once per replica).
"""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

#: Every panel reads the Prometheus the dashboard's `datasource` variable picks, so one JSON
#: works in any Grafana whatever its datasource's uid.
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "[$__rate_interval]"
#: Model deployments are named `model-<id>` (`ModelSpec.deployment_name`).
MODELS = 'deployment=~"model-.+"'
#: The knowledge replica and the encoder it calls for every query's embedding.
KNOWLEDGE = 'deployment=~"knowledge|embedder"'
#: What Grafana substitutes at query time, resolved the way a 1-minute panel would see it.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "${datasource}": "prometheus",
    "$datasource": "prometheus",
}

Query = tuple[str, str]  # (PromQL, legend)
Rows = Sequence[tuple[str, Sequence[Any]]]  # (row title, panel builders)


def _braced(selector: str) -> str:
    return f"{{{selector}}}" if selector else ""


def rate(metric: str, by: str = "", selector: str = "") -> str:
    """Per-second rate of a counter (or a histogram's `_count`), summed by `by`."""
    grouping = f" by ({by}) " if by else ""
    return f"sum{grouping}(rate({metric}{_braced(selector)}{RATE}))"


def quantile(q: float, histogram: str, by: str = "", selector: str = "") -> str:
    """The `q` quantile of a Ray histogram over the rate interval, per `by`."""
    labels = f"{by}, le" if by else "le"
    buckets = f"rate({histogram}_bucket{_braced(selector)}{RATE})"
    return f"histogram_quantile({q}, sum by ({labels}) ({buckets}))"


def quantiles(
    histogram: str, by: str, selector: str = "", qs: Sequence[float] = (0.5, 0.95)
) -> list[Query]:
    """p50 and p95 (by default) of `histogram` per `by`, each as a legend-named query."""
    legend = " ".join("{{" + label.strip() + "}}" for label in by.split(",")) if by else ""
    return [
        (quantile(q, histogram, by, selector), f"p{round(q * 100)} {legend}".strip()) for q in qs
    ]


def share(part_selector: str, metric: str = "ray_bigevy_escalations_total", by: str = "") -> str:
    """The share of `metric`'s rate that matches `part_selector`."""
    return f"{rate(metric, by, part_selector)} / {rate(metric, by)}"


def _with_queries(panel: Any, unit: str, queries: Sequence[Query]) -> Any:
    for ref, (expr, legend) in zip(string.ascii_uppercase, queries, strict=False):
        target = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
        panel.with_target(target)
    return panel.datasource(PROMETHEUS).unit(unit)


def graph(
    title: str, description: str, unit: str, *queries: Query, stacked: bool = False
) -> timeseries.Panel:
    """A time series of `queries`; `stacked` where the series add up to a whole."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .height(8)
        .span(12)
        .fill_opacity(10)
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if stacked:
        panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    return _with_queries(panel, unit, queries)


def figure(title: str, description: str, unit: str, *queries: Query, span: int = 6) -> stat.Panel:
    """One number per query (the last value), for the row of headline figures."""
    panel = stat.Panel().title(title).description(description).height(4).span(span)
    panel.graph_mode(common.BigValueGraphMode.AREA)
    panel.reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
    return _with_queries(panel, unit, queries)


def distribution(title: str, description: str, unit: str, histogram: str) -> heatmap.Panel:
    """A Ray histogram's buckets over time (how many observations fell in each, per second):
    the whole spread of what nodes report, not one quantile of it."""
    target = (
        prometheus.Dataquery()
        .expr(f"sum by (le) (rate({histogram}_bucket{RATE}))")
        .legend_format("{{le}}")
        .format(PromQueryFormat.HEATMAP)
        .ref_id("A")
    )
    return (
        heatmap.Panel()
        .title(title)
        .description(description)
        .height(8)
        .span(12)
        .datasource(PROMETHEUS)
        .with_target(target)
        .calculate(False)  # Prometheus already holds the buckets
        .show_tooltip()
        .y_axis(heatmap.YAxisConfig().unit(unit))
    )


def _dashboard(uid: str, title: str, description: str, rows: Rows) -> dict[str, Any]:
    """The dashboard's JSON model: a datasource variable, a link to the other bigEVY
    dashboards, and `rows` of panels, numbered in order so the ids are stable."""
    board = (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["bigevy"])
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .with_variable(
            builders.DatasourceVariable("datasource").label("Prometheus").type("prometheus")
        )
        .link(
            builders.DashboardLink("bigEVY")
            .type(DashboardLinkType.DASHBOARDS)
            .tags(["bigevy"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )
    ids = itertools.count(1)
    for row_title, row_panels in rows:
        board.with_row(builders.Row(row_title).id(next(ids)))
        for panel in row_panels:
            board.with_panel(panel.id(next(ids)))
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def overview() -> dict[str, Any]:
    esc = "ray_bigevy_escalations_total"
    headline = [
        figure("Escalations", "Escalations answered per second.", "reqps", (rate(esc), "")),
        figure(
            "No verified answer",
            "Share of escalations nothing vetted was about: knowledge gaps.",
            "percentunit",
            (share('outcome="no_verified_answer"'), ""),
        ),
        figure(
            "Escalation p95",
            "95th percentile of an escalation's total time.",
            "s",
            (quantile(0.95, "ray_bigevy_escalation_seconds", selector='stage="total"'), ""),
        ),
        figure(
            "Error replies",
            "Error replies per second (bigEVY's own: 4xx and 5xx, by its error code).",
            "reqps",
            (rate("ray_bigevy_http_errors_total"), ""),
        ),
    ]
    escalations = [
        graph(
            "Escalations by outcome",
            "answered, no_verified_answer, emergency, number, cache_hit.",
            "reqps",
            (rate(esc, "outcome"), "{{outcome}}"),
            stacked=True,
        ),
        graph(
            "Escalations by answer mode",
            "extractive (the passages' own sentences), generative (a model, checked against "
            "the passages), none.",
            "reqps",
            (rate(esc, "answer_mode"), "{{answer_mode}}"),
            stacked=True,
        ),
        graph(
            "Stage latency p50 / p95",
            "Time an escalation spends in retrieval, compose, generation, and in all (total).",
            "s",
            *quantiles("ray_bigevy_escalation_seconds", "stage"),
        ),
        graph(
            "Emergencies by kind",
            "Emergencies answered at once from the knowledge base, with numbers to call.",
            "reqps",
            (rate(esc, "emergency_kind", 'outcome="emergency"'), "{{emergency_kind}}"),
            stacked=True,
        ),
    ]
    return _dashboard(
        "bigevy-overview",
        "bigEVY / Overview",
        "Escalations from lilEVY nodes, how long they take, and what bigEVY refuses.",
        [("Now", headline), ("Escalations", escalations), ("Refusals and HTTP", _http())],
    )


def _http() -> list[Any]:
    serve_latency = "ray_serve_http_request_latency_ms"
    return [
        graph(
            "Error replies by status and code",
            "bigEVY's error replies: 429 rate limits, 401 by reason, 503 with Retry-After...",
            "reqps",
            (rate("ray_bigevy_http_errors_total", "status, code"), "{{status}} {{code}}"),
            stacked=True,
        ),
        graph(
            "Retry-After told p50 / p95",
            "The Retry-After callers refused for now (429, 503) were told to wait.",
            "s",
            *quantiles("ray_bigevy_retry_after_seconds", "status"),
        ),
        graph(
            "HTTP requests by status code",
            "Every request through Serve's HTTP proxy (health checks included).",
            "reqps",
            (rate("ray_serve_num_http_requests_total", "status_code"), "{{status_code}}"),
            stacked=True,
        ),
        graph(
            "HTTP errors by route",
            "Serve's count of error replies, by route and code.",
            "reqps",
            (
                rate("ray_serve_num_http_error_requests_total", "route, error_code"),
                "{{route}} {{error_code}}",
            ),
        ),
        graph(
            "HTTP latency p95 by route",
            "End-to-end latency at Serve's HTTP proxy.",
            "ms",
            (quantile(0.95, serve_latency, "route"), "{{route}}"),
        ),
    ]


def fleet() -> dict[str, Any]:
    nodes = "max by (region, state) (ray_bigevy_nodes)"
    overview_row = [
        figure(
            "Nodes by state",
            "Enrolled nodes: online, stale, offline, never_seen, revoked (all regions).",
            "none",
            (f"sum by (state) ({nodes})", "{{state}}"),
            span=24,
        ),
        graph(
            "Nodes by state per region",
            "Every gateway replica reports the same count, hence max, not sum.",
            "none",
            (nodes, "{{region}} {{state}}"),
            stacked=True,
        ),
        graph(
            "Heartbeats per region",
            "Heartbeats stored per second.",
            "reqps",
            (rate("ray_bigevy_heartbeats_total", "region"), "{{region}}"),
            stacked=True,
        ),
    ]
    return _dashboard(
        "bigevy-fleet",
        "bigEVY / Fleet",
        "The lilEVY nodes: state, what their heartbeats report, alerts and knowledge sync.",
        [
            ("Nodes", overview_row),
            ("What heartbeats report", _reports()),
            ("Alerts and sync", _alerts_and_sync()),
        ],
    )


def _reports() -> list[Any]:
    battery = "ray_bigevy_node_battery_percent"
    storage = "ray_bigevy_node_free_storage_mb"
    outbox = "ray_bigevy_node_outbox_depth"
    sms = "ray_bigevy_node_sms_total"
    faq_answered = rate(sms, "region", 'kind="faq_answered"')
    received = rate(sms, "region", 'kind="received"')
    # Ray writes bucket bounds as floats (le="20.0"); outbox's le="0.5" bucket is "empty".
    low_battery = rate(f"{battery}_bucket", "region", 'le="20.0"')
    empty_outbox = rate(f"{outbox}_bucket", "region", 'le="0.5"')
    return [
        distribution("Battery", "Battery charge reported in heartbeats.", "percent", battery),
        graph(
            "Heartbeats with battery at 20 % or less",
            "Share of each region's heartbeats from a node about to go dark.",
            "percentunit",
            (f"{low_battery} / {rate(f'{battery}_count', 'region')}", "{{region}}"),
        ),
        distribution("Free storage", "Free storage reported in heartbeats.", "decmbytes", storage),
        graph(
            "Free storage p5",
            "The low end: 5 % of heartbeats report less free storage than this.",
            "decmbytes",
            (quantile(0.05, storage, "region"), "{{region}}"),
        ),
        graph(
            "Outbox depth p95",
            "Messages waiting in a node's outbox (uplink trouble when it grows).",
            "none",
            (quantile(0.95, outbox, "region"), "{{region}}"),
        ),
        graph(
            "Heartbeats with a non-empty outbox",
            "Share of each region's heartbeats with messages still waiting to go out.",
            "percentunit",
            (f"1 - {empty_outbox} / {rate(f'{outbox}_count', 'region')}", "{{region}}"),
        ),
        graph(
            "SMS answered from FAQ on the nodes",
            "Share of the SMS each region's nodes received that they answered from FAQ entries "
            "bigEVY shipped them (as their heartbeats report).",
            "percentunit",
            (f"{faq_answered} / {received}", "{{region}}"),
        ),
    ]


def _alerts_and_sync() -> list[Any]:
    return [
        graph(
            "Alert delivery and ack p95",
            "From an alert's version being posted to reaching a node (delivered, by stream or "
            "heartbeat) and to the node acknowledging it (acked).",
            "s",
            (
                quantile(0.95, "ray_bigevy_alert_seconds", "event, via"),
                "{{event}} via {{via}}",
            ),
        ),
        graph(
            "Knowledge package bytes served",
            "resumed=true: downloads continuing a cut one (an HTTP Range).",
            "Bps",
            (rate("ray_bigevy_sync_package_bytes_total", "resumed"), "resumed={{resumed}}"),
            stacked=True,
        ),
        graph(
            "Sync errors",
            "Packages nodes refused or failed to apply (a failed verification among them).",
            "short",
            (f"sum(increase(ray_bigevy_sync_errors_total{RATE}))", "errors"),
        ),
        graph(
            "Nodes waiting for an alert",
            "Nodes without the current version of a live alert posted over a minute ago.",
            "none",
            ("max by (severity) (ray_bigevy_alert_nodes_waiting)", "{{severity}}"),
        ),
        graph(
            "Nodes by knowledge lag",
            "How many nodes hold knowledge at most this far behind the base's.",
            "none",
            ("max by (le) (ray_bigevy_sync_nodes_within_lag)", "within {{le}} s"),
        ),
    ]


def serve_deployments(selector: str, what: str) -> list[Any]:
    """Serve's own view of the deployments `selector` picks: traffic, latency, queues, health.
    Serve labels each series with its deployment."""
    deployments = f"{{{selector}}}"
    return [
        graph(
            "Requests per deployment",
            f"Calls each {what} deployment served.",
            "reqps",
            (
                rate("ray_serve_deployment_request_counter_total", "deployment", selector),
                "{{deployment}}",
            ),
        ),
        graph(
            "Processing latency p50 / p95",
            "Time a call spent in the deployment's replica (Serve's processing latency).",
            "ms",
            *quantiles("ray_serve_deployment_processing_latency_ms", "deployment", selector),
        ),
        graph(
            "Queued and processing",
            "Calls waiting in the gateway for a replica (queued; the gateway refuses past "
            "max_queued_requests) and calls the replicas are processing.",
            "none",
            (
                f"sum by (deployment) (ray_serve_replica_processing_queries{deployments})",
                "processing {{deployment}}",
            ),
            (
                f"sum by (deployment) (ray_serve_deployment_queued_queries{deployments})",
                "queued {{deployment}}",
            ),
        ),
        graph(
            "Healthy replicas",
            "Replicas passing Serve's health check (one still loading is not healthy).",
            "none",
            (
                f"sum by (deployment) (ray_serve_deployment_replica_healthy{deployments})",
                "{{deployment}}",
            ),
        ),
    ]


def knowledge() -> dict[str, Any]:
    esc = "ray_bigevy_escalations_total"
    escalations = [
        graph(
            "Retrieval and compose p50 / p95",
            "An escalation's search for vetted passages, and the SMS composed from them.",
            "s",
            *quantiles("ray_bigevy_escalation_seconds", "stage", 'stage=~"retrieval|compose"'),
        ),
        graph(
            "Answer cache hits",
            "Escalations answered from the answer cache, without a search or a model.",
            "reqps",
            (rate(esc, selector='outcome="cache_hit"'), "hits"),
        ),
        graph(
            "Cache hit share",
            "Share of escalations answered from the cache.",
            "percentunit",
            (share('outcome="cache_hit"'), "share"),
        ),
        graph(
            "No verified answer by language",
            "Questions nothing vetted was about: what the knowledge base lacks, per language.",
            "reqps",
            (rate(esc, "language", 'outcome="no_verified_answer"'), "{{language}}"),
            stacked=True,
        ),
    ]
    return _dashboard(
        "bigevy-knowledge",
        "bigEVY / Knowledge",
        "The knowledge replica and embedder (Serve's metrics), and how escalations use them.",
        [
            ("The knowledge base and its sources", _knowledge_base()),
            ("Knowledge and embedder deployments", serve_deployments(KNOWLEDGE, "knowledge")),
            ("Escalations", escalations),
        ],
    )


def _knowledge_base() -> list[Any]:
    return [
        graph(
            "The knowledge base",
            "Documents, chunks, rows no index covers yet, documents awaiting a re-embed.",
            "none",
            ('max by (measure) (ray_bigevy_knowledge{measure!="revision"})', "{{measure}}"),
        ),
        figure(
            "Revision",
            "The knowledge base's latest revision (what nodes sync to).",
            "none",
            ('max(ray_bigevy_knowledge{measure="revision"})', "revision"),
        ),
        graph(
            "Document writes",
            "Documents written per second: added, updated, unchanged (a re-send), deleted.",
            "reqps",
            (rate("ray_bigevy_document_writes_total", "status"), "{{status}}"),
            stacked=True,
        ),
        graph(
            "Answer cache",
            "Entries held by each knowledge replica's answer cache.",
            "none",
            ('sum(ray_bigevy_answer_cache{measure="entries"})', "entries"),
        ),
        graph(
            "FAQ",
            "Questions grouped by meaning (groups), those with an answer backed by its sources "
            "(answered), and answers withdrawn per second: by an operator, or because a source "
            "changed.",
            "none",
            ("max by (measure) (ray_bigevy_faq)", "{{measure}}"),
            (rate("ray_bigevy_faq_withdrawals_total", "reason"), "withdrawn: {{reason}}"),
        ),
        graph(
            "Sources: failures in a row",
            "Each data source's failed turns in a row (0 once one succeeds).",
            "none",
            ("max by (source) (ray_bigevy_connector_failures_in_a_row)", "{{source}}"),
        ),
        graph(
            "Sources: items fetched",
            "Items (documents and alerts) each source's successful fetches held, per second.",
            "reqps",
            (rate("ray_bigevy_connector_items_total", "source"), "{{source}}"),
        ),
    ]


def models() -> dict[str, Any]:
    generation = [
        graph(
            "Time to first token p50 / p95",
            "From a generation's start to its first text, per model.",
            "s",
            *quantiles("ray_bigevy_model_ttft_seconds", "model"),
        ),
        graph(
            "Decode rate p50",
            "Tokens per second of finished generations, per model.",
            "none",
            (quantile(0.5, "ray_bigevy_model_tokens_per_second", "model"), "{{model}}"),
        ),
        graph(
            "Tokens",
            "Tokens read (prompt) and written (completion) per second, per model.",
            "none",
            (rate("ray_bigevy_model_tokens_total", "model, kind"), "{{model}} {{kind}}"),
            stacked=True,
        ),
        graph(
            "Generation p50 / p95",
            "The generation stage of generative escalations (the model writing the SMS).",
            "s",
            *quantiles("ray_bigevy_escalation_seconds", "stage", 'stage="generation"'),
        ),
        graph(
            "Escalations by answer mode",
            "generative ones call a model; extractive and none do not.",
            "reqps",
            (rate("ray_bigevy_escalations_total", "answer_mode"), "{{answer_mode}}"),
            stacked=True,
        ),
    ]
    return _dashboard(
        "bigevy-models",
        "bigEVY / Models",
        "One Serve deployment per model (model-<id>): traffic, latency, queues, health.",
        [
            ("Model deployments", serve_deployments(MODELS, "model")),
            ("Generation", generation),
        ],
    )


DASHBOARDS: dict[str, Callable[[], dict[str, Any]]] = {
    "bigevy-overview": overview,
    "bigevy-fleet": fleet,
    "bigevy-knowledge": knowledge,
    "bigevy-models": models,
}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel but rows, those inside collapsed rows included."""
    for panel in dashboard.get("panels") or []:
        if panel.get("type") == "row":
            yield from panels(panel)
        else:
            yield panel


def panel_queries(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression in `dashboard`, with Grafana's variables resolved as a panel
    would see them (`$__rate_interval` as 1m), so Prometheus itself can evaluate them."""
    queries = []
    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries
