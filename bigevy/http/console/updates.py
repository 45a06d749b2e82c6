"""The console's update pages: artifacts and rollouts, each rollout's nodes and events, and
the operator's pause, resume, abort and rollback, each with a reason that goes in its record."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from bigevy.fleet.roles import OPERATORS, STATUS_READERS
from bigevy.http.access import allow, caller_of
from bigevy.http.console.guard import PREFIX, check_csrf
from bigevy.http.console.pages import render
from bigevy.http.services import Svc
from bigevy.http.updates.protocol import Action
from bigevy.updates.rollouts import COMMANDS

router = APIRouter(
    prefix=f"{PREFIX}/updates",
    include_in_schema=False,
    dependencies=[allow(STATUS_READERS), Depends(check_csrf)],
)
run = asyncio.to_thread


@router.get("")
async def updates(s: Svc, request: Request) -> Response:
    rollouts = await run(s.rollouts.list, None)
    artifacts = await run(s.artifacts.list)
    return render(request, "updates.html", "updates", rollouts=rollouts, artifacts=artifacts)


@router.get("/{rollout_id}")
async def rollout(s: Svc, request: Request, rollout_id: str) -> Response:
    detail = await run(s.rollouts.get, rollout_id)
    nodes = await run(s.rollouts.nodes, rollout_id, None)
    actions = [a for a, (sources, _) in COMMANDS.items() if detail.state in sources]
    return render(request, "rollout.html", "updates", rollout=detail, nodes=nodes, actions=actions)


@router.post("/{rollout_id}/{action}", dependencies=[allow(OPERATORS)])
async def command(
    s: Svc,
    request: Request,
    rollout_id: str,
    action: Action,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    await run(s.rollouts.command, rollout_id, action, caller_of(request).key_id, reason)
    return RedirectResponse(f"{PREFIX}/updates/{rollout_id}", status_code=303)
