"""The console's front pages: sign-in, the overview, analytics and models.

Pages are thin like the API's routes: each asks the same services the API asks, so what a
person sees is what `curl` would show. Roles are the API's: `allow(...)` admits the session's
key as it admits a bearer key.
"""

from __future__ import annotations

import asyncio
from base64 import b64encode
from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from bigevy.analytics import charts
from bigevy.errors import Forbidden, Unauthorized
from bigevy.fleet.roles import STATUS_READERS
from bigevy.http.access import allow
from bigevy.http.console.guard import COOKIE, PREFIX, check_csrf
from bigevy.http.console.pages import render
from bigevy.http.errors import counted
from bigevy.http.services import Svc

#: Sign-in: no session yet, so no CSRF token (the guard checks the post's origin).
entry = APIRouter(prefix=PREFIX, include_in_schema=False)
router = APIRouter(
    prefix=PREFIX,
    include_in_schema=False,
    dependencies=[allow(STATUS_READERS), Depends(check_csrf)],
)
run = asyncio.to_thread
#: The periods people pick from (the analytics routes take any `\d{1,4}[hd]`).
PERIODS = ["24h", "7d", "30d", "90d"]
Period = Annotated[str, Query(pattern=r"^\d{1,4}[hd]$", max_length=5)]
Region = Annotated[str | None, Query(max_length=100)]


def _next_page(target: str) -> str:
    """Only a console page: a sign-in link must not send anyone elsewhere."""
    if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX


@entry.get("/login")
async def login_page(request: Request, next: str = Query(PREFIX, max_length=2000)) -> Response:
    return render(request, "login.html", next=_next_page(next))


@entry.post("/login")
async def login(
    s: Svc,
    request: Request,
    key: Annotated[str, Form(max_length=300)] = "",
    next: Annotated[str, Form(max_length=2000)] = PREFIX,
) -> Response:
    """A session for the key's holder; the key itself is not kept in the browser."""
    try:
        opened = await run(s.console.open, key)
    except (Unauthorized, Forbidden) as refused:
        counted(refused)  # as every refusal is: a wrong key here is a wrong key
        return render(
            request,
            "login.html",
            status_code=refused.status_code,
            next=_next_page(next),
            message=refused.message,
        )
    response = RedirectResponse(_next_page(next), status_code=303)
    response.set_cookie(
        COOKIE,
        opened.cookie,
        max_age=int(opened.expires_at - s.fleet.clock()),
        path=PREFIX,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/logout")
async def logout(s: Svc, request: Request) -> Response:
    await run(s.console.close, request.cookies.get(COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


@router.get("")
async def overview(s: Svc, request: Request) -> Response:
    """What an operator looks at first: traffic, nodes, alerts, sources and models."""
    report, census, alerts, sources, readiness, errors = await asyncio.gather(
        s.analytics.escalations("24h", None),
        run(s.fleet.census),
        run(s.alerts.list, False, False),
        s.connectors.health_report(),
        s.readiness.get(),
        s.prometheus.errors_last_hour(),
    )
    regions: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (state, region), count in census.items():
        regions[region][state] += count
    return render(
        request,
        "overview.html",
        "overview",
        report=report,
        per_hour=report.total / 24,
        regions=dict(sorted(regions.items())),
        alerts=alerts,
        sources=sources,
        readiness=readiness,
        errors=errors,
        prometheus=s.prometheus.url,
    )


@router.get("/analytics")
async def analytics(
    s: Svc, request: Request, period: Period = "7d", region: Region = None
) -> Response:
    """The analytics charts with the figures behind them: drawn here from the one summary the
    page reads, and sent inside the page (SVG data URIs: no second read per chart)."""
    summary = await s.analytics.summary(period, region or None, 10)
    sections = {
        "escalations": summary.escalations,
        "questions": summary.top_questions,
        "unanswered": summary.unanswered,
        "offload": summary.offload,
        "nodes": summary.nodes,
        "alerts": summary.alerts,
    }
    drawn = await run(_draw, {name: r.model_dump(mode="json") for name, r in sections.items()})
    return render(
        request,
        "analytics.html",
        "analytics",
        summary=summary,
        drawn=drawn,
        period=period,
        region=region or "",
        periods=PERIODS,
    )


def _draw(reports: dict[str, dict]) -> dict[str, list[tuple[str, str]]]:
    """Each section's charts as (name, data URI)."""
    return {
        section: [
            (name, "data:image/svg+xml;base64," + b64encode(charts.svg(figure)).decode())
            for name, figure in charts.figures(section, report)
        ]
        for section, report in reports.items()
    }


@router.get("/models")
async def models(s: Svc, request: Request) -> Response:
    """Each model's state, replicas, speed, context, and how it answers escalations."""
    statuses = await s.openai.model_status()
    modes = {m.id: (m.answers, m.unsourced) for m in s.openai.settings.models}
    return render(request, "models.html", "models", statuses=statuses, modes=modes)
