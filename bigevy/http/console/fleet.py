"""The console's fleet pages: nodes by state and region, one node, enrolment, revocation."""

from __future__ import annotations

import asyncio
from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from bigevy.analytics import charts
from bigevy.fleet.roles import ADMINS, OPERATORS, STATUS_READERS
from bigevy.http.access import allow, caller_of
from bigevy.http.console.forms import parsed, words
from bigevy.http.console.guard import PREFIX, check_csrf
from bigevy.http.console.pages import render
from bigevy.http.fleet.protocol import NodeState, TokenCreate
from bigevy.http.services import Svc
from bigevy.http.sync.protocol import SubscriptionIn
from bigevy.knowledge.taxonomy import Category

router = APIRouter(
    prefix=f"{PREFIX}/fleet",
    include_in_schema=False,
    dependencies=[allow(STATUS_READERS), Depends(check_csrf)],
)
run = asyncio.to_thread
STATES = list(get_args(NodeState))
PAGE = 100


@router.get("")
async def nodes(
    s: Svc,
    request: Request,
    state: Annotated[list[NodeState], Query()] = [],  # noqa: B006 - FastAPI copies defaults
    region: Annotated[str, Query(max_length=100)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    """Nodes with their last heartbeat, battery, storage, sync lag and versions."""
    regions = [region] if region else []
    rows, total = await run(s.fleet.list_nodes, list(state), regions, offset, PAGE)
    syncing = [n.id for n in rows if n.state != "revoked"]  # a revoked node syncs nothing
    lag = {st.node_id: st for st in await s.sync.states(syncing)} if syncing else {}
    census = await run(s.fleet.census)
    return render(
        request,
        "nodes.html",
        "fleet",
        nodes=rows,
        total=total,
        sync=lag,
        states=STATES,
        chosen=set(state),
        region=region,
        regions=sorted({r for _, r in census}),
        offset=offset,
        page=PAGE,
    )


@router.get("/enrol", dependencies=[allow(OPERATORS)])
async def enrol_form(request: Request) -> Response:
    return render(request, "enrol.html", "fleet")


@router.post("/enrol", dependencies=[allow(OPERATORS)])
async def enrol(
    s: Svc,
    request: Request,
    region: Annotated[str, Form(max_length=100)] = "",
    note: Annotated[str, Form(max_length=200)] = "",
    hours: Annotated[float, Form(gt=0, le=720)] = 24,
) -> Response:
    """A one-time enrolment token, shown once on this page."""
    body = parsed(TokenCreate, region=region or None, note=note, expires_in_s=int(hours * 3600))
    caller = caller_of(request)
    token = await run(
        s.fleet.create_token, body.expires_in_s, body.region, body.note, caller.key_id
    )
    return render(request, "enrol.html", "fleet", token=token)


@router.post("/tokens/{token_id}/revoke", dependencies=[allow(OPERATORS)])
async def revoke_token(s: Svc, request: Request, token_id: str) -> Response:
    """An unused token stops working at once (handed to the wrong person, or not needed)."""
    revoked = await run(s.fleet.revoke_token, token_id)
    return render(request, "enrol.html", "fleet", revoked=revoked)


@router.get("/{node_id}")
async def node(
    s: Svc,
    request: Request,
    node_id: str,
    questions: Annotated[bool, Query()] = False,
) -> Response:
    """One node: its heartbeats charted, subscription, escalation counts, and revocation."""
    detail = await run(s.fleet.get_node, node_id, 200)
    escalations = await s.analytics.node_escalations(node_id, "7d")
    subscription = sync = None
    if detail.state != "revoked":  # a revoked node syncs nothing more
        subscription, sync = await asyncio.gather(
            s.sync.subscription(node_id), s.sync.state(node_id)
        )
    asked = None
    if questions and caller_of(request).role in OPERATORS:
        asked = await s.analytics.node_questions(node_id, 20)
    return render(
        request,
        "node.html",
        "fleet",
        node=detail,
        subscription=subscription,
        sync=sync,
        escalations=escalations,
        asked=asked,
        categories=[str(c) for c in Category],
    )


@router.get("/{node_id}/heartbeats.svg")
async def heartbeat_chart(s: Svc, node_id: str) -> Response:
    detail = await run(s.fleet.get_node, node_id, 200)
    beats = [b.model_dump(mode="json") for b in detail.heartbeats]
    figure = charts.heartbeats(beats, detail.name)
    if figure is None:
        return Response(status_code=204)
    return Response(await run(charts.svg, figure), media_type="image/svg+xml")


@router.post("/{node_id}/subscription", dependencies=[allow(OPERATORS)])
async def subscription(
    s: Svc,
    node_id: str,
    categories: Annotated[list[str], Form()] = [],  # noqa: B006
    regions: Annotated[str, Form(max_length=5000)] = "",
    languages: Annotated[str, Form(max_length=1000)] = "",
    budget_mb: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    body = parsed(
        SubscriptionIn,
        categories=categories,
        regions=words(regions),
        languages=words(languages),
        budget_mb=budget_mb.strip() or None,
    )
    await s.sync.set_subscription(node_id, body)
    return RedirectResponse(f"{PREFIX}/fleet/{node_id}?saved=subscription", status_code=303)


@router.get("/{node_id}/revoke", dependencies=[allow(ADMINS)])
async def revoke_confirm(s: Svc, request: Request, node_id: str) -> Response:
    detail = await run(s.fleet.get_node, node_id, 0)
    return render(request, "revoke.html", "fleet", node=detail)


@router.post("/{node_id}/revoke", dependencies=[allow(ADMINS)])
async def revoke(s: Svc, node_id: str) -> Response:
    """The node and its keys stop working at once."""
    await run(s.fleet.revoke_node, node_id)
    return RedirectResponse(f"{PREFIX}/fleet/{node_id}?saved=revoked", status_code=303)
