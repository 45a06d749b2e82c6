"""Analytics: what the fleet asked and got over a period, from the metadata database.

Every report names its period (`7d`, `24h`: ending now) and, optionally, one region. A period
longer than escalations are kept is refused, as is a region bigEVY has never seen: an empty
report would read as "nothing happened". Figures from history kept for less time (question
texts, heartbeats) say from when they cover.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Integer, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import FunctionElement

from bigevy.analytics.questions import Asked, Embed, by_meaning
from bigevy.errors import NotFound, ValidationFailed
from bigevy.fleet.models import Alert, AlertDelivery, Escalation, Heartbeat, Node
from bigevy.fleet.service import FleetService
from bigevy.http.analytics.protocol import AlertDelivery as AlertDeliveryOut
from bigevy.http.analytics.protocol import (
    AlertReport,
    DayCount,
    EscalationReport,
    ModelUse,
    NodeActivity,
    NodeReport,
    OffloadReport,
    PeriodOut,
    Quantiles,
    QuestionGroup,
    QuestionReport,
    RegionOffload,
    Summary,
)

PERIOD = re.compile(r"(\d{1,4})([hd])")
UNIT_S = {"h": 3600, "d": 86400}
#: Distinct wordings grouped by meaning at most (each is embedded once per report).
MAX_WORDINGS = 2000
#: Wordings shown per group besides its leading one.
WORDINGS_SHOWN = 5
UNANSWERED = "no_verified_answer"


@dataclass(frozen=True)
class Period:
    name: str
    start: float
    end: float

    @property
    def out(self) -> PeriodOut:
        return PeriodOut(name=self.name, start=self.start, end=self.end)


class utc_day(FunctionElement):
    """Days since the epoch (UTC) of a Unix-seconds column: SQLite has no FLOOR by default,
    and PostgreSQL's CAST rounds instead of truncating."""

    type = Integer()
    inherit_cache = True


@compiles(utc_day)
def _utc_day(element: utc_day, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"FLOOR({compiler.process(element.clauses, **kw)} / 86400)"


@compiles(utc_day, "sqlite")
def _utc_day_sqlite(element: utc_day, compiler, **kw) -> str:  # type: ignore[no-untyped-def]
    return f"CAST({compiler.process(element.clauses, **kw)} / 86400 AS INTEGER)"


class Analytics:
    def __init__(
        self, fleet: FleetService, embed: Embed, clock: Callable[[], float] = time.time
    ) -> None:
        self.sessions = fleet.sessions
        self.spec = fleet.spec
        self.embed = embed
        self.clock = clock

    # -- what a report covers --------------------------------------------------------------

    def period(self, name: str) -> Period:
        """`name` (`7d`, `24h`) as the period ending now; 422 for anything else, or for a
        period longer than escalations are kept."""
        match = PERIOD.fullmatch(name)
        if match is None or int(match[1]) == 0:
            raise ValidationFailed(
                f"unknown period {name!r}: give hours or days, as 24h or 7d", param="period"
            )
        seconds = int(match[1]) * UNIT_S[match[2]]
        kept = self.spec.escalation_retention_s
        if seconds > kept:
            raise ValidationFailed(
                f"period {name!r} is longer than the {kept / 86400:g} days of escalations "
                "bigEVY keeps (fleet.escalation_retention_s)",
                param="period",
            )
        end = self.clock()
        return Period(name, end - seconds, end)

    def regions(self, session: Session) -> set[str]:
        """Regions bigEVY knows: its nodes', and those escalations were asked about."""
        nodes = session.scalars(select(Node.region).distinct())
        asked = session.scalars(
            select(Escalation.region).where(Escalation.region.is_not(None)).distinct()
        )
        return {*nodes, *asked}

    def _known(self, session: Session, region: str | None) -> None:
        if region is not None and region not in (known := self.regions(session)):
            raise NotFound(
                f"unknown region {region!r}; known: {', '.join(sorted(known)) or 'none yet'}",
                param="region",
            )

    async def _read(self, work: Callable[[Session], object]) -> object:
        def run() -> object:
            with self.sessions() as session:
                return work(session)

        return await asyncio.to_thread(run)

    async def _resolve(self, period: str, region: str | None) -> Period:
        resolved = self.period(period)
        await self._read(lambda session: self._known(session, region))
        return resolved

    # -- reports ---------------------------------------------------------------------------

    async def escalations(self, period: str, region: str | None) -> EscalationReport:
        p = await self._resolve(period, region)
        return await self._read(lambda s: self._escalations(s, p, region))  # type: ignore[return-value]

    async def node_escalations(self, node_id: str, period: str) -> EscalationReport:
        """One node's escalations: counts only (the console's node page)."""
        p = self.period(period)
        return await self._read(lambda s: self._escalations(s, p, None, node_id))  # type: ignore[return-value]

    async def node_questions(self, node_id: str, limit: int) -> list[tuple[float, str, str]]:
        """A node's most recent kept questions (redacted, as stored), with their outcomes:
        shown only when an operator asks to see them."""

        def read(session: Session) -> list[tuple[float, str, str]]:
            rows = session.execute(
                select(Escalation.received_at, Escalation.question, Escalation.outcome)
                .where(Escalation.node_id == node_id, Escalation.question.is_not(None))
                .order_by(Escalation.received_at.desc())
                .limit(limit)
            )
            return [(at, question, outcome or "unknown") for at, question, outcome in rows]

        return await self._read(read)  # type: ignore[return-value]

    async def questions(
        self, period: str, region: str | None, unanswered_only: bool, limit: int
    ) -> QuestionReport:
        p = await self._resolve(period, region)
        return await self._questions(p, region, unanswered_only, limit)

    async def offload(self, period: str, region: str | None) -> OffloadReport:
        p = await self._resolve(period, region)
        return await self._read(lambda s: self._offload(s, p, region))  # type: ignore[return-value]

    async def nodes(self, period: str, region: str | None) -> NodeReport:
        p = await self._resolve(period, region)
        return await self._read(lambda s: self._nodes(s, p, region))  # type: ignore[return-value]

    async def alerts(self, period: str, region: str | None) -> AlertReport:
        p = await self._resolve(period, region)
        return await self._read(lambda s: self._alerts(s, p, region))  # type: ignore[return-value]

    async def summary(self, period: str, region: str | None, limit: int) -> Summary:
        p = await self._resolve(period, region)

        def tables(s: Session) -> tuple[EscalationReport, OffloadReport, NodeReport, AlertReport]:
            return (
                self._escalations(s, p, region),
                self._offload(s, p, region),
                self._nodes(s, p, region),
                self._alerts(s, p, region),
            )

        escalations, offload, nodes, alerts = await self._read(tables)  # type: ignore[misc]
        return Summary(
            period=p.out,
            region=region,
            escalations=escalations,
            top_questions=await self._questions(p, region, False, limit),
            unanswered=await self._questions(p, region, True, limit),
            offload=offload,
            nodes=nodes,
            alerts=alerts,
        )

    # -- the queries -----------------------------------------------------------------------

    def _escalations(
        self, session: Session, p: Period, region: str | None, node_id: str | None = None
    ) -> EscalationReport:
        where = _in(p, region)
        if node_id is not None:
            where.append(Escalation.node_id == node_id)
        day = utc_day(Escalation.received_at)
        # Grouped by the columns themselves: PostgreSQL does not see two COALESCEs with
        # parameters as the same expression.
        labels = (Escalation.region, Escalation.category, Escalation.language)
        rows = session.execute(
            select(day, *labels, func.count()).where(*where).group_by(day, *labels).order_by(day)
        ).all()
        days = [
            DayCount(
                day=_date(d), region=r or "none", category=c or "unknown", language=lang, count=n
            )
            for d, r, c, lang, n in rows
        ]

        def by(column: Any) -> dict[str, int]:
            tally: Counter[str] = Counter()
            for value, n in session.execute(
                select(column, func.count()).where(*where).group_by(column)
            ):
                tally[value or "unknown"] += n
            return dict(tally.most_common())

        latencies = np.array(
            session.scalars(select(Escalation.latency_ms).where(*where)).all(), dtype=float
        )
        regions: Counter[str] = Counter()
        for row in days:
            regions[row.region] += row.count
        return EscalationReport(
            period=p.out,
            region=region,
            total=len(latencies),
            days=days,
            outcomes=by(Escalation.outcome),
            answer_modes=by(Escalation.answer_mode),
            categories=by(Escalation.category),
            languages=by(Escalation.language),
            regions=dict(regions.most_common()),
            models=_models(session, where),
            latency_ms_p50=_percentile(latencies, 50),
            latency_ms_p95=_percentile(latencies, 95),
        )

    async def _questions(
        self, p: Period, region: str | None, unanswered_only: bool, limit: int
    ) -> QuestionReport:
        kept_since = max(p.start, self.clock() - self.spec.question_retention_s)
        where = [*_in(Period(p.name, kept_since, p.end), region), Escalation.question.is_not(None)]
        if unanswered_only:
            where.append(Escalation.outcome == UNANSWERED)

        def read(session: Session) -> tuple[int, list[Asked]]:
            asked = session.scalar(select(func.count()).select_from(Escalation).where(*where))
            unanswered = func.sum(case((Escalation.outcome == UNANSWERED, 1), else_=0))
            rows = session.execute(
                select(Escalation.question, func.count(), unanswered)
                .where(*where)
                .group_by(Escalation.question)
                .order_by(func.count().desc(), Escalation.question)
                .limit(MAX_WORDINGS + 1)
            ).all()
            return int(asked or 0), [Asked(q, int(n), int(u or 0)) for q, n, u in rows]

        asked, wordings = await self._read(read)  # type: ignore[misc]
        groups = await by_meaning(wordings[:MAX_WORDINGS], self.embed)
        return QuestionReport(
            period=p.out,
            region=region,
            unanswered_only=unanswered_only,
            kept_since=kept_since,
            asked=asked,
            truncated=len(wordings) > MAX_WORDINGS,
            groups=[
                QuestionGroup(
                    question=g.question,
                    count=g.count,
                    unanswered=g.unanswered,
                    wordings=g.wordings[:WORDINGS_SHOWN],
                )
                for g in groups[:limit]
            ],
        )

    def _covered_since(self, p: Period) -> float:
        return max(p.start, self.clock() - self.spec.heartbeat_retention_s)

    def _beats(self, session: Session, since: float, region: str | None) -> list[tuple]:
        """Per node: region, heartbeats, battery min/avg, SMS in/out, FAQ answers."""
        query = (
            select(
                Heartbeat.node_id,
                func.count(),
                func.min(Heartbeat.battery_percent),
                func.avg(Heartbeat.battery_percent),
                func.coalesce(func.sum(Heartbeat.sms_in), 0),
                func.coalesce(func.sum(Heartbeat.sms_out), 0),
                func.coalesce(func.sum(Heartbeat.faq_answers), 0),
            )
            .join(Node, Node.id == Heartbeat.node_id)
            .where(Heartbeat.measured_at >= since)
            .group_by(Heartbeat.node_id)
        )
        if region is not None:
            query = query.where(Node.region == region)
        return [tuple(r) for r in session.execute(query)]

    def _escalated_by_node(self, session: Session, since: float) -> dict[str, int]:
        rows = session.execute(
            select(Escalation.node_id, func.count())
            .where(Escalation.received_at >= since, Escalation.node_id.is_not(None))
            .group_by(Escalation.node_id)
        )
        return {node_id: int(n) for node_id, n in rows}

    def _offload(self, session: Session, p: Period, region: str | None) -> OffloadReport:
        since = self._covered_since(p)
        regions = dict(session.execute(select(Node.id, Node.region)).all())
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for node_id, _, _, _, sms_in, _, faq in self._beats(session, since, region):
            totals[regions[node_id]][0] += int(sms_in)
            totals[regions[node_id]][1] += int(faq)
        for node_id, n in self._escalated_by_node(session, since).items():
            if region is None or regions.get(node_id) == region:
                totals[regions[node_id]][2] += n
        return OffloadReport(
            period=p.out,
            region=region,
            covered_since=since,
            regions=[
                RegionOffload(
                    region=name,
                    sms_in=sms_in,
                    faq_answers=faq,
                    escalations=escalated,
                    faq_share=faq / (faq + escalated) if faq + escalated else None,
                )
                for name, (sms_in, faq, escalated) in sorted(totals.items())
            ],
        )

    def _nodes(self, session: Session, p: Period, region: str | None) -> NodeReport:
        since = self._covered_since(p)
        beats = {row[0]: row for row in self._beats(session, since, region)}
        escalated = self._escalated_by_node(session, since)
        query = select(Node).where(Node.enrolled_at <= p.end).order_by(Node.region, Node.id)
        if region is not None:
            query = query.where(Node.region == region)
        interval = self.spec.heartbeat_interval_s
        out = []
        for node in session.scalars(query):
            _, count, low, mean, sms_in, sms_out, faq = beats.get(
                node.id, (node.id, 0, None, None, 0, 0, 0)
            )
            span = p.end - max(since, node.enrolled_at)
            last = (node.last_status or {}).get("battery_percent")
            out.append(
                NodeActivity(
                    node_id=node.id,
                    name=node.name,
                    region=node.region,
                    heartbeats=count,
                    uptime=min(1.0, count * interval / span) if span > 0 else None,
                    battery_min=_rounded(low),
                    battery_avg=_rounded(mean),
                    battery_last=_rounded(last),
                    sms_in=int(sms_in),
                    sms_out=int(sms_out),
                    faq_answers=int(faq),
                    escalations=escalated.get(node.id, 0),
                )
            )
        return NodeReport(period=p.out, region=region, covered_since=since, nodes=out)

    def _alerts(self, session: Session, p: Period, region: str | None) -> AlertReport:
        alerts = [
            a
            for a in session.scalars(
                select(Alert)
                .where(Alert.created_at >= p.start, Alert.created_at <= p.end)
                .order_by(Alert.created_at.desc())
            )
            if region is None or region in a.regions or "global" in a.regions
        ]
        live_nodes = select(Node.region).where(Node.revoked_at.is_(None))
        if region is not None:
            live_nodes = live_nodes.where(Node.region == region)
        live = Counter(session.scalars(live_nodes))
        reached = select(AlertDelivery).join(Node, Node.id == AlertDelivery.node_id)
        if region is not None:
            reached = reached.where(Node.region == region)
        out, delivered_all, acked_all = [], [], []
        for alert in alerts:
            rows = session.scalars(reached.where(AlertDelivery.alert_id == alert.id)).all()
            delivered = [d.first_sent_at - alert.created_at for d in rows]
            acked = [d.acked_at - alert.created_at for d in rows if d.acked_at is not None]
            delivered_all += delivered
            acked_all += acked
            out.append(
                AlertDeliveryOut(
                    alert_id=alert.id,
                    event=alert.event,
                    severity=alert.severity,
                    regions=alert.regions,
                    created_at=alert.created_at,
                    nodes=sum(n for r, n in live.items() if _reaches(alert, r)),
                    delivered=len(delivered),
                    acked=len(acked),
                    delivery_s=_quantiles(delivered),
                    ack_s=_quantiles(acked),
                )
            )
        return AlertReport(
            period=p.out,
            region=region,
            alerts=out,
            delivery_s=_quantiles(delivered_all),
            ack_s=_quantiles(acked_all),
        )


def _models(session: Session, where: list) -> list[ModelUse]:
    """Each model version's share of the escalations and how it did."""
    unverified = func.sum(case((Escalation.outcome == "no_verified_answer", 1), else_=0))
    rows = session.execute(
        select(
            Escalation.model,
            Escalation.model_version,
            func.count(),
            unverified,
            func.avg(Escalation.latency_ms),
        )
        .where(*where)
        .group_by(Escalation.model, Escalation.model_version)
        .order_by(func.count().desc())
    ).all()
    return [
        ModelUse(
            model=model,
            version=version or "",
            count=n,
            no_verified_answer=int(none or 0),
            latency_ms_mean=round(float(mean or 0), 1),
        )
        for model, version, n, none, mean in rows
    ]


def _in(p: Period, region: str | None) -> list:
    where = [Escalation.received_at >= p.start, Escalation.received_at <= p.end]
    if region is not None:
        where.append(Escalation.region == region)
    return where


def _reaches(alert: Alert, region: str) -> bool:
    return "global" in alert.regions or region in alert.regions


def _date(day: int | float) -> str:
    return datetime.fromtimestamp(int(day) * 86400, UTC).date().isoformat()


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if len(values) else None


def _quantiles(seconds: Iterable[float]) -> Quantiles | None:
    values = np.maximum(np.array(list(seconds), dtype=float), 0.0)  # clocks of one host
    if not len(values):
        return None
    return Quantiles(
        count=len(values),
        p50=round(float(np.percentile(values, 50)), 3),
        p95=round(float(np.percentile(values, 95)), 3),
        max=round(float(values.max()), 3),
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 1)
