"""The update routes: artifacts (upload, list, show, delete, resumable download), rollouts
(create, list, show, their nodes, pause, resume, abort, roll back), nodes' reports, and a
node's maintenance window.

Thin: each route checks who calls and hands the request to `Artifacts` / `Rollouts` (blocking,
so in a worker thread); an upload's body is streamed to the blob store by `ArtifactUploads`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from bigevy.errors import ValidationFailed
from bigevy.fleet.roles import NODES, OPERATORS, STATUS_READERS, Role
from bigevy.http.access import acting_as, allow, caller_of
from bigevy.http.errors import ERRORS, error_responses
from bigevy.http.ranges import ranged_file
from bigevy.http.services import Svc
from bigevy.http.sync.router import own_node
from bigevy.http.updates.protocol import (
    VERSION,
    Action,
    ArtifactKind,
    ArtifactList,
    ArtifactOut,
    MaintenanceWindow,
    NodeStatus,
    RolloutCommand,
    RolloutCreate,
    RolloutDetail,
    RolloutList,
    RolloutNodeList,
    RolloutNodeOut,
    RolloutReport,
    RolloutState,
)

router = APIRouter(tags=["updates"], responses=ERRORS)
run = asyncio.to_thread
SHA256 = r"^[0-9a-fA-F]{64}$"
#: The body of an upload: the file's bytes, streamed.
_FILE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/v1/artifacts",
    status_code=201,
    response_model=ArtifactOut,
    dependencies=[allow(OPERATORS)],
    openapi_extra=_FILE_BODY,
)
async def add_artifact(
    s: Svc,
    request: Request,
    kind: ArtifactKind,
    version: Annotated[str, Query(pattern=VERSION)],
    name: Annotated[str, Query(max_length=200)] = "",
    hardware: Annotated[list[str], Query(max_length=50)] = [],  # noqa: B006 (FastAPI copies)
    sha256: Annotated[
        str | None, Query(pattern=SHA256, description="Refused unless the bytes match.")
    ] = None,
) -> ArtifactOut:
    """A file for the fleet, streamed as the body; stored by its sha256 and signed."""
    if any(not h or len(h) > 200 for h in hardware):
        raise ValidationFailed("each hardware name has 1 to 200 characters", param="hardware")
    return await s.uploads.receive(
        request.stream(), kind, version, name, hardware, sha256, caller_of(request).key_id
    )


@router.get("/v1/artifacts", response_model=ArtifactList, dependencies=[allow(STATUS_READERS)])
async def list_artifacts(s: Svc) -> ArtifactList:
    return ArtifactList(data=await run(s.artifacts.list))


@router.get(
    "/v1/artifacts/{artifact_id}",
    response_model=ArtifactOut,
    dependencies=[allow(STATUS_READERS)],
)
async def get_artifact(s: Svc, artifact_id: str) -> ArtifactOut:
    return await run(s.artifacts.get, artifact_id)


@router.delete("/v1/artifacts/{artifact_id}", status_code=204, dependencies=[allow(OPERATORS)])
async def delete_artifact(s: Svc, artifact_id: str) -> Response:
    """Refused (409) while a rollout uses it."""
    await run(s.artifacts.delete, artifact_id)
    return Response(status_code=204)


@router.get(
    "/v1/artifacts/{artifact_id}/file",
    responses={
        **error_responses(416),
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        206: {"description": "The requested byte range."},
    },
    dependencies=[allow(OPERATORS | NODES)],
)
async def artifact_file(s: Svc, artifact_id: str, request: Request) -> Response:
    """The file; `Range: bytes=N-` continues a cut download. A node gets only what a
    rollout offered it."""
    caller = caller_of(request)
    node_id = caller.node_id if caller.role == Role.node else None
    blob = await run(s.artifacts.file, artifact_id, node_id)
    return ranged_file(
        request,
        blob.size,
        lambda: s.artifacts.store.open(blob.sha256),
        "application/octet-stream",
        blob.sha256,
    )


@router.post(
    "/v1/rollouts", status_code=201, response_model=RolloutDetail, dependencies=[allow(OPERATORS)]
)
async def create_rollout(s: Svc, body: RolloutCreate, request: Request) -> RolloutDetail:
    """Offer an artifact to the nodes named, phase by phase."""
    return await run(s.rollouts.create, body, caller_of(request).key_id)


@router.get("/v1/rollouts", response_model=RolloutList, dependencies=[allow(STATUS_READERS)])
async def list_rollouts(s: Svc, state: RolloutState | None = None) -> RolloutList:
    return RolloutList(data=await run(s.rollouts.list, state))


@router.get(
    "/v1/rollouts/{rollout_id}",
    response_model=RolloutDetail,
    dependencies=[allow(STATUS_READERS)],
)
async def get_rollout(s: Svc, rollout_id: str) -> RolloutDetail:
    """Its state, counts per node status, and every event with who made it."""
    return await run(s.rollouts.get, rollout_id)


@router.get(
    "/v1/rollouts/{rollout_id}/nodes",
    response_model=RolloutNodeList,
    dependencies=[allow(STATUS_READERS)],
)
async def rollout_nodes(
    s: Svc, rollout_id: str, status: NodeStatus | None = None
) -> RolloutNodeList:
    return RolloutNodeList(data=await run(s.rollouts.nodes, rollout_id, status))


@router.post(
    "/v1/rollouts/{rollout_id}/report",
    response_model=RolloutNodeOut,
    dependencies=[allow(NODES)],
)
async def report(s: Svc, rollout_id: str, body: RolloutReport, request: Request) -> RolloutNodeOut:
    """A node's step: downloading, installed, healthy, failed or rolled_back."""
    return await run(s.rollouts.report, rollout_id, own_node(request), body)


@router.post(
    "/v1/rollouts/{rollout_id}/{action}",
    response_model=RolloutDetail,
    dependencies=[allow(OPERATORS)],
)
async def command_rollout(
    s: Svc,
    rollout_id: str,
    action: Action,
    request: Request,
    body: RolloutCommand | None = None,
) -> RolloutDetail:
    """pause, resume (accepting the failures so far), abort, or rollback."""
    reason = body.reason if body else ""
    return await run(s.rollouts.command, rollout_id, action, caller_of(request).key_id, reason)


@router.put(
    "/v1/nodes/{node_id}/maintenance-window",
    response_model=MaintenanceWindow,
    tags=["nodes"],
    dependencies=[allow(OPERATORS | {Role.node})],
)
async def set_window(
    s: Svc, node_id: str, body: MaintenanceWindow, request: Request
) -> MaintenanceWindow:
    """When updates may be offered to the node (UTC); null: any time."""
    acting_as(caller_of(request), node_id)
    await run(s.fleet.set_maintenance_window, node_id, body.window)
    return body
