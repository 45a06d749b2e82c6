"""The edge-sync routes: subscriptions, manifests, resumable package downloads, acks, state.

Thin: the sync deployment decides and builds; the gateway checks who calls and serves package
bytes from the packages directory (shared storage when replicas run on many hosts, like the
LanceDB directory), honouring HTTP Range so a cut download resumes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from bigevy import metrics
from bigevy.fleet.roles import NODES, OPERATORS, STATUS_READERS, Role
from bigevy.http.access import acting_as, allow, caller_of
from bigevy.http.errors import ERRORS, error_responses
from bigevy.http.ranges import byte_range
from bigevy.http.services import Svc
from bigevy.http.sync.protocol import (
    AckIn,
    SignedManifest,
    SubscriptionIn,
    SubscriptionOut,
    SyncErrorIn,
    SyncState,
    SyncStateList,
)

router = APIRouter(tags=["sync"], responses=ERRORS)


def own_node(request: Request) -> str:
    node_id = caller_of(request).node_id
    assert node_id  # NODES admits node keys only, and each names its node
    return node_id


@router.get(
    "/v1/nodes/{node_id}/subscription",
    response_model=SubscriptionOut,
    dependencies=[allow(STATUS_READERS | {Role.node})],
)
async def get_subscription(s: Svc, node_id: str, request: Request) -> SubscriptionOut:
    """What the node should hold (the defaults until one is set)."""
    acting_as(caller_of(request), node_id)
    return await s.sync.subscription(node_id)


@router.put(
    "/v1/nodes/{node_id}/subscription",
    response_model=SubscriptionOut,
    dependencies=[allow(OPERATORS | {Role.node})],
)
async def put_subscription(
    s: Svc, node_id: str, body: SubscriptionIn, request: Request
) -> SubscriptionOut:
    """Categories, regions, languages, budget and shares; the next package follows it
    (entries that no longer fit are deleted on the node)."""
    acting_as(caller_of(request), node_id)
    return await s.sync.set_subscription(node_id, body)


@router.get(
    "/v1/sync/manifest",
    responses={204: {"description": "The node is up to date."}},
    response_model=SignedManifest,
    dependencies=[allow(NODES)],
)
async def manifest(
    s: Svc,
    request: Request,
    full: bool = Query(False, description="A full snapshot (a new or wiped node)."),
) -> Any:
    """The signed manifest of the package that brings this node up to date."""
    signed = await s.sync.manifest(own_node(request), full)
    if signed is None:
        return Response(status_code=204)
    return signed


@router.get(
    "/v1/sync/packages/{package_id}",
    responses={
        **error_responses(416),
        200: {"content": {"application/zstd": {}}, "description": "The payload."},
        206: {"description": "The requested byte range."},
    },
    dependencies=[allow(NODES)],
)
async def package(s: Svc, package_id: str, request: Request) -> Response:
    """The zstd payload; `Range: bytes=N-` continues an interrupted download."""
    path = await s.sync.package_file(own_node(request), package_id)
    size = path.stat().st_size
    start, _ = byte_range(request, size)
    sent = {"resumed": "true" if start else "false"}
    if size > start:
        metrics.PACKAGE_BYTES.inc(size - start, tags=sent)
    return FileResponse(path, media_type="application/zstd", filename=f"{package_id}.zst")


@router.post(
    "/v1/sync/ack",
    response_model=SyncState,
    dependencies=[allow(NODES)],
)
async def ack(s: Svc, body: AckIn, request: Request) -> SyncState:
    """The node applied the package (revision and payload checksum as it saw them)."""
    return await s.sync.ack(own_node(request), body)


@router.post(
    "/v1/sync/error",
    response_model=SyncState,
    dependencies=[allow(NODES)],
)
async def report_error(s: Svc, body: SyncErrorIn, request: Request) -> SyncState:
    """The node refused or failed to apply a package; shown in its sync state."""
    metrics.SYNC_ERRORS.inc()
    return await s.sync.report_error(own_node(request), body)


@router.get(
    "/v1/sync/nodes",
    response_model=SyncStateList,
    dependencies=[allow(STATUS_READERS)],
)
async def list_states(s: Svc) -> SyncStateList:
    """Every node's acknowledged revision, lag and last error."""
    states = await s.sync.states(None)
    return SyncStateList(data=states, total=len(states))


@router.get(
    "/v1/sync/nodes/{node_id}",
    response_model=SyncState,
    dependencies=[allow(STATUS_READERS | {Role.node})],
)
async def node_state(s: Svc, node_id: str, request: Request) -> SyncState:
    acting_as(caller_of(request), node_id)
    return await s.sync.state(node_id)
