"""The fleet routes: keys, enrolment tokens, enrolment, heartbeats, nodes.

Thin: each route checks who calls, then hands a wire model to `FleetService` in a worker
thread (its database calls block).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from bigevy.errors import Forbidden
from bigevy.fleet.roles import (
    ADMINS,
    ANY_ROLE,
    NODE_OR_ADMIN,
    OPERATORS,
    STATUS_READERS,
    Role,
)
from bigevy.http.access import acting_as, allow, caller_of
from bigevy.http.errors import ERRORS
from bigevy.http.fleet.protocol import (
    Enrollment,
    EnrollRequest,
    HeartbeatIn,
    HeartbeatReply,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    NodeDetail,
    NodeList,
    NodeOut,
    NodeState,
    TokenCreate,
    TokenCreated,
    TokenRevoked,
)
from bigevy.http.idempotency import IdempotencyKey
from bigevy.http.services import Svc

router = APIRouter(responses=ERRORS)
run = asyncio.to_thread


@router.post(
    "/v1/keys",
    status_code=201,
    response_model=KeyCreated,
    tags=["keys"],
    dependencies=[allow(ADMINS)],
)
async def create_key(s: Svc, body: KeyCreate) -> KeyCreated:
    """A new API key, shown once in this reply; only its hash is stored."""
    return await run(s.fleet.create_key, body.role, body.name, body.expires_in_s, body.node_id)


@router.get(
    "/v1/keys",
    response_model=KeyList,
    tags=["keys"],
    dependencies=[allow(ADMINS)],
)
async def list_keys(s: Svc) -> KeyList:
    return KeyList(data=await run(s.fleet.list_keys))


@router.post(
    "/v1/keys/{key_id}/revoke",
    response_model=KeyOut,
    tags=["keys"],
    dependencies=[allow(ADMINS)],
)
async def revoke_key(s: Svc, key_id: str) -> KeyOut:
    """The key stops working at once."""
    return await run(s.fleet.revoke_key, key_id)


@router.post(
    "/v1/keys/{key_id}/rotate",
    response_model=KeyCreated,
    tags=["keys"],
    dependencies=[allow(ANY_ROLE)],
)
async def rotate_key(s: Svc, key_id: str, request: Request) -> KeyCreated:
    """A new key in place of this one (revoked at once). Admins rotate any key; others
    only the key they call with."""
    caller = caller_of(request)
    if caller.role != Role.admin and caller.key_id != key_id:
        raise Forbidden("only an admin may rotate another caller's key")
    return await run(s.fleet.rotate_key, key_id)


@router.post(
    "/v1/enrollment-tokens",
    status_code=201,
    response_model=TokenCreated,
    tags=["nodes"],
    dependencies=[allow(OPERATORS)],
)
async def create_token(s: Svc, body: TokenCreate, request: Request) -> TokenCreated:
    """A one-time, expiring token a new lilEVY node enrols with (operators install nodes in
    the field; revoking a node stays an admin's)."""
    caller = caller_of(request)
    return await run(s.fleet.create_token, body.expires_in_s, body.region, body.note, caller.key_id)


@router.post(
    "/v1/enrollment-tokens/{token_id}/revoke",
    response_model=TokenRevoked,
    tags=["nodes"],
    dependencies=[allow(OPERATORS)],
)
async def revoke_token(s: Svc, token_id: str) -> TokenRevoked:
    """An unused enrolment token stops working at once (409 if a node enrolled with it)."""
    return await run(s.fleet.revoke_token, token_id)


@router.post(
    "/v1/nodes/enroll",
    status_code=201,
    response_model=Enrollment,
    tags=["nodes"],
)
async def enroll(s: Svc, body: EnrollRequest) -> Enrollment:
    """Authenticated by the enrolment token itself: the node's id, its key, and the public
    key its packages will be signed with."""
    return await run(s.fleet.enroll, body)


@router.post(
    "/v1/nodes/{node_id}/heartbeat",
    response_model=HeartbeatReply,
    tags=["nodes"],
    dependencies=[allow(NODE_OR_ADMIN)],
)
async def heartbeat(
    s: Svc,
    node_id: str,
    beat: HeartbeatIn,
    request: Request,
    idempotency_key: str | None = IdempotencyKey,
) -> JSONResponse:
    """The node's health; the reply tells it what to do next."""
    acting_as(caller_of(request), node_id)
    reply, replayed = await s.heartbeats.beat(node_id, beat, idempotency_key)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse(reply.model_dump(mode="json"), headers=headers)


@router.get(
    "/v1/nodes",
    response_model=NodeList,
    tags=["nodes"],
    dependencies=[allow(STATUS_READERS)],
)
async def list_nodes(
    s: Svc,
    state: list[NodeState] = Query(default=[]),
    region: list[str] = Query(default=[]),
    offset: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> NodeList:
    rows, total = await run(s.fleet.list_nodes, state, region, offset, limit)
    return NodeList(data=rows, total=total)


@router.get(
    "/v1/nodes/{node_id}",
    response_model=NodeDetail,
    tags=["nodes"],
    dependencies=[allow(STATUS_READERS | {Role.node})],
)
async def get_node(
    s: Svc, node_id: str, request: Request, history: int = Query(20, ge=0, le=1000)
) -> NodeDetail:
    """A node and its recent heartbeats (a node key sees only its own node)."""
    acting_as(caller_of(request), node_id)
    return await run(s.fleet.get_node, node_id, history)


@router.post(
    "/v1/nodes/{node_id}/revoke",
    response_model=NodeOut,
    tags=["nodes"],
    dependencies=[allow(ADMINS)],
)
async def revoke_node(s: Svc, node_id: str) -> NodeOut:
    """The node and its keys stop working at once; its history is kept."""
    return await run(s.fleet.revoke_node, node_id)
