"""Emergency alerts end to end: a real Serve app, real edge clients. An alert reaches a node
holding the stream at once and a heartbeat-only node with its next heartbeat; updates and
cancels follow; expired alerts are withdrawn; forgeries and bad posts change nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from lilevy.alerts import EdgeAlerts, listen, take
from lilevy.client import EdgeClient, HeartbeatReply
from lilevy.knowledge import PackageRejected

from bigevy.config import Settings
from bigevy.connectors.spec import ConnectorsSpec, RetryPolicy, SourceSpec
from tests.support.cluster import API, BIGEVY, enroll
from tests.support.replay import DATA, Replay, replay_server
from tests.support.waiting import wait_for

FEED = "/alerts/active"


@pytest.fixture(scope="module")
def feed() -> Iterator[Replay]:
    """A stand-in for api.weather.gov: no alerts until a test serves its recorded reply."""
    with replay_server() as replay:
        replay.serve(FEED, json.dumps({"type": "FeatureCollection", "features": []}))
        yield replay


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, feed: Replay) -> Settings:
    nws = SourceSpec(
        name="nws",
        kind="cap",
        url=feed.base_url + FEED,
        interval_s=1,
        region="texas",  # alerts of unmapped areas reach no node here
        regions={"TXC453": ["valley"]},  # Travis County, TX
        retry=RetryPolicy(base_s=1, max_s=2),
    )
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"), connectors=ConnectorsSpec(sources=[nws])
    )


def alert(identifier: str, regions: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "identifier": identifier,
        "event": "Flash Flood",
        "severity": "Severe",
        "urgency": "Immediate",
        "headline": fields.pop("headline", "Flash flood warning for the river valley"),
        "instruction": "Move to higher ground now.",
        "regions": regions,
        "expires": fields.pop("expires", time.time() + 3600),
        **fields,
    }


class Streaming:
    """A node holding its alert stream open in a background event loop thread."""

    def __init__(self, base_url: str, node: dict[str, Any], path: Path) -> None:
        import threading

        self.store = EdgeAlerts(path, node["signing_public_key"])
        self.received: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        self.stop = asyncio.Event()
        self.client = EdgeClient(base_url, key=node["node_key"], node_id=node["node_id"])
        #: Set each time the stream is open (and the node's pending alerts are on their way).
        self.connected = threading.Event()

        async def run() -> None:
            await listen(
                self.client,
                self.store,
                self.received.append,
                self.stop,
                0.5,
                on_connected=self.connected.set,
            )
            await self.client.aclose()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(run(),))
        self.thread.start()

    def wait_for(self, check: Any, timeout: float = 15.0) -> float:
        started = time.monotonic()
        while not check(self.received):
            assert time.monotonic() - started < timeout, self.received
            time.sleep(0.05)
        return time.monotonic() - started

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(timeout=90)


@pytest.fixture(scope="module")
def nodes(base_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("edge")
    streaming = enroll(base_url, "valley-stream", region="valley")
    heartbeat_only = enroll(base_url, "valley-beat", region="valley")
    elsewhere = enroll(base_url, "hills", region="hills")
    listener = Streaming(base_url, streaming, tmp / "stream.db")
    assert listener.connected.wait(30), "the stream never opened"
    yield {
        "streaming": streaming,
        "listener": listener,
        "heartbeat_only": heartbeat_only,
        "beat_store": EdgeAlerts(tmp / "beat.db", heartbeat_only["signing_public_key"]),
        "elsewhere": elsewhere,
    }
    listener.close()


def heartbeat(base_url: str, node: dict[str, Any], store: EdgeAlerts) -> list[dict[str, Any]]:
    """One heartbeat; every alert in the reply taken (verified, kept, acknowledged)."""

    async def run() -> list[dict[str, Any]]:
        async with EdgeClient(base_url, key=node["node_key"], node_id=node["node_id"]) as c:
            reply = await c.heartbeat({})
            assert isinstance(reply, HeartbeatReply)
            taken = [await take(c, store, signed) for signed in reply.alerts]
            return [a for a in taken if a is not None]

    return asyncio.run(run())


def test_an_alert_reaches_streaming_and_heartbeat_nodes_of_its_region(
    base_url: str, nodes: dict[str, Any]
) -> None:
    posted = API.post(f"{base_url}/v1/alerts", json=alert("flood-1", ["valley"]))
    assert posted.status_code == 201, posted.text
    alert_id = posted.json()["id"]
    listener: Streaming = nodes["listener"]
    listener.wait_for(lambda got: any(a["id"] == alert_id for a in got))
    assert listener.store.active()[0]["headline"] == "Flash flood warning for the river valley"

    got = heartbeat(base_url, nodes["heartbeat_only"], nodes["beat_store"])
    assert [a["id"] for a in got] == [alert_id]
    assert heartbeat(base_url, nodes["heartbeat_only"], nodes["beat_store"]) == []  # acked
    assert heartbeat(base_url, nodes["elsewhere"], EdgeAlerts(":memory:", "x" * 44)) == []

    status = API.get(f"{base_url}/v1/alerts/{alert_id}").json()
    deliveries = {d["node_id"]: d for d in status["deliveries"]}
    assert status["nodes"] == 2 and nodes["elsewhere"]["node_id"] not in deliveries
    assert deliveries[nodes["streaming"]["node_id"]]["via"] == "stream"
    assert deliveries[nodes["heartbeat_only"]["node_id"]]["via"] == "heartbeat"
    wait = time.monotonic()
    while API.get(f"{base_url}/v1/alerts/{alert_id}").json()["acked"] < 2:
        assert time.monotonic() - wait < 15
        time.sleep(0.1)


def test_updates_and_cancels_follow_and_a_repeat_changes_nothing(
    base_url: str, nodes: dict[str, Any]
) -> None:
    listener: Streaming = nodes["listener"]
    body = alert("flood-2", ["valley"])
    first = API.post(f"{base_url}/v1/alerts", json=body).json()
    repeat = API.post(f"{base_url}/v1/alerts", json=body)
    assert repeat.status_code == 200 and repeat.json()["version"] == first["version"] == 1
    beat_store: EdgeAlerts = nodes["beat_store"]
    assert [a["id"] for a in heartbeat(base_url, nodes["heartbeat_only"], beat_store)] == [
        first["id"]
    ]

    updated = API.post(
        f"{base_url}/v1/alerts",
        json=alert("flood-2", ["valley"], headline="Flood warning extended to the lower valley"),
    )
    assert updated.status_code == 200 and updated.json()["version"] == 2
    listener.wait_for(lambda got: any(a["id"] == first["id"] and a["version"] == 2 for a in got))
    shown = {a["id"]: a for a in listener.store.active()}
    assert shown[first["id"]]["headline"] == "Flood warning extended to the lower valley"

    cancelled = API.post(f"{base_url}/v1/alerts/{first['id']}/cancel")
    assert cancelled.status_code == 200
    listener.wait_for(lambda got: any(a["id"] == first["id"] and a["version"] == 3 for a in got))
    assert first["id"] not in {a["id"] for a in listener.store.active()}
    # A node that showed it learns to take it down (one that never had it is not told).
    got = heartbeat(base_url, nodes["heartbeat_only"], beat_store)
    assert {(a["id"], a["status"]) for a in got} == {(first["id"], "cancelled")}
    assert first["id"] not in {a["id"] for a in beat_store.active()}


def test_an_expired_alert_is_withdrawn(base_url: str, nodes: dict[str, Any]) -> None:
    posted = API.post(
        f"{base_url}/v1/alerts", json=alert("short-1", ["valley"], expires=time.time() + 3)
    ).json()
    nodes["listener"].wait_for(lambda got: any(a["id"] == posted["id"] for a in got))
    wait_for(
        lambda: (
            posted["id"] not in {a["id"] for a in API.get(f"{base_url}/v1/alerts").json()["data"]}
        ),
        15,
        "the alert to expire",
    )
    assert posted["id"] not in {a["id"] for a in nodes["listener"].store.active()}
    assert all(
        a["id"] != posted["id"]
        for a in heartbeat(base_url, nodes["heartbeat_only"], nodes["beat_store"])
    )  # never handed out once expired
    listed = API.get(f"{base_url}/v1/alerts").json()["data"]
    assert posted["id"] not in {a["id"] for a in listed}
    ended = API.get(f"{base_url}/v1/alerts", params={"include_ended": True}).json()["data"]
    assert {a["id"]: a["status"] for a in ended}[posted["id"]] == "expired"


def test_bad_alerts_and_forgeries_change_nothing(base_url: str, nodes: dict[str, Any]) -> None:
    before = API.get(f"{base_url}/v1/alerts").json()["total"]
    no_expiry = alert("bad-1", ["valley"])
    del no_expiry["expires"]
    assert API.post(f"{base_url}/v1/alerts", json=no_expiry).status_code == 422
    unknown = API.post(f"{base_url}/v1/alerts", json=alert("bad-2", ["valley"], severity="Huge"))
    assert unknown.status_code == 422 and unknown.json()["error"]["param"] == "severity"
    past = API.post(f"{base_url}/v1/alerts", json=alert("bad-3", ["valley"], expires=1000.0))
    assert past.status_code == 422 and past.json()["error"]["param"] == "expires"
    node_key = {"Authorization": f"Bearer {nodes['streaming']['node_key']}"}
    refused = httpx.post(
        f"{base_url}/v1/alerts", json=alert("bad-4", ["valley"]), headers=node_key, timeout=30
    )
    assert refused.status_code == 403
    assert API.get(f"{base_url}/v1/alerts").json()["total"] == before

    real = API.post(f"{base_url}/v1/alerts", json=alert("hills-1", ["hills"])).json()
    too_new = httpx.post(
        f"{base_url}/v1/alerts/{real['id']}/ack",
        json={"version": 9},
        headers={"Authorization": f"Bearer {nodes['elsewhere']['node_key']}"},
        timeout=30,
    )
    assert too_new.status_code == 409 and too_new.json()["error"]["code"] == "version_not_sent"
    not_ours = httpx.post(
        f"{base_url}/v1/alerts/{real['id']}/ack", json={"version": 1}, headers=node_key, timeout=30
    )
    assert not_ours.status_code == 403

    store: EdgeAlerts = nodes["listener"].store
    shown = store.active()
    on_server = API.get(f"{base_url}/v1/alerts/{real['id']}").json()
    forged = {
        "alert_id": real["id"],
        "version": 5,
        "alert": json.dumps({"id": real["id"], "version": 5, "status": "active"}),
        "signature": "A" * 88,
    }
    with pytest.raises(PackageRejected, match="signature"):
        store.receive(forged)
    assert store.active() == shown and on_server["version"] == 1


def shifted_to_now(recorded: dict[str, Any]) -> dict[str, Any]:
    """The recorded NWS reply with its times moved so its first alert was sent just now (the
    recording's alerts expired long ago)."""
    props = [f["properties"] for f in recorded["features"]]
    delta = time.time() - datetime.fromisoformat(props[0]["sent"]).timestamp()
    for p in props:
        for name in ("sent", "effective", "onset", "expires", "ends"):
            if p.get(name):
                moved = datetime.fromisoformat(p[name]).timestamp() + delta
                p[name] = datetime.fromtimestamp(moved, UTC).isoformat()
    return recorded


def test_a_node_refuses_an_alert_signed_for_other_regions(
    base_url: str, nodes: dict[str, Any], tmp_path: Path
) -> None:
    """Signed by bigEVY, but not for this node's region: a server mistake must not sound
    another region's alarm."""
    hills = nodes["elsewhere"]
    posted = API.post(f"{base_url}/v1/alerts", json=alert("hills-only-1", ["hills"]))
    assert posted.status_code == 201, posted.text

    async def signed_for_hills() -> list[dict[str, Any]]:
        async with EdgeClient(base_url, key=hills["node_key"], node_id=hills["node_id"]) as c:
            reply = await c.heartbeat({})
            assert isinstance(reply, HeartbeatReply)
            return [s for s in reply.alerts if s["alert_id"] == posted.json()["id"]]

    (signed,) = asyncio.run(signed_for_hills())
    key = hills["signing_public_key"]
    with pytest.raises(PackageRejected, match="not this node's"):
        EdgeAlerts(tmp_path / "valley.db", key, "valley").receive(signed)
    assert EdgeAlerts(tmp_path / "hills.db", key, "hills").receive(signed) is not None


class RawStream:
    """A node's alert stream read line by line in a thread, until the server ends it."""

    def __init__(self, base_url: str, node: dict[str, Any]) -> None:
        import threading

        self.opened, self.ended = threading.Event(), threading.Event()
        headers = {"Authorization": f"Bearer {node['node_key']}"}

        def read() -> None:
            try:
                url = f"{base_url}/v1/alerts/stream"
                with httpx.stream("GET", url, headers=headers, timeout=None) as reply:
                    for line in reply.iter_lines():
                        if line.startswith(": connected"):
                            self.opened.set()
            except httpx.HTTPError:
                pass
            self.ended.set()

        self.thread = threading.Thread(target=read, daemon=True)
        self.thread.start()
        assert self.opened.wait(30), "the stream did not open"


def test_a_node_holds_one_stream_and_loses_it_when_revoked(base_url: str) -> None:
    node = enroll(base_url, "twice", region="valley")
    first = RawStream(base_url, node)
    second = RawStream(base_url, node)  # the node reconnected: the old stream goes
    assert first.ended.wait(30) and not second.ended.is_set()
    revoked = API.post(f"{base_url}/v1/nodes/{node['node_id']}/revoke")
    assert revoked.status_code == 200, revoked.text
    assert second.ended.wait(30), "a revoked node kept its alert stream"


def test_a_weather_service_alert_reaches_the_nodes_of_its_mapped_area(
    base_url: str, nodes: dict[str, Any], feed: Replay, tmp_path: Path
) -> None:
    recorded = json.loads((DATA / "nws_alerts_active.json").read_text())
    feed.serve(FEED, json.dumps(shifted_to_now(recorded)))
    listener: Streaming = nodes["listener"]
    try:
        listener.wait_for(lambda got: any(a["event"] == "Tornado Warning" for a in got), 30)
    except AssertionError:
        raise AssertionError(API.get(f"{base_url}/v1/connectors").text) from None
    tornado = next(a for a in listener.store.active() if a["event"] == "Tornado Warning")
    assert tornado["severity"] == "Extreme" and tornado["regions"] == ["valley"]

    sources = API.get(f"{base_url}/v1/connectors").json()
    assert [(s["name"], s["status"]) for s in sources] == [("nws", "healthy")]

    def weather_titles() -> list[str]:
        params = {"category": "weather_safety", "limit": 100}
        docs = API.get(f"{base_url}/v1/knowledge/documents", params=params).json()["data"]
        return [d["title"] for d in docs]

    # Alerts go out first; the safety documents follow once embedded.
    deadline = time.monotonic() + 60
    while not any("Tornado Warning" in t for t in weather_titles()):
        assert time.monotonic() < deadline, weather_titles()
        time.sleep(0.5)

    def bigevy(*args: str) -> str:
        env = {**os.environ, "BIGEVY_API_KEY": API.key, "COLUMNS": "200"}
        command = [BIGEVY, *args, "--url", base_url]
        return subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=120, check=True
        ).stdout

    listed = bigevy("alerts", "list")
    assert tornado["id"] in listed and "Extreme" in listed
    status = bigevy("connectors", "status")
    assert "nws" in status and "healthy" in status
