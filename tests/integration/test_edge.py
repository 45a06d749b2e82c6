"""The lilEVY edge client, its outbox, the enrol command and the fleet simulator, against a
real Serve app: enrolment and heartbeats end to end, errors as types, exactly-once delivery
of what was queued while bigEVY was down, and no acknowledged heartbeat lost under load."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from bigevy.config import Settings
from bigevy.edge.client import (
    Attempt,
    EdgeClient,
    Enrollment,
    HeartbeatReply,
    HeartbeatStatus,
    NodeDescription,
    Queued,
    RetryPolicy,
)
from bigevy.edge.errors import (
    AuthError,
    Conflict,
    InFlight,
    InvalidRequest,
    Unavailable,
    error_from_response,
)
from bigevy.edge.outbox import DeliveryReport, Outbox
from bigevy.edge.simulator import simulate
from bigevy.fleet.models import Escalation, Heartbeat
from bigevy.fleet.service import FleetService, open_fleet
from tests.conftest import API, BIGEVY, ServeCluster

HEAVY = ["ray", "torch", "lancedb", "pydantic", "sqlalchemy", "numpy", "sentence_transformers"]
#: Quick retries: the tests wait on a refused port, not on a real outage.
FAST = RetryPolicy(attempts=3, base_s=0.05, cap_s=5.0)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def base_url(serve_cluster: ServeCluster, settings: Settings) -> str:
    return serve_cluster.deploy(settings)


@pytest.fixture(scope="module")
def fleet(base_url: str, settings: Settings) -> Iterator[FleetService]:
    """The app's own metadata database, to count what it stored."""
    service = open_fleet(settings)
    yield service
    service.engine.dispose()


def stored(fleet: FleetService, node_ids: list[str]) -> tuple[int, int]:
    """Rows in the heartbeats and escalations tables for these nodes."""
    with fleet.sessions() as session:
        beats = session.scalar(
            select(func.count()).select_from(Heartbeat).where(Heartbeat.node_id.in_(node_ids))
        )
        asked = session.scalar(
            select(func.count()).select_from(Escalation).where(Escalation.node_id.in_(node_ids))
        )
    return int(beats or 0), int(asked or 0)


def new_token(base_url: str) -> str:
    reply = API.post(f"{base_url}/v1/enrollment-tokens", json={})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["token"])


def test_edge_modules_import_nothing_heavy() -> None:
    code = (
        "import json, sys\n"
        "import bigevy.edge.client, bigevy.edge.outbox, bigevy.edge.simulator\n"
        "import bigevy.edge.knowledge, bigevy.edge.sync\n"
        f"print(json.dumps(sorted(set({HEAVY!r}) & set(sys.modules))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout) == []


def test_enrolment_heartbeat_and_typed_errors(base_url: str) -> None:
    attempts: list[Attempt] = []

    async def scenario() -> None:
        token = new_token(base_url)
        async with EdgeClient(base_url, retry=FAST, on_attempt=attempts.append) as edge:
            description = NodeDescription(
                name="edge-kisumu", region="KE", phone_number="+254 700 111222"
            )
            enrolled = await edge.enroll(token, description)
            assert isinstance(enrolled, Enrollment)
            assert enrolled.node_key.startswith("bevy_") and edge.node_id == enrolled.node_id
            assert len(enrolled.signing_public_key) == 44

            reply = await edge.heartbeat(
                HeartbeatStatus(battery_percent=71.5, power_source="solar", sms_in=4, sms_out=3)
            )
            assert isinstance(reply, HeartbeatReply)
            assert reply.node_id == enrolled.node_id and reply.state == "online"
            assert reply.heartbeat_interval_s > 0 and reply.directives == []
            mine = await edge.node()
            assert mine["state"] == "online" and mine["heartbeats"][0]["sms_in"] == 4

            attempts.clear()
            with pytest.raises(InvalidRequest) as invalid:
                await edge.heartbeat({"battery_percent": 140})
            assert invalid.value.status == 422 and invalid.value.param == "battery_percent"
            assert len(attempts) == 1  # a refused request is never retried

            with pytest.raises(Conflict) as reused:
                await EdgeClient(base_url, http=edge.http).enroll(token, description)
            assert reused.value.code == "enrollment_token_used" and reused.value.status == 409

            forged = EdgeClient(base_url, key="bevy_nope_nope", node_id=enrolled.node_id)
            async with forged:
                with pytest.raises(AuthError) as denied:
                    await forged.heartbeat(HeartbeatStatus())
            assert denied.value.status == 401 and "invalid API key" in denied.value.message

        shown = API.get(f"{base_url}/v1/nodes/{enrolled.node_id}").json()
        assert shown["state"] == "online" and shown["region"] == "KE"
        assert [h["battery_percent"] for h in shown["heartbeats"]] == [71.5]

    asyncio.run(scenario())


def test_two_commands_enrol_a_node_that_shows_online(base_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "BIGEVY_API_KEY": API.key,
        "BIGEVY_DATA_DIR": str(tmp_path / "data"),
        "COLUMNS": "200",
    }

    def bigevy(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [BIGEVY, *args, "--url", base_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    token = re.search(r"bevyenroll_\S+", bigevy("nodes", "token", "--region", "KE").stdout)
    assert token is not None
    enrolled = bigevy("nodes", "enroll", token.group(0), "--name", "cli-node", "--phone", "+254 7")
    node_id = re.search(r"node (node-[0-9a-f]+) is online", enrolled.stdout)
    assert node_id is not None, enrolled.stdout
    state_file = tmp_path / "data" / "edge" / f"{node_id.group(1)}.json"
    assert state_file.stat().st_mode & 0o777 == 0o600
    state = json.loads(state_file.read_text())
    assert state["node_id"] == node_id.group(1) and state["base_url"] == base_url
    assert state["node_key"].startswith("bevy_") and len(state["signing_public_key"]) == 44

    listed = bigevy("nodes", "list").stdout
    row = next(line for line in listed.splitlines() if node_id.group(1) in line)
    assert "cli-node" in row and "online" in row

    subscribed = bigevy(
        "nodes", "subscribe", node_id.group(1), "--budget-mb", "8", "--category", "emergency"
    ).stdout
    assert "emergency" in subscribed and "8 MiB" in subscribed
    synced = bigevy("sync", "status", node_id.group(1)).stdout
    assert node_id.group(1) in synced and "0/" in synced  # enrolled, nothing applied yet

    again = subprocess.run(
        [BIGEVY, "nodes", "enroll", token.group(0), "--name", "x", "--url", base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 1 and "already used" in again.stdout


def test_a_short_simulation_loses_no_acknowledged_heartbeat(
    base_url: str, fleet: FleetService
) -> None:
    report = simulate(
        base_url, API.key, 5, 10, heartbeat_interval_s=1.0, question_every_s=15.0, seed=7
    )
    assert report.nodes == 5 and report.kinds["enroll"].ok == 5
    assert report.server_errors == 0, report.responses
    assert not report.failures, report.failures
    assert report.acknowledged_heartbeats >= 5 * 5  # each node beat at least ~half its slots
    beats, asked = stored(fleet, report.node_ids)
    assert report.acknowledged_heartbeats == beats
    assert report.kinds["escalation"].ok == asked
    assert report.outbox_depth == 0 and report.dead_letters == 0
    assert report.heartbeats_per_s > 0 and report.kinds["heartbeat"].p(95) is not None


def test_a_request_still_being_answered_is_kept_for_later_not_given_up() -> None:
    """The outbox gives up on a 409 (a used enrolment token) but not on this one."""
    body = {"error": {"message": "still being answered", "code": "idempotency_key_in_use"}}
    in_use = error_from_response(httpx.Response(409, json=body, headers={"Retry-After": "5"}))
    assert isinstance(in_use, InFlight) and in_use.transient and in_use.retry_after == 5
    used = {"error": {"message": "token already used", "code": "conflict"}}
    assert not error_from_response(httpx.Response(409, json=used)).transient


def test_a_retry_while_the_first_attempt_is_answered_gets_that_answer(
    base_url: str, fleet: FleetService
) -> None:
    """The node gave up waiting and sent the question again, but bigEVY is still answering
    it: the retry gets that answer (not 409, which once dead-lettered the question in the
    outbox for good), and the question counts once."""

    async def scenario() -> tuple[str, list[dict]]:
        async with EdgeClient(base_url, retry=FAST) as edge:
            node = await edge.enroll(new_token(base_url), NodeDescription(name="impatient"))
        who = {"key": node.node_key, "node_id": node.node_id}
        question = "how long should I boil river water before drinking it"

        async def ask(after_s: float) -> dict:
            await asyncio.sleep(after_s)  # the retry leaves while the first is answered
            async with EdgeClient(base_url, retry=FAST, **who) as edge:
                reply = await edge.escalate(question, region="KE", idempotency_key="sms-7")
            assert isinstance(reply, dict)
            return reply

        return node.node_id, list(await asyncio.gather(ask(0.0), ask(0.02), ask(0.05)))

    node_id, replies = asyncio.run(scenario())
    assert replies[0]["sms"] and all(r == replies[0] for r in replies)
    with fleet.sessions() as session:
        asked = select(func.count()).select_from(Escalation).where(Escalation.node_id == node_id)
        assert session.scalar(asked) == 1


def test_the_outbox_delivers_exactly_once_after_an_outage(
    serve_cluster: ServeCluster,
    settings: Settings,
    base_url: str,
    fleet: FleetService,
    tmp_path: Path,
) -> None:
    """Last in this module: it stops Serve and starts it again."""
    from ray import serve

    path = tmp_path / "outbox.db"

    async def enroll() -> Enrollment:
        async with EdgeClient(base_url, retry=FAST) as edge:
            return await edge.enroll(new_token(base_url), NodeDescription(name="outage"))

    node = asyncio.run(enroll())

    def client(outbox: Outbox) -> EdgeClient:
        return EdgeClient(
            base_url, key=node.node_key, node_id=node.node_id, outbox=outbox, retry=FAST
        )

    async def while_down(outbox: Outbox) -> list[Queued]:
        queued = []
        async with client(outbox) as edge:
            for i, kind in enumerate("hheh" + "e"):
                if kind == "h":
                    call = edge.heartbeat(HeartbeatStatus(sms_in=i), queue_if_offline=True)
                else:
                    call = edge.escalate(
                        f"HELP house on fire {i}", region="KE", queue_if_offline=True
                    )
                result = await call
                assert isinstance(result, Queued), result
                queued.append(result)
            with pytest.raises(Unavailable):  # without queue_if_offline, the error is raised
                await edge.heartbeat(HeartbeatStatus())
            report = await edge.flush()
            assert report.delivered == [] and report.remaining == 5
            assert isinstance(report.stopped_by, Unavailable)
        return queued

    serve.shutdown()
    try:
        with Outbox(path) as outbox:
            queued = asyncio.run(while_down(outbox))
        assert {q.reason.code for q in queued} == {"connection_error"}
    finally:
        serve.start(http_options={"host": "127.0.0.1", "port": serve_cluster.port})
        serve_cluster.deploy(settings)

    with Outbox(path) as outbox:  # reopened: the queue survived the "process"
        assert outbox.depth() == 5
        entries = outbox.entries()
        assert [e.id for e in entries] == [q.id for q in queued]
        assert entries[0].attempts == 1 and "unreachable" in (entries[0].last_error or "")

        async def flush() -> DeliveryReport:
            async with client(outbox) as edge:
                return await edge.flush()

        def deliver() -> DeliveryReport:
            return asyncio.run(flush())

        report = deliver()
        assert report.stopped_by is None and report.remaining == 0 and outbox.depth() == 0
        assert [d.entry.kind for d in report.delivered] == ["heartbeat"] * 2 + [
            "escalation",
            "heartbeat",
            "escalation",
        ]
        answers = [d.reply for d in report.delivered if d.entry.kind == "escalation"]
        assert all(a["triage"]["emergency"] and a["triage"]["kind"] == "fire" for a in answers)
        assert stored(fleet, [node.node_id]) == (3, 2)

        # A crash after bigEVY acknowledged but before the rows went: the same entries again.
        for done in report.delivered[1:3]:
            outbox.put(
                done.entry.kind, done.entry.path, done.entry.body, idempotency_key=done.entry.id
            )
        again = deliver()
        assert len(again.delivered) == 2 and outbox.depth() == 0
        assert again.delivered[1].replayed and again.delivered[1].reply == answers[0]
        assert stored(fleet, [node.node_id]) == (3, 2)

        # Refused for good: dead-lettered with bigEVY's error; the entries around it go.
        heartbeat = report.delivered[0].entry.path
        outbox.put("heartbeat", heartbeat, {"sms_in": 1})
        bad = outbox.put("heartbeat", heartbeat, {"battery_percent": 140})
        outbox.put("heartbeat", heartbeat, {"sms_in": 2})
        mixed = deliver()
        assert len(mixed.delivered) == 2 and [d.entry.id for d in mixed.dead_lettered] == [bad]
        letters = outbox.dead_letters()
        assert [(d.entry.id, d.status) for d in letters] == [(bad, 422)]
        assert letters[0].error["param"] == "battery_percent"
        assert outbox.depth() == 0 and stored(fleet, [node.node_id]) == (5, 2)
