"""Analytics routes: the period's escalations, questions, FAQ offload, nodes and alert
deliveries, for people (dashboards answer "now"; these answer "this month")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from bigevy.fleet.roles import STATUS_READERS
from bigevy.http.access import allow
from bigevy.http.analytics.protocol import (
    AlertReport,
    EscalationReport,
    NodeReport,
    OffloadReport,
    QuestionReport,
    Summary,
)
from bigevy.http.errors import ERRORS
from bigevy.http.services import Svc

router = APIRouter(
    prefix="/v1/analytics",
    tags=["analytics"],
    responses=ERRORS,
    dependencies=[allow(STATUS_READERS)],
)

Period = Annotated[
    str,
    Query(
        max_length=16,
        description="Hours or days ending now: 24h, 7d, 30d (at most the escalations kept).",
    ),
]
Region = Annotated[
    str | None,
    Query(min_length=1, max_length=100, description="One region; default: every region."),
]
Limit = Annotated[int, Query(ge=1, le=200, description="Question groups listed.")]


@router.get("/summary", response_model=Summary)
async def summary(
    s: Svc, period: Period = "7d", region: Region = None, limit: Limit = 10
) -> Summary:
    """Every report below, for one period."""
    return await s.analytics.summary(period, region, limit)


@router.get("/escalations", response_model=EscalationReport)
async def escalations(s: Svc, period: Period = "7d", region: Region = None) -> EscalationReport:
    """Escalations per day by region, category and language; outcomes and answer modes."""
    return await s.analytics.escalations(period, region)


@router.get("/questions", response_model=QuestionReport)
async def questions(
    s: Svc,
    period: Period = "7d",
    region: Region = None,
    limit: Limit = 20,
    unanswered: bool = Query(
        False, description="Only those nothing vetted answered: the list of what to write next."
    ),
) -> QuestionReport:
    """The most asked questions, grouped by meaning."""
    return await s.analytics.questions(period, region, unanswered, limit)


@router.get("/offload", response_model=OffloadReport)
async def offload(s: Svc, period: Period = "7d", region: Region = None) -> OffloadReport:
    """Per region: SMS received, answered from FAQ entries on the nodes, and escalated."""
    return await s.analytics.offload(period, region)


@router.get("/nodes", response_model=NodeReport)
async def nodes(s: Svc, period: Period = "7d", region: Region = None) -> NodeReport:
    """Per node: uptime, battery and SMS volume."""
    return await s.analytics.nodes(period, region)


@router.get("/alerts", response_model=AlertReport)
async def alerts(s: Svc, period: Period = "7d", region: Region = None) -> AlertReport:
    """Alerts posted in the period: how fast they reached the nodes and were acknowledged."""
    return await s.analytics.alerts(period, region)
