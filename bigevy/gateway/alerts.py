"""Alert routes, and the hub that pushes alerts to the nodes streaming from this replica.

Each gateway replica follows the alerts table (every `poll_s`, and at once when an alert is
posted through it), so an alert posted through any replica reaches the streams held by every
replica: the metadata database is the one place replicas already share. A node without a
stream gets its pending alerts in every heartbeat reply instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from bigevy.alerts.service import AlertService, Live
from bigevy.api.alerts import AlertAck, AlertIn, AlertList, AlertOut, SignedAlert
from bigevy.api.openai import error_responses
from bigevy.fleet.roles import NODES, OPERATORS, STATUS_READERS
from bigevy.gateway.access import allow
from bigevy.gateway.fleet import caller_of

log = logging.getLogger("ray.serve")
ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429)
#: A comment line this often keeps proxies and NATs from closing an idle stream.
KEEPALIVE_S = 15.0


#: How often a replica checks that its streams are still their nodes' one stream, and that
#: no node or key among them was revoked.
STREAM_CHECK_S = 2.0


@dataclass(frozen=True)
class _Stream:
    node_id: str
    region: str
    key_id: str
    stream_id: str


class AlertHub:
    """Streams of the nodes connected to this replica, and what each has been pushed."""

    def __init__(
        self,
        alerts: AlertService,
        run: Callable[..., Awaitable[Any]],
        poll_s: float = 0.5,
    ) -> None:
        self.alerts = alerts
        self.run = run
        self.poll_s = poll_s
        self.streams: dict[asyncio.Queue[SignedAlert | None], _Stream] = {}
        self._known: dict[str, int] = {}
        self._checked = time.monotonic()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())

    def poke(self) -> None:
        """Look at the alerts table now (an alert was just posted through this replica)."""
        self._ensure_running()
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            try:
                await self._push_new(await self.run(self.alerts.live))
                if time.monotonic() - self._checked >= STREAM_CHECK_S:
                    await self._close_replaced()
            except Exception:
                log.exception("following alerts failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def _push_new(self, live: list[Live]) -> None:
        fresh = [a for a in live if self._known.get(a.id, 0) < a.version]
        self._known = {a.id: a.version for a in live}
        if not fresh or not self.streams:
            return
        signed = {s.alert_id: s for s in await self.run(self.alerts.signed, [a.id for a in fresh])}
        for alert in fresh:
            if alert.id not in signed:
                continue  # gone between the two reads
            for queue, held in list(self.streams.items()):
                if alert.reaches(held.region):
                    queue.put_nowait(signed[alert.id])

    async def _close_replaced(self) -> None:
        """End the streams of this replica that a newer stream of their node replaced (on any
        replica), or whose node or key was revoked since they opened."""
        self._checked = time.monotonic()
        if not self.streams:
            return
        keys = {held.node_id: held.key_id for held in self.streams.values()}
        current = await self.run(self.alerts.fleet.current_streams, keys)
        for queue, held in list(self.streams.items()):
            if current.get(held.node_id) != held.stream_id:
                queue.put_nowait(None)

    async def stream(self, node_id: str, region: str, key_id: str) -> AsyncIterator[str]:
        """Server-sent events: every pending alert now, then each new version as it comes.
        One per node: a newer stream of the node ends this one, and so does revoking it."""
        self._ensure_running()
        stream_id = await self.run(self.alerts.fleet.open_stream, node_id)
        for queue, held in list(self.streams.items()):
            if held.node_id == node_id:
                queue.put_nowait(None)  # replaced here at once; elsewhere at the next check
        queue: asyncio.Queue[SignedAlert | None] = asyncio.Queue()
        self.streams[queue] = _Stream(node_id, region, key_id, stream_id)
        try:
            for signed in await self.run(self.alerts.pending_for, node_id, region):
                queue.put_nowait(signed)
            yield ": connected\n\n"
            while True:
                try:
                    signed = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if signed is None:
                    return  # replaced or revoked
                yield f"event: alert\nid: {signed.alert_id}:{signed.version}\n"
                yield f"data: {signed.model_dump_json()}\n\n"
                await self.run(
                    self.alerts.mark_sent, node_id, [(signed.alert_id, signed.version)], "stream"
                )
        finally:
            self.streams.pop(queue, None)


def add_alert_routes(
    router: APIRouter, hub: AlertHub, node_region: Callable[[str], Awaitable[str]]
) -> None:
    alerts, run = hub.alerts, hub.run

    @router.post(
        "/v1/alerts",
        responses=ERRORS,
        response_model=AlertOut,
        status_code=201,
        tags=["alerts"],
        dependencies=[allow(OPERATORS)],
    )
    async def post_alert(body: AlertIn, request: Request) -> JSONResponse:
        """Send (201), update (200; same sender + identifier) or cancel (`msg_type: Cancel`)
        an alert; the nodes of its regions get it within seconds."""
        alert, created = await run(alerts.post, body, caller_of(request).key_id)
        hub.poke()
        return JSONResponse(alert.model_dump(mode="json"), status_code=201 if created else 200)

    @router.get(
        "/v1/alerts",
        responses=ERRORS,
        response_model=AlertList,
        tags=["alerts"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def list_alerts(
        include_ended: bool = Query(False, description="Also cancelled and expired ones."),
        detail: bool = Query(False, description="Delivery status per node."),
    ) -> AlertList:
        """Alerts with how many of the nodes they reach acknowledged them."""
        rows = await run(alerts.list, include_ended, detail)
        return AlertList(data=rows, total=len(rows))

    @router.get(
        "/v1/alerts/stream",
        responses=ERRORS,
        tags=["alerts"],
        dependencies=[allow(NODES)],
    )
    async def stream(request: Request) -> StreamingResponse:
        """Server-sent events for this node: `event: alert`, `data:` a signed alert. Pending
        ones first, then new versions as they are posted; acknowledge each one."""
        caller = caller_of(request)
        assert caller.node_id and caller.key_id
        region = await node_region(caller.node_id)
        return StreamingResponse(
            hub.stream(caller.node_id, region, caller.key_id),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.get(
        "/v1/alerts/{alert_id}",
        responses=ERRORS,
        response_model=AlertOut,
        tags=["alerts"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def get_alert(alert_id: str) -> AlertOut:
        """One alert with its delivery status per node."""
        return await run(alerts.get, alert_id)

    @router.post(
        "/v1/alerts/{alert_id}/cancel",
        responses=ERRORS,
        response_model=AlertOut,
        tags=["alerts"],
        dependencies=[allow(OPERATORS)],
    )
    async def cancel_alert(alert_id: str) -> AlertOut:
        """Withdraw it: nodes that have it are told to take it down."""
        alert = await run(alerts.cancel, alert_id)
        hub.poke()
        return alert

    @router.post(
        "/v1/alerts/{alert_id}/ack",
        responses=ERRORS,
        response_model=AlertOut,
        tags=["alerts"],
        dependencies=[allow(NODES)],
    )
    async def ack_alert(alert_id: str, body: AlertAck, request: Request) -> AlertOut:
        """The node shows this version (or took a cancelled alert down)."""
        node_id = caller_of(request).node_id
        assert node_id
        return await run(alerts.ack, node_id, alert_id, body.version)
