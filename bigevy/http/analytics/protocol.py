"""Wire models of `GET /v1/analytics/…`: what the fleet asked and got over a period, read from
the metadata database (Prometheus answers "now"; these answer "this month")."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PeriodOut(BaseModel):
    name: str = Field(description="As asked: 7d, 24h…")
    start: float = Field(description="Unix seconds.")
    end: float


class Report(BaseModel):
    period: PeriodOut
    region: str | None = Field(description="The region asked for; null: every region.")


class DayCount(BaseModel):
    day: str = Field(description="UTC date, YYYY-MM-DD.")
    region: str
    category: str
    language: str
    count: int


class ModelUse(BaseModel):
    """Escalations one build of one model answered (`knowledge-base`: sentences taken from
    the sources as they are, no model wrote them)."""

    model: str
    version: str = Field(
        description="ModelSpec.served_version; empty where no model wrote the answer, or "
        "for escalations from before versions were kept."
    )
    count: int
    no_verified_answer: int
    latency_ms_mean: float


class EscalationReport(Report):
    total: int
    days: list[DayCount] = Field(description="Escalations per day, region, category, language.")
    outcomes: dict[str, int] = Field(
        description="answered, no_verified_answer, emergency, number, cache_hit (unknown: "
        "recorded before outcomes were)."
    )
    answer_modes: dict[str, int]
    categories: dict[str, int]
    languages: dict[str, int]
    regions: dict[str, int]
    models: list[ModelUse] = Field(
        default=[], description="By model and version, most used first: to compare versions."
    )
    latency_ms_p50: float | None
    latency_ms_p95: float | None


class QuestionGroup(BaseModel):
    question: str = Field(description="Its most asked wording (redacted: no digits, addresses).")
    count: int
    unanswered: int = Field(description="How many of them got no verified answer.")
    wordings: list[str] = Field(description="Other wordings of it, most asked first.")


class QuestionReport(Report):
    unanswered_only: bool
    kept_since: float = Field(
        description="Question texts are kept for fleet.question_retention_s: the list covers "
        "this time on (later than the period's start when the period is longer)."
    )
    asked: int = Field(description="Questions asked in what the list covers.")
    truncated: bool = Field(description="Only the most asked wordings were grouped.")
    groups: list[QuestionGroup]


class RegionOffload(BaseModel):
    region: str
    sms_in: int = Field(description="SMS the region's nodes received (their heartbeats).")
    faq_answers: int = Field(description="...of them answered from FAQ entries on the node.")
    escalations: int = Field(description="Questions the region's nodes escalated to bigEVY.")
    faq_share: float | None = Field(
        description="faq_answers / (faq_answers + escalations): the share of questions needing "
        "more than the node's own knowledge that FAQ entries took off bigEVY."
    )


class OffloadReport(Report):
    covered_since: float = Field(
        description="Heartbeats are kept for fleet.heartbeat_retention_s: figures from them "
        "cover this time on."
    )
    regions: list[RegionOffload]


class NodeActivity(BaseModel):
    node_id: str
    name: str
    region: str
    heartbeats: int
    uptime: float | None = Field(
        description="Share of the covered time the node was heard from: heartbeats received times "
        "the heartbeat interval, over the time it was enrolled in it (at most 1)."
    )
    battery_min: float | None
    battery_avg: float | None
    battery_last: float | None
    sms_in: int
    sms_out: int
    faq_answers: int
    escalations: int


class NodeReport(Report):
    covered_since: float = Field(description="See OffloadReport.covered_since.")
    nodes: list[NodeActivity]


class Quantiles(BaseModel):
    count: int
    p50: float
    p95: float
    max: float


class AlertDelivery(BaseModel):
    alert_id: str
    event: str
    severity: str
    regions: list[str]
    created_at: float
    nodes: int = Field(description="Enrolled nodes in its regions now.")
    delivered: int = Field(description="Nodes it was handed to (pushed or in a heartbeat).")
    acked: int
    delivery_s: Quantiles | None = Field(description="Seconds from posting to each hand-over.")
    ack_s: Quantiles | None = Field(description="Seconds from posting to each node's ack.")


class AlertReport(Report):
    alerts: list[AlertDelivery] = Field(description="Alerts posted in the period, newest first.")
    delivery_s: Quantiles | None = Field(description="Over every alert's hand-overs.")
    ack_s: Quantiles | None


class Summary(Report):
    escalations: EscalationReport
    top_questions: QuestionReport
    unanswered: QuestionReport
    offload: OffloadReport
    nodes: NodeReport
    alerts: AlertReport
