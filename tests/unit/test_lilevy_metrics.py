"""lilEVY's own metrics, read back the way Prometheus reads them: a real registry served by
prometheus-client's HTTP server, scraped with httpx. The node's events come from the real
client, outbox, sync and alert code, with its uplink down (a refused port) and its alert
signed by bigEVY's real alert service; no Ray needed."""

from __future__ import annotations

import asyncio
import base64
import socket
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
from lilevy.alerts import EdgeAlerts, take
from lilevy.client import EdgeClient, HeartbeatStatus, Queued, RetryPolicy
from lilevy.errors import Unavailable
from lilevy.knowledge import EdgeKnowledge, PackageRejected
from lilevy.metrics import MetricsServer, NodeMetrics
from lilevy.outbox import Outbox
from lilevy.simulator import Progress, simulate
from lilevy.sync import sync_knowledge
from prometheus_client import REGISTRY

from bigevy.alerts.service import AlertService
from bigevy.config import Settings
from bigevy.fleet.service import FleetService, open_fleet
from bigevy.http.alerts.protocol import AlertIn
from tests.support.prometheus import sample

#: Quick retries: the tests wait on a refused port, not on a real outage.
FAST = RetryPolicy(attempts=2, base_s=0.01, cap_s=0.05)


def scrape(server: MetricsServer) -> str:
    reply = httpx.get(f"http://127.0.0.1:{server.port}/metrics")
    assert reply.status_code == 200, reply.text
    return reply.text


def refused_url() -> str:
    """A local port nothing listens on: the uplink is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def metrics() -> Iterator[tuple[NodeMetrics, MetricsServer]]:
    node = NodeMetrics()
    server = node.serve(0, "127.0.0.1")
    yield node, server
    server.close()


@pytest.fixture
def fleet(tmp_path: Path) -> FleetService:
    return open_fleet(Settings(data_dir=tmp_path / "bigevy"))


def test_a_scrape_shows_each_event_and_every_series_from_the_start(
    metrics: tuple[NodeMetrics, MetricsServer], tmp_path: Path
) -> None:
    node, server = metrics
    with Outbox(tmp_path / "outbox.db") as outbox:
        node.watch_outbox(outbox.depth)
        before = scrape(server)
        assert sample(before, "lilevy_escalations_total", outcome="queued") == 0
        assert sample(before, "lilevy_sync_failures_total", reason="rejected") == 0
        assert sample(before, "lilevy_outbox_depth") == 0

        node.sms_received(3)
        node.answered_locally("faq")
        node.answered_locally("model", 2)
        node.escalation("answered", seconds=1.5)
        node.heartbeat("sent")
        node.package_applied()
        node.downloaded(4096)
        node.sync_failed("incomplete")
        node.alert("received")
        node.alert("acknowledged")
        outbox.put("escalation", "/v1/evy/query", {"message": "is the bridge open?"})
        after = scrape(server)

    assert sample(after, "lilevy_sms_received_total") == 3
    assert sample(after, "lilevy_sms_answered_locally_total", source="faq") == 1
    assert sample(after, "lilevy_sms_answered_locally_total", source="model") == 2
    assert sample(after, "lilevy_escalations_total", outcome="answered") == 1
    assert sample(after, "lilevy_escalation_round_trip_seconds_count") == 1
    assert sample(after, "lilevy_escalation_round_trip_seconds_bucket", le="2.0") == 1
    assert sample(after, "lilevy_escalation_round_trip_seconds_bucket", le="1.0") == 0
    assert sample(after, "lilevy_heartbeats_total", outcome="sent") == 1
    assert sample(after, "lilevy_sync_packages_applied_total") == 1
    assert sample(after, "lilevy_sync_downloaded_bytes_total") == 4096
    assert sample(after, "lilevy_sync_failures_total", reason="incomplete") == 1
    assert sample(after, "lilevy_alerts_total", event="received") == 1
    assert sample(after, "lilevy_alerts_total", event="acknowledged") == 1
    assert sample(after, "lilevy_outbox_depth") == 1  # read at the scrape, from the file


def test_the_metrics_stay_out_of_the_global_registry_and_labels_stay_bounded() -> None:
    node = NodeMetrics()
    node.sms_received()
    assert not [m for m in REGISTRY.collect() if m.name.startswith("lilevy")]
    with pytest.raises(ValueError, match="outcome must be one of answered, failed, queued"):
        node.escalation("node-42")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="source must be one of faq, model"):
        node.answered_locally("+254700000000")  # type: ignore[arg-type]


def test_a_node_with_its_uplink_down_counts_what_it_queued_and_what_failed(
    metrics: tuple[NodeMetrics, MetricsServer], tmp_path: Path, fleet: FleetService
) -> None:
    node, server = metrics
    url = refused_url()

    async def offline(outbox: Outbox, knowledge: EdgeKnowledge) -> None:
        edge = EdgeClient(url, key="k", node_id="n-1", outbox=outbox, retry=FAST, metrics=node)
        async with edge:
            beat = HeartbeatStatus(sms_in=3, sms_out=3, faq_answers=1)
            assert isinstance(await edge.heartbeat(beat, queue_if_offline=True), Queued)
            assert isinstance(
                await edge.escalate("is the bridge open?", queue_if_offline=True), Queued
            )
            with pytest.raises(Unavailable):
                await edge.escalate("and tomorrow?")  # no queueing asked: it fails
            with pytest.raises(Unavailable):
                await sync_knowledge(edge, knowledge, tmp_path / "downloads")
            assert (await edge.flush()).stopped_by is not None

    with (
        Outbox(tmp_path / "outbox.db") as outbox,
        closing(
            EdgeKnowledge(tmp_path / "knowledge.db", "n-1", fleet.signing.public_key)
        ) as knowledge,
    ):
        node.watch_outbox(outbox.depth)
        asyncio.run(offline(outbox, knowledge))
        text = scrape(server)

    assert sample(text, "lilevy_heartbeats_total", outcome="queued") == 1
    assert sample(text, "lilevy_heartbeats_total", outcome="sent") == 0
    assert sample(text, "lilevy_escalations_total", outcome="queued") == 1
    assert sample(text, "lilevy_escalations_total", outcome="failed") == 1
    assert sample(text, "lilevy_escalation_round_trip_seconds_count") == 0
    assert sample(text, "lilevy_sync_failures_total", reason="unavailable") == 1
    assert (
        sample(text, "lilevy_outbox_deliveries_total", kind="heartbeat", outcome="delivered") == 0
    )
    assert sample(text, "lilevy_outbox_depth") == 2


def test_an_alert_is_counted_received_once_verified_and_a_forgery_rejected(
    metrics: tuple[NodeMetrics, MetricsServer], tmp_path: Path, fleet: FleetService
) -> None:
    node, server = metrics
    alert = AlertIn(
        identifier="flood-1",
        event="Flood",
        severity="Severe",
        urgency="Immediate",
        headline="River flooding",
        regions=["KE"],
        expires=time.time() + 3600,
    )
    posted, _ = AlertService(fleet).post(alert, "key-1")
    (signed,) = AlertService(fleet).signed([posted.id])
    genuine = signed.model_dump()
    forged = {**genuine, "signature": base64.b64encode(bytes(64)).decode()}
    shown: list[dict] = []

    async def receive(store: EdgeAlerts) -> None:
        async with EdgeClient(
            refused_url(), key="k", node_id="n-1", retry=FAST, metrics=node
        ) as edge:
            with pytest.raises(PackageRejected):
                await take(edge, store, forged)
            with pytest.raises(Unavailable):  # shown, but the ack cannot reach bigEVY
                await take(edge, store, genuine, shown.append)

    store = EdgeAlerts(tmp_path / "alerts.db", fleet.signing.public_key, region="KE")
    try:
        asyncio.run(receive(store))
    finally:
        store.close()

    assert [a["headline"] for a in shown] == ["River flooding"]
    text = scrape(server)
    assert sample(text, "lilevy_alerts_total", event="rejected") == 1
    assert sample(text, "lilevy_alerts_total", event="received") == 1
    assert sample(text, "lilevy_alerts_total", event="acknowledged") == 0


def test_the_simulator_serves_its_fleets_metrics_while_it_runs_and_then_lets_the_port_go() -> None:
    """With bigEVY unreachable no node enrols; the endpoint is up from the start regardless."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pages: list[str] = []

    def during(progress: Progress) -> None:
        if progress.phase == "enrolling" and not pages:
            pages.append(httpx.get(f"http://127.0.0.1:{port}/metrics").text)

    report = simulate(
        refused_url(), "admin", 2, 1, retry=FAST, drain_s=1, metrics_port=port, on_progress=during
    )
    assert report.nodes == 0 and report.kinds["enroll"].failed == 2
    (page,) = pages
    assert sample(page, "lilevy_sms_received_total") == 0
    assert sample(page, "lilevy_outbox_depth") == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics")
