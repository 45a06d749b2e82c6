"""`POST /v1/evy/query`: what a lilEVY node escalates, answered for one SMS."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from bigevy.fleet.roles import ESCALATORS
from bigevy.http.access import allow, caller_of
from bigevy.http.errors import ERRORS
from bigevy.http.evy.protocol import EvyAnswer, EvyQuery
from bigevy.http.gate import SEARCHING
from bigevy.http.idempotency import IdempotencyKey
from bigevy.http.services import Svc

router = APIRouter(tags=["evy"], responses=ERRORS)


@router.post(
    "/v1/evy/query",
    response_model=EvyAnswer,
    dependencies=[allow(ESCALATORS), SEARCHING],
)
async def evy_query(
    s: Svc, query: EvyQuery, request: Request, idempotency_key: str | None = IdempotencyKey
) -> Any:
    """A lilEVY escalation: a grounded, cited answer, and the same cut to fit its SMS.

    A node key asks only as its own node; an `Idempotency-Key` retried (a node's outbox
    after an outage) gets the first answer again, not a second one. Without a `region`,
    the node's enrolled region is used."""
    return await s.escalations.answer(query, caller_of(request), idempotency_key)
