"""Idempotency-Key: a request retried with the same key is answered once, and the retry gets
the stored reply (a node's outbox resends after every timeout)."""

from __future__ import annotations

import asyncio

from fastapi import Header
from fastapi.responses import JSONResponse

from bigevy.errors import Conflict
from bigevy.fleet.service import FleetService

IdempotencyKey = Header(
    None,
    alias="Idempotency-Key",
    max_length=100,
    description="A retry with the same key is stored and answered once.",
)

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
