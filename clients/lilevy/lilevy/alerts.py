"""Emergency alerts on the node: received on a server-sent-event stream (or in heartbeat
replies when the stream is down), verified against bigEVY's key, kept, and acknowledged.

A forged alert is dropped; an older or repeated version changes nothing; a cancel takes the
alert down; an expired alert is no longer shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from lilevy.client import EdgeClient
from lilevy.errors import EdgeError, error_from_exception, error_from_response
from lilevy.knowledge import PackageRejected, verify_signed

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, status TEXT NOT NULL,
    expires REAL NOT NULL, received_at REAL NOT NULL, body TEXT NOT NULL
);
"""


class EdgeAlerts:
    def __init__(self, path: str | Path, public_key: str, region: str | None = None) -> None:
        """`region`: the node's own; alerts signed for other regions only are refused (a
        server mistake must not sound another region's alarm here)."""
        self.public_key = public_key
        self.region = region
        # The alert listener may run in a thread of its own; sqlite3 serialises access.
        self.db = sqlite3.connect(str(path), check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")  # one fsync per alert kept, still durable
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def receive(self, signed: dict[str, Any]) -> dict[str, Any] | None:
        """Keep a signed alert; the alert if it is new to us (or a newer version), else None.

        Raises `PackageRejected` for a forgery (the store is unchanged)."""
        alert = verify_signed(signed["alert"], signed["signature"], self.public_key, "alert")
        if alert["id"] != signed.get("alert_id") or alert["version"] != signed.get("version"):
            raise PackageRejected("the envelope does not match the signed alert")
        regions = alert.get("regions") or []
        if self.region is not None and not {"global", self.region} & set(regions):
            raise PackageRejected(f"the alert is for {regions}, not this node's {self.region!r}")
        with self.db:
            row = self.db.execute(
                "SELECT version FROM alerts WHERE id = ?", (alert["id"],)
            ).fetchone()
            if row is not None and row[0] >= alert["version"]:
                return None
            self.db.execute(
                "INSERT OR REPLACE INTO alerts (id, version, status, expires, received_at, body) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    alert["id"],
                    alert["version"],
                    alert["status"],
                    alert["expires"],
                    time.time(),
                    signed["alert"],
                ),
            )
        return alert

    def active(self, now: float | None = None) -> list[dict[str, Any]]:
        """What the node shows now: not cancelled, not expired; most severe first."""
        rows = self.db.execute(
            "SELECT body FROM alerts WHERE status = 'active' AND expires > ?",
            (now or time.time(),),
        ).fetchall()
        order = {"Extreme": 0, "Severe": 1, "Moderate": 2, "Minor": 3}
        alerts = [json.loads(r[0]) for r in rows]
        return sorted(alerts, key=lambda a: (order.get(a["severity"], 9), -a["sent"]))

    def version(self, alert_id: str) -> int | None:
        row = self.db.execute("SELECT version FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return row[0] if row else None


async def take(
    client: EdgeClient,
    store: EdgeAlerts,
    signed: dict[str, Any],
    on_alert: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any] | None:
    """Verify and keep one alert, show it (`on_alert`, if new to us), then acknowledge its
    version (a repeat too: the earlier ack may have been lost). A forgery is neither kept
    nor acknowledged. Counted in the client's `metrics`, if it has any."""
    metrics = client.metrics
    try:
        alert = store.receive(signed)
    except PackageRejected:
        if metrics is not None:
            metrics.alert("rejected")
        raise
    if alert is not None:
        if metrics is not None:
            metrics.alert("received")
        if on_alert is not None:
            on_alert(alert)  # people first, the bookkeeping after
    await client.request(
        "POST",
        f"/v1/alerts/{signed['alert_id']}/ack",
        json={"version": signed["version"]},
        kind="alert",
    )
    if metrics is not None:
        metrics.alert("acknowledged")
    return alert


async def listen(
    client: EdgeClient,
    store: EdgeAlerts,
    on_alert: Callable[[dict[str, Any]], None] | None = None,
    stop: asyncio.Event | None = None,
    reconnect_s: float = 5.0,
    on_connected: Callable[[], None] | None = None,
) -> None:
    """Hold the alert stream open until `stop`; reconnect after a drop. `on_alert` is called
    with each alert new to this node (e.g. to broadcast it by SMS); `on_connected` each time
    the stream is open and the alerts pending for the node are on their way."""
    stop = stop or asyncio.Event()
    while not stop.is_set():
        # The uplink or bigEVY went away: heartbeats carry alerts meanwhile.
        with contextlib.suppress(EdgeError, httpx.HTTPError):
            await _stream_once(client, store, on_alert, stop, on_connected)
        if not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), reconnect_s)


async def _stream_once(
    client: EdgeClient,
    store: EdgeAlerts,
    on_alert: Callable[[dict[str, Any]], None] | None,
    stop: asyncio.Event,
    on_connected: Callable[[], None] | None = None,
) -> None:
    headers = {"Authorization": f"Bearer {client.key}", "Accept": "text/event-stream"}
    timeout = httpx.Timeout(60.0, connect=15.0)  # keepalives come every 15 s
    try:
        async with client.http.stream(
            "GET", client.base_url + "/v1/alerts/stream", headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise error_from_response(response)
            event, data = "", []
            async for line in response.aiter_lines():
                if stop.is_set():
                    return
                if line == "":
                    if event == "alert" and data:
                        with contextlib.suppress(PackageRejected):  # forged: dropped
                            await take(client, store, json.loads("\n".join(data)), on_alert)
                    event, data = "", []
                elif line == ": connected" and on_connected is not None:
                    on_connected()
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
    except httpx.TransportError as exc:
        raise error_from_exception(exc) from exc
