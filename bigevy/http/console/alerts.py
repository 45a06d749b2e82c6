"""The console's alert pages: compose, preview as phones will see it, confirm, follow, cancel.

Sending takes two posts: the preview names how many nodes the alert reaches, and only its
button sends. The alert's identifier is drawn at the preview, so a second click on Send (or a
reload) updates the same alert instead of sending another one.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from bigevy.alerts.sms import alert_sms
from bigevy.fleet.roles import OPERATORS, STATUS_READERS
from bigevy.http.access import allow, caller_of
from bigevy.http.alerts.protocol import AlertIn
from bigevy.http.console.guard import PREFIX, check_csrf
from bigevy.http.console.pages import parsed, render, words
from bigevy.http.services import Svc

router = APIRouter(
    prefix=f"{PREFIX}/alerts",
    include_in_schema=False,
    dependencies=[allow(STATUS_READERS), Depends(check_csrf)],
)
run = asyncio.to_thread
SEVERITIES = ["Extreme", "Severe", "Moderate", "Minor"]
URGENCIES = ["Immediate", "Expected", "Future"]
CERTAINTIES = ["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
Text = Annotated[str, Form(max_length=10_000)]


def _choices() -> dict:
    return {"severities": SEVERITIES, "urgencies": URGENCIES, "certainties": CERTAINTIES}


@router.get("")
async def alerts(s: Svc, request: Request, ended: Annotated[bool, Query()] = False) -> Response:
    rows = await run(s.alerts.list, ended, False)
    return render(request, "alerts.html", "alerts", alerts=rows, ended=ended)


@router.get("/new", dependencies=[allow(OPERATORS)])
async def new(request: Request) -> Response:
    return render(request, "compose.html", "alerts", draft={"hours": 6}, **_choices())


@router.post("/compose", dependencies=[allow(OPERATORS)])
async def compose(
    request: Request,
    event: Text = "",
    severity: Text = "",
    urgency: Text = "",
    certainty: Text = "Unknown",
    regions: Text = "",
    headline: Text = "",
    instruction: Text = "",
    area: Text = "",
    hours: Text = "6",
) -> Response:
    """Back from the preview to the form, as it was filled in."""
    draft = dict(
        event=event,
        severity=severity,
        urgency=urgency,
        certainty=certainty,
        regions=regions,
        headline=headline,
        instruction=instruction,
        area=area,
        hours=hours,
    )
    return render(request, "compose.html", "alerts", draft=draft, **_choices())


@router.post("/preview", dependencies=[allow(OPERATORS)])
async def preview(
    s: Svc,
    request: Request,
    event: Text = "",
    severity: Text = "",
    urgency: Text = "",
    certainty: Text = "Unknown",
    regions: Text = "",
    headline: Text = "",
    instruction: Text = "",
    area: Text = "",
    hours: Annotated[float, Form(gt=0, le=24 * 14)] = 6,
    identifier: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """The SMS as phones will see it, its segments and encoding, and the nodes it reaches."""
    alert = parsed(
        AlertIn,
        identifier=identifier or f"console-{secrets.token_hex(6)}",
        event=event,
        severity=severity,
        urgency=urgency,
        certainty=certainty,
        regions=words(regions),
        headline=headline,
        instruction=instruction,
        area=area,
        expires=s.alerts.clock() + hours * 3600,
    )
    sms = alert_sms(alert.model_dump(mode="json"))
    reach = await run(s.alerts.reach, alert.regions)
    return render(
        request,
        "preview.html",
        "alerts",
        alert=alert,
        sms=sms,
        reach=reach,
        hours=hours,
        regions=", ".join(alert.regions),
    )


@router.post("/send", dependencies=[allow(OPERATORS)])
async def send(
    s: Svc,
    request: Request,
    identifier: Annotated[str, Form(max_length=200)],
    event: Text,
    severity: Text,
    urgency: Text,
    regions: Text,
    headline: Text,
    expires: Annotated[float, Form()],
    certainty: Text = "Unknown",
    instruction: Text = "",
    area: Text = "",
) -> Response:
    """Sent (or, for the same identifier, updated): follow its delivery next."""
    alert = parsed(
        AlertIn,
        identifier=identifier,
        event=event,
        severity=severity,
        urgency=urgency,
        certainty=certainty,
        regions=words(regions),
        headline=headline,
        instruction=instruction,
        area=area,
        expires=expires,
    )
    out, _ = await run(s.alerts.post, alert, caller_of(request).key_id)
    s.hub.poke()
    return RedirectResponse(f"{PREFIX}/alerts/{out.id}", status_code=303)


@router.get("/{alert_id}")
async def alert(s: Svc, request: Request, alert_id: str) -> Response:
    out = await run(s.alerts.get, alert_id)
    return render(request, "alert.html", "alerts", alert=out)


@router.get("/{alert_id}/deliveries")
async def deliveries(s: Svc, request: Request, alert_id: str) -> Response:
    """The delivery table alone: the alert's page polls it while the alert is live."""
    out = await run(s.alerts.get, alert_id)
    return render(request, "_deliveries.html", "alerts", alert=out)


@router.post("/{alert_id}/cancel", dependencies=[allow(OPERATORS)])
async def cancel(s: Svc, alert_id: str) -> Response:
    """Nodes that have it are told to take it down."""
    await run(s.alerts.cancel, alert_id)
    s.hub.poke()
    return RedirectResponse(f"{PREFIX}/alerts/{alert_id}", status_code=303)
