"""bigEVY's metrics, as an operator's Prometheus sees them: a real Prometheus scrapes a running
bigEVY through the discovery file Ray writes, and PromQL returns what the traffic produced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.cluster import API, ServeCluster, enroll, load_starter_pack
from tests.support.prometheus import Prometheus
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def serve_cluster() -> Iterator[ServeCluster]:
    cluster = ServeCluster(dashboard=True)  # Ray's dashboard writes the discovery file
    yield cluster
    cluster.close()


@pytest.fixture(scope="module")
def prometheus(
    serve_cluster: ServeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    discovery = serve_cluster.session_dir / "prom_metrics_service_discovery.json"
    server = Prometheus(discovery, tmp_path_factory.mktemp("prometheus"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def traffic(base_url: str) -> dict[str, Any]:
    """What an hour of a small fleet does, in a few calls."""
    load_starter_pack(base_url)
    node = enroll(base_url, "metrics-node", region="KE")
    as_node = {"Authorization": f"Bearer {node['node_key']}"}
    beat = {"battery_percent": 35, "free_storage_mb": 900, "queue_depth": 4}
    for _ in range(3):
        reply = httpx.post(
            f"{base_url}/v1/nodes/{node['node_id']}/heartbeat", json=beat, headers=as_node
        )
        assert reply.status_code == 200, reply.text
    answers = []
    for message in (
        "How do I make river water safe to drink?",
        "A snake bit my brother, what do I do?",
        "pls help what is the capital of france",  # nothing vetted answers it
    ):
        body = {"node_id": node["node_id"], "message": message, "max_tokens": 40}
        reply = httpx.post(f"{base_url}/v1/evy/query", json=body, headers=as_node, timeout=120)
        assert reply.status_code == 200, reply.text
        answers.append(reply.json())
    assert answers[0]["answer_mode"] == "extractive" and answers[2]["answer_mode"] == "none"
    assert (
        httpx.get(f"{base_url}/v1/models", headers={"Authorization": "Bearer nope"}).status_code
        == 401
    )
    alert = API.post(
        f"{base_url}/v1/alerts",
        json={
            "identifier": "metrics-flood",
            "event": "Flash Flood",
            "severity": "Severe",
            "urgency": "Immediate",
            "headline": "Flash flood warning",
            "instruction": "Move to higher ground now.",
            "regions": ["KE"],
            "expires": time.time() + 3600,
        },
    ).json()
    reply = httpx.post(
        f"{base_url}/v1/nodes/{node['node_id']}/heartbeat", json=beat, headers=as_node
    ).json()
    assert [a["alert_id"] for a in reply["alerts"]] == [alert["id"]]
    acked = httpx.post(
        f"{base_url}/v1/alerts/{alert['id']}/ack", json={"version": 1}, headers=as_node
    )
    assert acked.status_code == 200, acked.text
    return {"node": node, "answers": answers}


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
    assert seen(prometheus, 'sum(ray_bigevy_escalations_total{region="KE"})', 3) == 3
    emergency = 'sum(ray_bigevy_escalations_total{outcome="emergency",emergency_kind="medical"})'
    assert seen(prometheus, emergency) == 1
    unanswered = 'sum(ray_bigevy_escalations_total{outcome="no_verified_answer"})'
    assert seen(prometheus, unanswered) == 1
    answered = 'sum(ray_bigevy_escalations_total{outcome="answered",answer_mode="extractive"})'
    assert seen(prometheus, answered) == 1
    assert seen(prometheus, 'sum(ray_bigevy_escalations_total{language="en"})', 3) == 3
    total = 'sum(ray_bigevy_escalation_seconds_count{stage="total"})'
    assert seen(prometheus, total, 3) == 3
    buckets = 'sum by (le) (ray_bigevy_escalation_seconds_bucket{stage="total"})'
    p95 = f"histogram_quantile(0.95, {buckets})"
    assert 0 < prometheus.value(p95) <= 60


def test_refusals_by_status_and_code(prometheus: Prometheus, traffic: dict[str, Any]) -> None:
    refused = 'sum(ray_bigevy_http_errors_total{status="401",code="invalid_api_key"})'
    assert seen(prometheus, refused) >= 1


def test_the_fleet_by_region_and_state(prometheus: Prometheus, traffic: dict[str, Any]) -> None:
    assert seen(prometheus, 'sum(ray_bigevy_heartbeats_total{region="KE"})', 4) == 4
    assert seen(prometheus, 'sum(ray_bigevy_node_battery_percent_count{region="KE"})', 4) == 4
    low = 'sum(ray_bigevy_node_battery_percent_bucket{region="KE",le="50.0"})'
    assert seen(prometheus, low, 4) == 4  # every beat said 35 %
    within_5 = 'sum(ray_bigevy_node_outbox_depth_bucket{region="KE",le="5.0"})'
    assert seen(prometheus, within_5, 4) == 4  # every beat said 4 waiting
    assert prometheus.value('sum(ray_bigevy_node_outbox_depth_bucket{region="KE",le="1.0"})') == 0
    # Every gateway replica counts the same nodes: max, not sum.
    assert seen(prometheus, 'max(ray_bigevy_nodes{state="online",region="KE"})') == 1


def test_alert_delivery_and_acknowledgement_times(
    prometheus: Prometheus, traffic: dict[str, Any]
) -> None:
    delivered = 'sum(ray_bigevy_alert_seconds_count{event="delivered",via="heartbeat"})'
    assert seen(prometheus, delivered) == 1
    assert seen(prometheus, 'sum(ray_bigevy_alert_seconds_count{event="acked"})') == 1
