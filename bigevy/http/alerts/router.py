"""The alert routes: operators send, update and cancel alerts; nodes stream and acknowledge
them (the hub pushes each new version to the streams held by this replica)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from bigevy.fleet.roles import NODES, OPERATORS, STATUS_READERS
from bigevy.http.access import allow, caller_of
from bigevy.http.alerts.protocol import AlertAck, AlertIn, AlertList, AlertOut
from bigevy.http.errors import ERRORS
from bigevy.http.services import Svc

router = APIRouter(tags=["alerts"], responses=ERRORS)
run = asyncio.to_thread


@router.post(
    "/v1/alerts",
    response_model=AlertOut,
    status_code=201,
    dependencies=[allow(OPERATORS)],
)
async def post_alert(s: Svc, body: AlertIn, request: Request) -> JSONResponse:
    """Send (201), update (200; same sender + identifier) or cancel (`msg_type: Cancel`)
    an alert; the nodes of its regions get it within seconds."""
    alert, created = await run(s.alerts.post, body, caller_of(request).key_id)
    s.hub.poke()
    return JSONResponse(alert.model_dump(mode="json"), status_code=201 if created else 200)


@router.get(
    "/v1/alerts",
    response_model=AlertList,
    dependencies=[allow(STATUS_READERS)],
)
async def list_alerts(
    s: Svc,
    include_ended: bool = Query(False, description="Also cancelled and expired ones."),
    detail: bool = Query(False, description="Delivery status per node."),
) -> AlertList:
    """Alerts with how many of the nodes they reach acknowledged them."""
    rows = await run(s.alerts.list, include_ended, detail)
    return AlertList(data=rows, total=len(rows))


@router.get(
    "/v1/alerts/stream",
    dependencies=[allow(NODES)],
)
async def stream(s: Svc, request: Request) -> StreamingResponse:
    """Server-sent events for this node: `event: alert`, `data:` a signed alert. Pending
    ones first, then new versions as they are posted; acknowledge each one."""
    caller = caller_of(request)
    assert caller.node_id and caller.key_id
    region = await run(s.fleet.node_region, caller.node_id)
    return StreamingResponse(
        s.hub.stream(caller.node_id, region, caller.key_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/v1/alerts/{alert_id}",
    response_model=AlertOut,
    dependencies=[allow(STATUS_READERS)],
)
async def get_alert(s: Svc, alert_id: str) -> AlertOut:
    """One alert with its delivery status per node."""
    return await run(s.alerts.get, alert_id)


@router.post(
    "/v1/alerts/{alert_id}/cancel",
    response_model=AlertOut,
    dependencies=[allow(OPERATORS)],
)
async def cancel_alert(s: Svc, alert_id: str) -> AlertOut:
    """Withdraw it: nodes that have it are told to take it down."""
    alert = await run(s.alerts.cancel, alert_id)
    s.hub.poke()
    return alert


@router.post(
    "/v1/alerts/{alert_id}/ack",
    response_model=AlertOut,
    dependencies=[allow(NODES)],
)
async def ack_alert(s: Svc, alert_id: str, body: AlertAck, request: Request) -> AlertOut:
    """The node shows this version (or took a cancelled alert down)."""
    node_id = caller_of(request).node_id
    assert node_id
    return await run(s.alerts.ack, node_id, alert_id, body.version)
