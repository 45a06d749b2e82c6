"""Analytics over the metadata database, on SQLite and PostgreSQL, with the real embedder
grouping questions by meaning: what an operator reads for a period, and what it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import numpy as np
import pytest
from sqlalchemy import select

from bigevy.alerts.service import AlertService
from bigevy.analytics.questions import Asked, by_meaning, redacted
from bigevy.analytics.service import Analytics
from bigevy.config import EmbedderSpec
from bigevy.errors import NotFound, ValidationFailed
from bigevy.fleet.models import Escalation
from bigevy.fleet.service import FleetService
from bigevy.http.alerts.protocol import AlertIn
from bigevy.http.fleet.protocol import HeartbeatIn
from bigevy.knowledge.embedder import Embedder
from tests.support.fleet import Clock, clock, enroll, fleet
from tests.support.postgres import database_url

FIXTURES = (database_url, clock, fleet)
DAY = 86400.0
T = TypeVar("T")


def run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)


@pytest.fixture(scope="module")
def embed() -> Any:
    embedder = Embedder(EmbedderSpec())

    async def vectors(texts: list[str]) -> np.ndarray:
        return embedder.encode_array(texts)

    return vectors


@pytest.fixture
def analytics(fleet: FleetService, embed: Any, clock: Clock) -> Analytics:
    return Analytics(fleet, embed, clock)


def escalate(fleet: FleetService, node_id: str | None, question: str, **fields: Any) -> None:
    """One escalation recorded as the gateway records it."""
    outcome = fields.pop("outcome", "answered")
    fleet.record_escalation(
        node_id=node_id,
        language=fields.pop("language", "en"),
        region=fields.pop("region", "kisumu"),
        message_chars=len(question),
        emergency_kind=fields.pop("emergency_kind", None),
        model="knowledge-base",
        sms_segments=1,
        latency_ms=fields.pop("latency_ms", 100.0),
        outcome=outcome,
        answer_mode="none" if outcome == "no_verified_answer" else "extractive",
        category=fields.pop("category", "healthcare" if outcome == "answered" else "none"),
        question=question,
    )


def test_stored_questions_lose_what_identifies_the_asker() -> None:
    text = redacted("my son (2 yrs) has fever, call me on +254 712 345 678 or a@b.org www.x.ke")
    assert "2 yrs" in text  # an age is what the question is about
    assert "712" not in text and "a@b.org" not in text and "www.x.ke" not in text
    assert text.count("[number]") == 1 and "[email]" in text and "[link]" in text
    assert redacted("account 00123 blocked") == "account [number] blocked"


def test_questions_are_grouped_by_meaning_most_asked_first(embed: Any) -> None:
    groups = run(
        by_meaning(
            [
                Asked("how do i treat diarrhoea in a child", 3, unanswered=0),
                Asked("what to do for a child with diarrhea", 2, unanswered=1),
                Asked("when will maize prices go up", 4, unanswered=4),
                Asked("treatment for diarrhoea in children", 1),
            ],
            embed,
        )
    )
    assert [g.question for g in groups] == [
        "how do i treat diarrhoea in a child",  # 6 askings over three wordings
        "when will maize prices go up",
    ]
    assert groups[0].count == 6 and groups[0].unanswered == 1
    assert set(groups[0].wordings) == {
        "what to do for a child with diarrhea",
        "treatment for diarrhoea in children",
    }


def test_escalations_per_day_by_region_category_language(
    fleet: FleetService, analytics: Analytics, clock: Clock
) -> None:
    node, _ = enroll(fleet, region="kisumu")
    escalate(fleet, node, "how to treat malaria")
    escalate(fleet, node, "what are maize prices", outcome="no_verified_answer")
    clock.now += DAY
    escalate(
        fleet,
        node,
        "snake bite",
        outcome="emergency",
        emergency_kind="medical",
        category="emergency",
    )
    escalate(fleet, None, "habari za mafuriko", region="mombasa", language="sw")
    clock.now += 10 * DAY  # outside a 7d period
    escalate(fleet, node, "how to treat malaria again")

    week = run(analytics.escalations("7d", None))
    assert week.total == 1
    month = run(analytics.escalations("30d", None))
    assert month.total == 5
    assert month.outcomes == {"answered": 3, "no_verified_answer": 1, "emergency": 1}
    assert month.regions == {"kisumu": 4, "mombasa": 1}
    assert month.languages == {"en": 4, "sw": 1}
    days = {(d.day, d.region, d.category, d.language): d.count for d in month.days}
    assert sum(days.values()) == 5 and len({d for d, *_ in days}) == 3
    assert month.latency_ms_p50 == 100.0

    kisumu = run(analytics.escalations("30d", "kisumu"))
    assert kisumu.total == 4 and set(kisumu.regions) == {"kisumu"}
    assert kisumu.answer_modes == {"extractive": 3, "none": 1}


def test_unknown_periods_and_regions_are_refused(analytics: Analytics, fleet: FleetService) -> None:
    enroll(fleet, region="kisumu")
    for period in ("week", "7", "0d", "7w", "-1d", "1e3d"):
        with pytest.raises(ValidationFailed, match="unknown period"):
            run(analytics.escalations(period, None))
    with pytest.raises(ValidationFailed, match="longer than the 90 days"):
        run(analytics.escalations("91d", None))
    assert run(analytics.escalations("90d", None)).total == 0
    with pytest.raises(NotFound, match="unknown region 'atlantis'; known: kisumu"):
        run(analytics.nodes("7d", "atlantis"))


def test_what_nothing_answers_is_the_list_of_what_to_write_next(
    fleet: FleetService, analytics: Analytics, clock: Clock
) -> None:
    node, _ = enroll(fleet, region="kisumu")
    for question in ("when do i plant maize", "best time to plant maize", "maize planting time"):
        escalate(fleet, node, question, outcome="no_verified_answer")
    escalate(fleet, node, "how much is a bus to kisumu", outcome="no_verified_answer")
    escalate(fleet, node, "how to treat malaria")
    escalate(fleet, node, "my child was bitten by a snake", outcome="emergency")

    unanswered = run(analytics.questions("7d", None, True, 10))
    assert unanswered.asked == 4
    assert [(g.count, g.unanswered) for g in unanswered.groups] == [(3, 3), (1, 1)]
    assert "maize" in unanswered.groups[0].question
    assert unanswered.groups[1].question == "how much is a bus to kisumu"

    asked = run(analytics.questions("7d", "kisumu", False, 10))
    texts = {g.question for g in asked.groups} | {w for g in asked.groups for w in g.wordings}
    # An emergency's words are never kept: its kind says what analytics needs.
    assert "my child was bitten by a snake" not in texts and "how to treat malaria" in texts
    assert asked.asked == 5
    assert run(analytics.escalations("7d", "kisumu")).outcomes["emergency"] == 1  # counted

    # Question texts go after question_retention_s (30 days); the counts stay.
    clock.now += 31 * DAY
    fleet.forget_past()
    with fleet.sessions() as session:
        assert session.scalars(select(Escalation.question)).all() == [None] * 6
    later = run(analytics.questions("60d", None, True, 10))
    assert later.groups == [] and later.kept_since == clock.now - 30 * DAY
    assert run(analytics.escalations("60d", None)).total == 6


def test_nodes_offload_and_alert_delivery(
    fleet: FleetService, analytics: Analytics, clock: Clock
) -> None:
    a, _ = enroll(fleet, region="kisumu")
    b, _ = enroll(fleet, region="kisumu")
    c, _ = enroll(fleet, region="mombasa")
    start = clock.now
    for minute in range(60):
        clock.now = start + minute * 60
        beat = HeartbeatIn(battery_percent=80 - minute / 6, sms_in=3, faq_answers=1)
        fleet.heartbeat(a, beat, None)
        if minute % 2 == 0:  # b is heard from half the time
            fleet.heartbeat(b, HeartbeatIn(battery_percent=50, sms_in=1), None)
    escalate(fleet, a, "how to treat malaria")
    escalate(fleet, a, "maize prices", outcome="no_verified_answer")

    alerts = AlertService(fleet, clock)
    posted_at = clock.now
    alert, _ = alerts.post(
        AlertIn(
            identifier="flood-1",
            sender="ops@example.org",
            event="Flood",
            severity="Severe",
            urgency="Immediate",
            regions=["kisumu"],
            headline="Flood warning",
            description="Move to high ground.",
            expires=clock.now + 3600,
        ),
        None,
    )
    clock.now += 2
    alerts.mark_sent(a, [(alert.id, 1)], "stream")
    clock.now += 1
    alerts.ack(a, alert.id, 1)
    clock.now += 5
    alerts.mark_sent(b, [(alert.id, 1)], "heartbeat")

    nodes = {n.node_id: n for n in run(analytics.nodes("1d", None)).nodes}
    # Heard from 60 of the 60 minutes since enrolment (a) and 30 of them (b); c never.
    # (a's 60 heartbeats stand for a little more than the 59 minutes 8 seconds it was enrolled.)
    assert nodes[a].heartbeats == 60 and nodes[a].uptime == 1.0
    assert nodes[b].uptime == pytest.approx(30 * 60 / (clock.now - start))
    assert nodes[c].heartbeats == 0 and nodes[c].uptime == 0.0 and nodes[c].battery_min is None
    assert nodes[a].battery_min == nodes[a].battery_last == pytest.approx(70.2, abs=0.1)
    assert (nodes[a].sms_in, nodes[a].faq_answers, nodes[a].escalations) == (180, 60, 2)

    offload = {r.region: r for r in run(analytics.offload("1d", None)).regions}
    assert offload["kisumu"].sms_in == 210 and offload["kisumu"].faq_answers == 60
    assert offload["kisumu"].faq_share == pytest.approx(60 / 62)
    assert "mombasa" not in offload  # no heartbeat, no escalation: nothing to share

    report = run(analytics.alerts("1d", None))
    (one,) = report.alerts
    assert (one.nodes, one.delivered, one.acked) == (2, 2, 1)
    assert one.delivery_s is not None
    assert one.delivery_s.max == pytest.approx(clock.now - posted_at)
    assert one.ack_s is not None and one.ack_s.p50 == pytest.approx(3.0)
    assert run(analytics.alerts("1d", "mombasa")).alerts == []
