"""The console's alert pages: compose, preview as phones will see it, confirm, follow, cancel.

Sending takes two posts: the preview names how many nodes the alert reaches, and only its
button sends. The alert's identifier is drawn at the preview, so a second click on Send (or a
reload) updates the same alert instead of sending another one.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from bigevy.alerts.sms import alert_sms
from bigevy.errors import ValidationFailed
from bigevy.fleet.roles import OPERATORS, STATUS_READERS
from bigevy.http.access import allow, caller_of
from bigevy.http.alerts.protocol import AlertIn, Certainty, Severity, Urgency
from bigevy.http.console.forms import parsed, words
from bigevy.http.console.guard import PREFIX, check_csrf
from bigevy.http.console.pages import render
from bigevy.http.services import Svc

router = APIRouter(
    prefix=f"{PREFIX}/alerts",
    include_in_schema=False,
    dependencies=[allow(STATUS_READERS), Depends(check_csrf)],
)
run = asyncio.to_thread
#: What an operator picks from: CAP's values, less those that say nothing to a phone user.
SEVERITIES = [v for v in get_args(Severity) if v != "Unknown"]
URGENCIES = [v for v in get_args(Urgency) if v not in ("Past", "Unknown")]
CERTAINTIES = list(get_args(Certainty))


def _choices() -> dict:
    return {"severities": SEVERITIES, "urgencies": URGENCIES, "certainties": CERTAINTIES}


@router.get("")
async def alerts(s: Svc, request: Request, ended: Annotated[bool, Query()] = False) -> Response:
    rows = await run(s.alerts.list, ended, False)
    return render(request, "alerts.html", "alerts", alerts=rows, ended=ended)


class Draft(BaseModel):
    """The compose form as typed: checked as `AlertIn` (the API's checks) when previewed and
    sent. `expires` is fixed at the preview, so the alert sent is the alert previewed."""

    identifier: str = Field("", max_length=200)
    event: str = Field("", max_length=200)
    severity: str = Field("", max_length=20)
    urgency: str = Field("", max_length=20)
    certainty: str = Field("Unknown", max_length=20)
    regions: str = Field("", max_length=20_000)
    headline: str = Field("", max_length=500)
    instruction: str = Field("", max_length=2_000)
    area: str = Field("", max_length=1_000)
    hours: float = Field(6, gt=0, le=24 * 14)
    expires: float | None = None

    def alert(self, now: float) -> AlertIn:
        fields = self.model_dump(exclude={"hours", "regions"})
        fields["identifier"] = self.identifier or f"console-{secrets.token_hex(6)}"
        fields["regions"] = words(self.regions)
        fields["expires"] = self.expires or now + self.hours * 3600
        return parsed(AlertIn, **fields)


@router.get("/new", dependencies=[allow(OPERATORS)])
async def new(request: Request) -> Response:
    return render(request, "compose.html", "alerts", draft=Draft(), **_choices())


@router.post("/compose", dependencies=[allow(OPERATORS)])
async def compose(request: Request, draft: Annotated[Draft, Form()]) -> Response:
    """Back from the preview to the form, as it was filled in."""
    return render(request, "compose.html", "alerts", draft=draft, **_choices())


@router.post("/preview", dependencies=[allow(OPERATORS)])
async def preview(s: Svc, request: Request, draft: Annotated[Draft, Form()]) -> Response:
    """The SMS as phones will see it, its segments and encoding, and the nodes it reaches."""
    alert = draft.alert(s.alerts.clock())
    sms = alert_sms(alert.model_dump(mode="json"))
    reach = await run(s.alerts.reach, alert.regions)
    return render(
        request,
        "preview.html",
        "alerts",
        alert=alert,
        sms=sms,
        reach=reach,
        hours=draft.hours,
        regions=", ".join(alert.regions),
    )


@router.post("/send", dependencies=[allow(OPERATORS)])
async def send(s: Svc, request: Request, draft: Annotated[Draft, Form()]) -> Response:
    """Sent (or, for the same identifier, updated): follow its delivery next."""
    if not draft.identifier or draft.expires is None:
        raise ValidationFailed("send an alert from its preview", param="identifier")
    out, _ = await run(s.alerts.post, draft.alert(s.alerts.clock()), caller_of(request).key_id)
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
