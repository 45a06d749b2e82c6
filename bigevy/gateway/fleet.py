"""The fleet routes: keys, enrolment tokens, enrolment, heartbeats, nodes.

Thin: each route checks who calls, then hands a wire model to `FleetService` in a worker
thread (its database calls block).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from bigevy.alerts.service import AlertService
from bigevy.api.alerts import SignedAlert
from bigevy.api.fleet import (
    Directive,
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
from bigevy.api.openai import error_responses
from bigevy.errors import Conflict, Forbidden
from bigevy.fleet.roles import ADMINS, ANY_ROLE, NODE_OR_ADMIN, STATUS_READERS, Caller, Role
from bigevy.fleet.service import FleetService
from bigevy.gateway.access import acting_as, allow

ERRORS = error_responses(401, 403, 404, 409, 413, 422, 429)
IdempotencyKey = Header(
    None,
    alias="Idempotency-Key",
    max_length=100,
    description="A retry with the same key is stored and answered once.",
)


def caller_of(request: Request) -> Caller:
    """Who the route's `allow(...)` admitted."""
    return request.state.caller


def add_fleet_routes(
    router: APIRouter,
    fleet: FleetService,
    knowledge_revision: Callable[[], Awaitable[int]],
    alerts: AlertService,
) -> None:
    """The fleet routes, on the app's own router (so each is a plain `APIRoute`)."""

    async def run(method: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(method, *args)

    @router.post(
        "/v1/keys",
        responses=ERRORS,
        status_code=201,
        response_model=KeyCreated,
        tags=["keys"],
        dependencies=[allow(ADMINS)],
    )
    async def create_key(body: KeyCreate) -> KeyCreated:
        """A new API key, shown once in this reply; only its hash is stored."""
        return await run(fleet.create_key, body.role, body.name, body.expires_in_s, body.node_id)

    @router.get(
        "/v1/keys",
        responses=ERRORS,
        response_model=KeyList,
        tags=["keys"],
        dependencies=[allow(ADMINS)],
    )
    async def list_keys() -> KeyList:
        return KeyList(data=await run(fleet.list_keys))

    @router.post(
        "/v1/keys/{key_id}/revoke",
        responses=ERRORS,
        response_model=KeyOut,
        tags=["keys"],
        dependencies=[allow(ADMINS)],
    )
    async def revoke_key(key_id: str) -> KeyOut:
        """The key stops working at once."""
        return await run(fleet.revoke_key, key_id)

    @router.post(
        "/v1/keys/{key_id}/rotate",
        responses=ERRORS,
        response_model=KeyCreated,
        tags=["keys"],
        dependencies=[allow(ANY_ROLE)],
    )
    async def rotate_key(key_id: str, request: Request) -> KeyCreated:
        """A new key in place of this one (revoked at once). Admins rotate any key; others
        only the key they call with."""
        caller = caller_of(request)
        if caller.role != Role.admin and caller.key_id != key_id:
            raise Forbidden("only an admin may rotate another caller's key")
        return await run(fleet.rotate_key, key_id)

    @router.post(
        "/v1/enrollment-tokens",
        responses=ERRORS,
        status_code=201,
        response_model=TokenCreated,
        tags=["nodes"],
        dependencies=[allow(ADMINS)],
    )
    async def create_token(body: TokenCreate, request: Request) -> TokenCreated:
        """A one-time, expiring token a new lilEVY node enrols with."""
        caller = caller_of(request)
        return await run(
            fleet.create_token, body.expires_in_s, body.region, body.note, caller.key_id
        )

    @router.post(
        "/v1/enrollment-tokens/{token_id}/revoke",
        responses=ERRORS,
        response_model=TokenRevoked,
        tags=["nodes"],
        dependencies=[allow(ADMINS)],
    )
    async def revoke_token(token_id: str) -> TokenRevoked:
        """An unused enrolment token stops working at once (409 if a node enrolled with it)."""
        return await run(fleet.revoke_token, token_id)

    @router.post(
        "/v1/nodes/enroll",
        responses=ERRORS,
        status_code=201,
        response_model=Enrollment,
        tags=["nodes"],
    )
    async def enroll(body: EnrollRequest) -> Enrollment:
        """Authenticated by the enrolment token itself: the node's id, its key, and the public
        key its packages will be signed with."""
        return await run(fleet.enroll, body)

    @router.post(
        "/v1/nodes/{node_id}/heartbeat",
        responses=ERRORS,
        response_model=HeartbeatReply,
        tags=["nodes"],
        dependencies=[allow(NODE_OR_ADMIN)],
    )
    async def heartbeat(
        node_id: str,
        beat: HeartbeatIn,
        request: Request,
        idempotency_key: str | None = IdempotencyKey,
    ) -> JSONResponse:
        """The node's health; the reply tells it what to do next."""
        acting_as(caller_of(request), node_id)

        def store_and_collect() -> tuple[bool, list[SignedAlert]]:
            """One trip to a worker thread for the whole database part (40 beats/s from a
            fleet of 200: each hop off the event loop counts)."""
            replayed = fleet.heartbeat(node_id, beat, idempotency_key)
            # The fallback for nodes without an alert stream: every alert they have not acked.
            pending = alerts.pending_for(node_id)
            alerts.mark_sent(node_id, [(a.alert_id, a.version) for a in pending], "heartbeat")
            return replayed, pending

        replayed, pending = await run(store_and_collect)
        directives = []
        revision = await knowledge_revision()
        if beat.knowledge_revision is not None and beat.knowledge_revision < revision:
            directives.append(
                Directive(
                    type="knowledge_update",
                    detail={"from_revision": beat.knowledge_revision, "to_revision": revision},
                )
            )
        reply = HeartbeatReply(
            node_id=node_id,
            state="online",
            server_time=time.time(),
            heartbeat_interval_s=fleet.spec.heartbeat_interval_s,
            directives=directives,
            alerts=pending,
        )
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(reply.model_dump(mode="json"), headers=headers)

    @router.get(
        "/v1/nodes",
        responses=ERRORS,
        response_model=NodeList,
        tags=["nodes"],
        dependencies=[allow(STATUS_READERS)],
    )
    async def list_nodes(
        state: list[NodeState] = Query(default=[]),
        region: list[str] = Query(default=[]),
        offset: int = Query(0, ge=0),
        limit: int = Query(100, ge=1, le=1000),
    ) -> NodeList:
        rows, total = await run(fleet.list_nodes, state, region, offset, limit)
        return NodeList(data=rows, total=total)

    @router.get(
        "/v1/nodes/{node_id}",
        responses=ERRORS,
        response_model=NodeDetail,
        tags=["nodes"],
        dependencies=[allow(STATUS_READERS | {Role.node})],
    )
    async def get_node(
        node_id: str, request: Request, history: int = Query(20, ge=0, le=1000)
    ) -> NodeDetail:
        """A node and its recent heartbeats (a node key sees only its own node)."""
        acting_as(caller_of(request), node_id)
        return await run(fleet.get_node, node_id, history)

    @router.post(
        "/v1/nodes/{node_id}/revoke",
        responses=ERRORS,
        response_model=NodeOut,
        tags=["nodes"],
        dependencies=[allow(ADMINS)],
    )
    async def revoke_node(node_id: str) -> NodeOut:
        """The node and its keys stop working at once; its history is kept."""
        return await run(fleet.revoke_node, node_id)


#: How long a retry waits for the attempt still answering it before it gets 409, and how
#: often it looks.
IN_FLIGHT_WAIT_S = 30.0
IN_FLIGHT_POLL_S = 0.25


async def claim_or_replay(
    fleet: FleetService, scope: str, key: str | None, route: str
) -> JSONResponse | None:
    """None when this request is to be answered (its Idempotency-Key now reserved), else the
    reply already given to it."""
    if not key:
        return None
    waited = 0.0
    while True:
        try:
            stored = await asyncio.to_thread(fleet.claim_reply, scope, key, route)
            break
        except Conflict:
            # A retry of a request still being answered (an outbox after a timeout) waits
            # for that answer rather than being refused: its node would have to come back.
            if waited >= IN_FLIGHT_WAIT_S:
                raise
            await asyncio.sleep(IN_FLIGHT_POLL_S)
            waited += IN_FLIGHT_POLL_S
    if stored is None:
        return None
    status, body = stored
    return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
