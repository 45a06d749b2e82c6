"""Analytics end to end: nodes of a real Serve app escalate, heartbeat and take an alert; an
operator then reads the period over HTTP and with `bigevy analytics`, charts included."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from bigevy.config import Settings
from tests.support.cluster import API, BIGEVY, enroll, load_starter_pack, new_key

ANSWERED = ["how do i treat a burn", "what should i do in a flood"]
UNANSWERED = ["when should i plant maize", "best time to plant maize", "how much is a bus ticket"]
EMERGENCY = "my child was bitten by a snake, call 0712345678"


def escalate(base_url: str, node: dict[str, Any], message: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{base_url}/v1/evy/query",
        json={"node_id": node["node_id"], "message": message},
        headers={"Authorization": f"Bearer {node['node_key']}"},
        timeout=120,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def heartbeat(base_url: str, node: dict[str, Any], **figures: Any) -> dict[str, Any]:
    reply = httpx.post(
        f"{base_url}/v1/nodes/{node['node_id']}/heartbeat",
        json=figures,
        headers={"Authorization": f"Bearer {node['node_key']}"},
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def traffic(base_url: str) -> dict[str, Any]:
    """A morning of a small fleet: questions answered and not, an emergency, heartbeats with
    FAQ answers, and a flood alert one node acknowledges."""
    load_starter_pack(base_url)
    kisumu = enroll(base_url, "lil-kisumu", region="kisumu")
    coast = enroll(base_url, "lil-coast", region="coast")
    answers = [escalate(base_url, kisumu, q) for q in ANSWERED + UNANSWERED]
    answers.append(escalate(base_url, coast, EMERGENCY))
    heartbeat(base_url, kisumu, battery_percent=64, sms_in=12, sms_out=12, faq_answers=4)
    heartbeat(base_url, coast, battery_percent=90, sms_in=2, sms_out=3)
    posted = API.post(
        f"{base_url}/v1/alerts",
        json={
            "identifier": "flood-analytics",
            "event": "Flood",
            "severity": "Severe",
            "urgency": "Immediate",
            "headline": "River rising",
            "regions": ["kisumu"],
            "expires": 4_000_000_000,
        },
    )
    assert posted.status_code == 201, posted.text
    alert = posted.json()
    (signed,) = heartbeat(base_url, kisumu)["alerts"]  # handed over with the heartbeat
    acked = httpx.post(
        f"{base_url}/v1/alerts/{alert['id']}/ack",
        json={"version": signed["version"]},
        headers={"Authorization": f"Bearer {kisumu['node_key']}"},
    )
    assert acked.status_code == 200, acked.text
    return {"kisumu": kisumu, "coast": coast, "answers": answers, "alert": alert}


def test_the_period_summary_reads_what_the_fleet_did(
    base_url: str, traffic: dict[str, Any]
) -> None:
    reply = API.get(f"{base_url}/v1/analytics/summary", params={"period": "1d"})
    assert reply.status_code == 200, reply.text
    summary = reply.json()

    modes = [a["answer_mode"] for a in traffic["answers"]]
    escalations = summary["escalations"]
    assert escalations["total"] == 6
    assert escalations["regions"] == {"kisumu": 5, "coast": 1}
    assert escalations["outcomes"]["emergency"] == 1
    assert escalations["outcomes"].get("no_verified_answer", 0) == modes[:5].count("none")
    assert sum(d["count"] for d in escalations["days"]) == 6
    # Each escalation counts under the knowledge category it was answered from.
    assert sum(escalations["categories"].values()) == 6 and escalations["categories"]["emergency"]

    # The two maize wordings are one question, at the top of what to write next; the
    # emergency's words (and its phone number) are nowhere.
    unanswered = summary["unanswered"]["groups"]
    assert unanswered and unanswered[0]["count"] == 2 and "maize" in unanswered[0]["question"]
    every_text = str(summary["top_questions"]) + str(summary["unanswered"])
    assert "snake" not in every_text and "0712345678" not in every_text

    offload = {r["region"]: r for r in summary["offload"]["regions"]}
    assert offload["kisumu"]["faq_answers"] == 4 and offload["kisumu"]["escalations"] == 5
    assert offload["kisumu"]["faq_share"] == pytest.approx(4 / 9)
    nodes = {n["node_id"]: n for n in summary["nodes"]["nodes"]}
    kisumu = nodes[traffic["kisumu"]["node_id"]]
    assert kisumu["heartbeats"] == 2 and kisumu["battery_min"] == 64 and kisumu["sms_in"] == 12

    (alert,) = summary["alerts"]["alerts"]
    assert alert["alert_id"] == traffic["alert"]["id"]
    assert (alert["nodes"], alert["delivered"], alert["acked"]) == (1, 1, 1)
    assert alert["delivery_s"]["max"] >= 0 and alert["ack_s"]["count"] == 1


def test_reports_per_region_and_who_may_read_them(
    base_url: str, settings: Settings, traffic: dict[str, Any]
) -> None:
    coast = API.get(
        f"{base_url}/v1/analytics/escalations", params={"period": "24h", "region": "coast"}
    )
    assert coast.status_code == 200 and coast.json()["total"] == 1

    reader = {"Authorization": f"Bearer {new_key(settings, 'reader')}"}
    node = {"Authorization": f"Bearer {traffic['kisumu']['node_key']}"}
    assert httpx.get(f"{base_url}/v1/analytics/nodes", headers=reader).status_code == 200
    assert httpx.get(f"{base_url}/v1/analytics/nodes", headers=node).status_code == 403
    assert httpx.get(f"{base_url}/v1/analytics/nodes").status_code == 401


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"period": "week"}, 422, "unknown period"),
        ({"period": "0d"}, 422, "unknown period"),
        ({"period": "400d"}, 422, "longer than the 90 days"),
        ({"period": "7d", "region": "atlantis"}, 404, "unknown region 'atlantis'"),
        ({"limit": "0"}, 422, "limit"),
    ],
)
def test_unknown_periods_and_regions_are_refused(
    base_url: str, traffic: dict[str, Any], params: dict[str, str], status: int, says: str
) -> None:
    reply = API.get(f"{base_url}/v1/analytics/questions", params=params)
    assert reply.status_code == status, reply.text
    assert says in str(reply.json()["error"])


def test_the_cli_prints_the_summary_and_draws_its_charts(
    base_url: str, traffic: dict[str, Any], tmp_path: Path
) -> None:
    def bigevy(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [BIGEVY, "analytics", *args, "--url", base_url],
            env={**os.environ, "BIGEVY_API_KEY": API.key, "HOME": str(tmp_path), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = bigevy("summary", "--period", "1d", "--plot", str(tmp_path / "svg"), "--format", "svg")
    assert done.returncode == 0, done.stdout + done.stderr
    for heading in ("Escalations", "Questions nothing vetted answers", "FAQ offload", "Nodes"):
        assert heading in done.stdout
    assert "maize" in done.stdout and "lil-kisumu" in done.stdout
    charts = {p.name for p in (tmp_path / "svg").iterdir()}
    assert {"escalations-per-day.svg", "unanswered.svg", "faq-offload.svg"} <= charts
    assert {"nodes.svg", "alert-delivery.svg", "outcomes.svg", "most-asked.svg"} <= charts
    assert (tmp_path / "svg" / "unanswered.svg").read_text().lstrip().startswith("<?xml")

    png = bigevy("nodes", "--period", "1d", "--plot", str(tmp_path / "png"))
    assert png.returncode == 0, png.stdout + png.stderr
    assert (tmp_path / "png" / "nodes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    refused = bigevy("alerts", "--period", "1y")
    assert refused.returncode == 1 and "unknown period" in refused.stdout


def test_an_escalation_naming_an_overlong_region_is_refused_and_recorded_nowhere(
    base_url: str, traffic: dict[str, Any]
) -> None:
    node = traffic["kisumu"]
    reply = httpx.post(
        f"{base_url}/v1/evy/query",
        json={"node_id": node["node_id"], "message": "how do i treat a burn", "region": "x" * 101},
        headers={"Authorization": f"Bearer {node['node_key']}"},
        timeout=60,
    )
    assert reply.status_code == 422 and reply.json()["error"]["param"] == "region", reply.text
    escalations = API.get(f"{base_url}/v1/analytics/escalations", params={"period": "1d"})
    assert escalations.status_code == 200 and escalations.json()["total"] == 6
