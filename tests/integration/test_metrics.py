"""bigEVY's metrics, as an operator's Prometheus sees them: a real Prometheus scrapes a running
bigEVY through the discovery file Ray writes, and PromQL returns what the traffic produced."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bigevy.config import DeploymentSpec, FleetSpec, ModelSpec, RateLimit, Settings
from bigevy.connectors.spec import ConnectorsSpec, SourceSpec
from bigevy.ops.dashboards import DASHBOARDS, panel_queries
from tests.integration.test_sync import Node
from tests.support.cluster import API, REPO, load_starter_pack
from tests.support.prometheus import Prometheus, prometheus, serve_cluster_with_dashboard
from tests.support.waiting import wait_for

#: A second registry entry of the same model, trusted to write answers from the sources.
GENERATIVE = "smollm2-generative"


FIXTURES = (serve_cluster_with_dashboard, prometheus)


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory source: the connector metrics need a source that works offline."""
    folder = tmp_path_factory.mktemp("notes")
    (folder / "market-day.md").write_text("# Market day\n\nThe market opens on Tuesdays.\n")
    return folder


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, notes: Path) -> Settings:
    source = SourceSpec(name="local-notes", kind="directory", path=notes, category="community")
    default = Settings().models[0]
    generative = ModelSpec(
        **{
            **default.model_dump(),
            "id": GENERATIVE,
            "answers": "generative",
            "deployment": DeploymentSpec(num_replicas=1, num_cpus=0.5),
        }
    )
    # Guessed keys are held back after 3: how a 429 with Retry-After comes about.
    limits = {**FleetSpec().rate_limits, "failed_auth": RateLimit(per_second=0.5, burst=3)}
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        models=[default, generative],
        connectors=ConnectorsSpec(sources=[source]),
        fleet=FleetSpec(rate_limits=limits),
    )


@pytest.fixture(scope="module")
def traffic(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What an hour of a small fleet does, in a few calls."""
    load_starter_pack(base_url)
    node = Node(base_url, tmp_path_factory.mktemp("nodes"), "metrics-node", "KE")
    beat = {
        "battery_percent": 35,
        "free_storage_mb": 900,
        "queue_depth": 4,
        "sms_in": 6,
        "faq_answers": 2,
    }
    for _ in range(3):
        reply = node.post(f"/v1/nodes/{node.id}/heartbeat", beat)
        assert reply.status_code == 200, reply.text
    answers = []
    for message, model in (
        ("How do I make river water safe to drink?", None),
        ("A snake bit my brother, what do I do?", None),
        ("pls help what is the capital of france", None),  # nothing vetted answers it
        ("How do I make river water safe to drink?", None),  # asked again: the cache
        ("How do I treat a burn?", GENERATIVE),  # a model trusted to write writes it
    ):
        body = {"node_id": node.id, "message": message, "model": model, "max_tokens": 60}
        reply = node.post("/v1/evy/query", body)
        assert reply.status_code == 200, reply.text
        answers.append(reply.json())
    modes = [a["answer_mode"] for a in answers[:4]]
    assert modes == ["extractive", "extractive", "none", "extractive"]
    assert answers[3]["timings"].get("cache_hit") == 1.0
    # The questions' FAQ groups are counted after the replies; an operator takes one back.
    wait_for(lambda: API.get(f"{base_url}/v1/faq").json()["data"], 60, "an FAQ group")
    entry = API.get(f"{base_url}/v1/faq").json()["data"][0]
    withdrawn = API.post(f"{base_url}/v1/faq/{entry['id']}/withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    chat = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 8}
    assert API.post(f"{base_url}/v1/chat/completions", json=chat, timeout=120).status_code == 200
    wrong_key = {"Authorization": "Bearer nope"}
    assert httpx.get(f"{base_url}/v1/models", headers=wrong_key).status_code == 401
    assert node.sync().applied  # a package served
    refused = node.post("/v1/sync/error", {"error": "signature did not verify"})
    assert refused.status_code == 200, refused.text
    alert = API.post(f"{base_url}/v1/alerts", json=FLOOD | {"expires": time.time() + 3600})
    reply = node.post(f"/v1/nodes/{node.id}/heartbeat", beat).json()
    assert [a["alert_id"] for a in reply["alerts"]] == [alert.json()["id"]]
    acked = node.post(f"/v1/alerts/{alert.json()['id']}/ack", {"version": 1})
    assert acked.status_code == 200, acked.text
    guesses = [
        httpx.get(f"{base_url}/v1/models", headers={"Authorization": f"Bearer bek_guess{i}.x"})
        for i in range(5)
    ]  # last: the runner's address is held back a moment
    assert guesses[-1].status_code == 429 and guesses[-1].headers["Retry-After"]
    return {"node": node, "answers": answers}


FLOOD = {
    "identifier": "metrics-flood",
    "event": "Flash Flood",
    "severity": "Severe",
    "urgency": "Immediate",
    "headline": "Flash flood warning",
    "instruction": "Move to higher ground now.",
    "regions": ["KE"],
}


def seen(prometheus: Prometheus, promql: str, at_least: float = 1.0) -> float:
    """Wait until `promql` reaches `at_least` (Ray's agent and the scrape lag the traffic)."""
    try:
        wait_for(lambda: prometheus.value(promql) >= at_least, 90, promql)
    except AssertionError:
        metric = promql.split("(", 1)[-1].split("{")[0].split(")")[0]
        raise AssertionError(f"{promql}: what there is: {prometheus.query(metric)}") from None
    return prometheus.value(promql)


def test_prometheus_finds_ray_through_its_discovery_file(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    wait_for(lambda: prometheus.targets_up() >= 1, 90, "a Ray target up")
    # Serve's own metrics come with it.
    assert seen(prometheus, "sum(ray_serve_num_http_requests_total)") >= 1


def test_escalations_by_outcome_and_stage_latency(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    assert seen(prometheus, 'sum(ray_bigevy_escalations_total{region="KE"})', 5) == 5
    emergency = 'sum(ray_bigevy_escalations_total{outcome="emergency",emergency_kind="medical"})'
    assert seen(prometheus, emergency) == 1
    unanswered = 'sum(ray_bigevy_escalations_total{outcome="no_verified_answer"})'
    assert seen(prometheus, unanswered) == 1
    # The trusted model's answer is extractive too when its sentences fail the checks.
    answered = 'sum(ray_bigevy_escalations_total{outcome="answered"})'
    assert seen(prometheus, answered, 2) == 2
    assert seen(prometheus, 'sum(ray_bigevy_escalations_total{outcome="cache_hit"})') == 1
    assert seen(prometheus, 'sum(ray_bigevy_escalations_total{language="en"})', 5) == 5
    total = 'sum(ray_bigevy_escalation_seconds_count{stage="total"})'
    assert seen(prometheus, total, 5) == 5
    # Only an extractive answer is composed; only a model-written one has a generation stage.
    assert seen(prometheus, 'sum(ray_bigevy_escalation_seconds_count{stage="compose"})') >= 2
    buckets = 'sum by (le) (ray_bigevy_escalation_seconds_bucket{stage="total"})'
    p95 = f"histogram_quantile(0.95, {buckets})"
    assert 0 < prometheus.value(p95) <= 60


def test_refusals_by_status_and_code(prometheus: Prometheus, traffic: dict[str, Any]) -> None:
    refused = 'sum(ray_bigevy_http_errors_total{status="401",code="invalid_api_key"})'
    assert seen(prometheus, refused) >= 1
    held = 'sum(ray_bigevy_http_errors_total{status="429",code="rate_limit_exceeded"})'
    assert seen(prometheus, held) >= 1
    assert seen(prometheus, 'sum(ray_bigevy_retry_after_seconds_count{status="429"})') >= 1


def test_the_fleet_by_region_and_state(prometheus: Prometheus, traffic: dict[str, Any]) -> None:
    assert seen(prometheus, 'sum(ray_bigevy_heartbeats_total{region="KE"})', 4) == 4
    assert seen(prometheus, 'sum(ray_bigevy_node_battery_percent_count{region="KE"})', 4) == 4
    low = 'sum(ray_bigevy_node_battery_percent_bucket{region="KE",le="50.0"})'
    assert seen(prometheus, low, 4) == 4  # every beat said 35 %
    within_5 = 'sum(ray_bigevy_node_outbox_depth_bucket{region="KE",le="5.0"})'
    assert seen(prometheus, within_5, 4) == 4  # every beat said 4 waiting
    assert prometheus.value('sum(ray_bigevy_node_outbox_depth_bucket{region="KE",le="1.0"})') == 0
    sms = 'sum(ray_bigevy_node_sms_total{region="KE",kind="%s"})'
    assert seen(prometheus, sms % "received", 24) == 24
    assert seen(prometheus, sms % "faq_answered", 8) == 8
    # Every gateway replica counts the same nodes: max, not sum.
    assert seen(prometheus, 'max(ray_bigevy_nodes{state="online",region="KE"})') == 1


def test_alert_delivery_and_acknowledgement_times(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    delivered = 'sum(ray_bigevy_alert_seconds_count{event="delivered",via="heartbeat"})'
    assert seen(prometheus, delivered) == 1
    assert seen(prometheus, 'sum(ray_bigevy_alert_seconds_count{event="acked"})') == 1


def test_models_time_to_first_token_and_decode_rate(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    model = 'model="smollm2-135m-instruct"'
    assert seen(prometheus, f"sum(ray_bigevy_model_ttft_seconds_count{{{model}}})") >= 1
    assert seen(prometheus, f"sum(ray_bigevy_model_tokens_per_second_count{{{model}}})") >= 1
    completion = f'sum(ray_bigevy_model_tokens_total{{{model},kind="completion"}})'
    assert seen(prometheus, completion) >= 2


def test_the_knowledge_base_its_writes_and_the_answer_cache(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    documents = 'max(ray_bigevy_knowledge{measure="documents"})'
    assert seen(prometheus, documents, 20) >= 20  # the starter pack, and the notes
    assert seen(prometheus, 'max(ray_bigevy_knowledge{measure="chunks"})', 20) >= 20
    assert seen(prometheus, 'sum(ray_bigevy_document_writes_total{status="added"})', 20) >= 20
    assert seen(prometheus, 'max(ray_bigevy_answer_cache{measure="entries"})') >= 1
    assert seen(prometheus, 'max(ray_bigevy_faq{measure="groups"})') >= 1
    withdrawn = 'sum(ray_bigevy_faq_withdrawals_total{reason="operator"})'
    assert seen(prometheus, withdrawn) == 1


def test_sync_packages_and_lag(prometheus: Prometheus, traffic: dict[str, Any]) -> None:
    assert seen(prometheus, 'sum(ray_bigevy_sync_package_bytes_total{resumed="false"})') > 1000
    # The node applied everything there was when it synced: no lag beyond the snapshot's.
    assert seen(prometheus, 'max(ray_bigevy_sync_nodes_within_lag{le="+Inf"})') == 1
    assert seen(prometheus, "sum(ray_bigevy_sync_errors_total)") == 1


def test_connectors_rounds_items_and_last_success(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    source = 'source="local-notes"'
    assert seen(prometheus, f'sum(ray_bigevy_connector_rounds_total{{{source},ok="true"}})') >= 1
    assert seen(prometheus, f"sum(ray_bigevy_connector_items_total{{{source}}})") >= 1
    last = f"max(ray_bigevy_connector_last_success_timestamp_seconds{{{source}}})"
    assert 0 <= time.time() - seen(prometheus, last, 1e9) < 600
    failures = f"max(ray_bigevy_connector_failures_in_a_row{{{source}}})"
    wait_for(lambda: bool(prometheus.query(failures)), 90, failures)
    assert prometheus.value(failures) == 0


def test_alerts_waiting_and_the_data_dir(prometheus: Prometheus, traffic: dict[str, Any]) -> None:
    # Delivered at once: no node is waiting (the figure is there, at 0).
    waiting = 'max(ray_bigevy_alert_nodes_waiting{severity="Severe"})'
    wait_for(lambda: bool(prometheus.query(waiting)), 90, waiting)
    assert prometheus.value(waiting) == 0
    free = 'max(ray_bigevy_data_dir_bytes{measure="free"})'
    total = 'max(ray_bigevy_data_dir_bytes{measure="total"})'
    assert 0 < seen(prometheus, free) <= seen(prometheus, total)


def test_every_metric_the_alert_rules_read_is_exported(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    """The rules' own tests feed them scripted series: this checks the names are real."""
    rules = yaml.safe_load((REPO / "monitoring" / "prometheus" / "rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    names = sorted({name for expr in exprs for name in re.findall(r"\bray_[a-z_]+", expr)})
    assert len(names) >= 8
    for name in names:
        wait_for(lambda n=name: bool(prometheus.query(f'{{__name__="{n}"}}')), 90, name)


@pytest.mark.parametrize("uid", sorted(DASHBOARDS))
def test_every_dashboard_panel_returns_data_after_traffic(
    prometheus: Prometheus, traffic: dict[str, Any], uid: str
) -> None:
    # Over 10 minutes, not a panel's 1: the traffic came before the waits above.
    queries = [q.replace("[1m]", "[10m]") for q in panel_queries(DASHBOARDS[uid]())]
    assert queries
    for query in queries:
        wait_for(lambda q=query: bool(prometheus.query(q)), 90, f"{uid}: {query}")
