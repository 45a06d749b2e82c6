"""The edge-sync routes: subscriptions, manifests, resumable package downloads, acks, state.

Thin: the sync deployment decides and builds; the gateway checks who calls and serves package
bytes from the packages directory (shared storage when replicas run on many hosts, like the
LanceDB directory), honouring HTTP Range so a cut download resumes.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from bigevy.api.openai import error_responses
from bigevy.api.sync import (
    AckIn,
    SignedManifest,
    SubscriptionIn,
    SubscriptionOut,
    SyncErrorIn,
    SyncState,
    SyncStateList,
)
from bigevy.errors import RangeNotSatisfiable
from bigevy.fleet.roles import NODES, OPERATORS, STATUS_READERS, Role
from bigevy.gateway.access import acting_as, allow
from bigevy.gateway.fleet import caller_of

ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429)
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


def add_sync_routes(router: APIRouter, sync: Any) -> None:
    """`sync`: the sync deployment's methods as awaitables (`HandleCalls`), or the service."""

    def own_node(request: Request) -> str:
        node_id = caller_of(request).node_id
        assert node_id  # NODES admits node keys only, and each names its node
        return node_id

    @router.get(
        "/v1/nodes/{node_id}/subscription",
        responses=ERRORS,
        response_model=SubscriptionOut,
        tags=["sync"],
        dependencies=[allow(STATUS_READERS | {Role.node})],
    )
    async def get_subscription(node_id: str, request: Request) -> SubscriptionOut:
        """What the node should hold (the defaults until one is set)."""
        acting_as(caller_of(request), node_id)
        return await sync.subscription(node_id)

    @router.put(
        "/v1/nodes/{node_id}/subscription",
        responses=ERRORS,
        response_model=SubscriptionOut,
        tags=["sync"],
        dependencies=[allow(OPERATORS | {Role.node})],
    )
    async def put_subscription(
        node_id: str, body: SubscriptionIn, request: Request
    ) -> SubscriptionOut:
        """Categories, regions, languages, budget and shares; the next package follows it
        (entries that no longer fit are deleted on the node)."""
        acting_as(caller_of(request), node_id)
        return await sync.set_subscription(node_id, body)

    @router.get(
        "/v1/sync/manifest",
        responses={**ERRORS, 204: {"description": "The node is up to date."}},
        response_model=SignedManifest,
        tags=["sync"],
        dependencies=[allow(NODES)],
    )
    async def manifest(
        request: Request,
        full: bool = Query(False, description="A full snapshot (a new or wiped node)."),
    ) -> Any:
        """The signed manifest of the package that brings this node up to date."""
        signed = await sync.manifest(own_node(request), full)
        if signed is None:
            return Response(status_code=204)
        return signed

    @router.get(
        "/v1/sync/packages/{package_id}",
        responses={
            **ERRORS,
            **error_responses(416),
            200: {"content": {"application/zstd": {}}, "description": "The payload."},
            206: {"description": "The requested byte range."},
        },
        tags=["sync"],
        dependencies=[allow(NODES)],
    )
    async def package(package_id: str, request: Request) -> Response:
        """The zstd payload; `Range: bytes=N-` continues an interrupted download."""
        path = await sync.package_file(own_node(request), package_id)
        size = path.stat().st_size
        match = _RANGE.match(request.headers.get("range", ""))
        if match and int(match.group(1)) >= size:
            error = RangeNotSatisfiable(
                f"range starts at byte {match.group(1)}; the package has {size} bytes",
                param="Range",
            )
            return JSONResponse(
                error.to_dict(), status_code=416, headers={"Content-Range": f"bytes */{size}"}
            )
        return FileResponse(path, media_type="application/zstd", filename=f"{package_id}.zst")

    @router.post(
        "/v1/sync/ack",
        responses=ERRORS,
        response_model=SyncState,
        tags=["sync"],
        dependencies=[allow(NODES)],
    )
    async def ack(body: AckIn, request: Request) -> SyncState:
        """The node applied the package (revision and payload checksum as it saw them)."""
        return await sync.ack(own_node(request), body)

    @router.post(
        "/v1/sync/error",
        responses=ERRORS,
        response_model=SyncState,
        tags=["sync"],
        dependencies=[allow(NODES)],
    )
    async def report_error(body: SyncErrorIn, request: Request) -> SyncState:
        """The node refused or failed to apply a package; shown in its sync state."""
        return await sync.report_error(own_node(request), body)

    @router.get(
        "/v1/sync/nodes",
        responses=ERRORS,
        response_model=SyncStateList,
        tags=["sync"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def list_states() -> SyncStateList:
        """Every node's acknowledged revision, lag and last error."""
        states = await sync.states(None)
        return SyncStateList(data=states, total=len(states))

    @router.get(
        "/v1/sync/nodes/{node_id}",
        responses=ERRORS,
        response_model=SyncState,
        tags=["sync"],
        dependencies=[allow(STATUS_READERS | {Role.node})],
    )
    async def node_state(node_id: str, request: Request) -> SyncState:
        acting_as(caller_of(request), node_id)
        return await sync.state(node_id)
