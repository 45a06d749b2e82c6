"""An escalation from a lilEVY node, answered once: who may ask, the node's region, the
Idempotency-Key a retried escalation carries, and the record every answer leaves."""

from __future__ import annotations

import asyncio
import time

from fastapi.responses import JSONResponse

from bigevy import metrics
from bigevy.answers.service import AnswerService
from bigevy.errors import NotFound
from bigevy.fleet.roles import Caller
from bigevy.fleet.service import PENDING_TOUCH_S, FleetService
from bigevy.http.access import acting_as
from bigevy.http.evy.protocol import EvyAnswer, EvyQuery
from bigevy.http.idempotency import claim_or_replay

ROUTE = "/v1/evy/query"


class Escalations:
    def __init__(
        self, answers: AnswerService, fleet: FleetService, versions: dict[str, str]
    ) -> None:
        self.answers = answers
        self.fleet = fleet
        #: Each model's served version, recorded with the escalations it answers.
        self.versions = versions

    async def answer(
        self, query: EvyQuery, caller: Caller, idempotency_key: str | None
    ) -> EvyAnswer | JSONResponse:
        """The answer, or the reply already given to this Idempotency-Key."""
        acting_as(caller, query.node_id)
        scope = caller.node_id or caller.key_id or "anonymous"
        if replayed := await claim_or_replay(self.fleet, scope, idempotency_key, ROUTE):
            return replayed  # before any lookup: a replay reads nothing else
        started = time.perf_counter()
        # While answering, the reservation is kept fresh: if this replica dies, a retry takes
        # it over within PENDING_TIMEOUT_S instead of waiting for it.
        keeping = asyncio.create_task(self._keep_claimed(scope, idempotency_key))
        try:
            enrolled = await self._enrolled_region(query.node_id)
            if query.region is None:
                query = query.model_copy(update={"region": enrolled})
            answer = await self.answers.query(query, enrolled)
            await asyncio.to_thread(
                self.fleet.record_escalation,
                reply=(scope, idempotency_key, answer.model_dump(mode="json"))
                if idempotency_key
                else None,
                node_id=caller.node_id,
                language=query.language,
                region=query.region,
                message_chars=len(query.message),
                emergency_kind=answer.triage.kind,
                model=answer.model,
                model_version=self.versions.get(answer.model),
                sms_segments=answer.sms_segments,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                outcome=outcome(answer),
                answer_mode=answer.answer_mode,
                category=category(answer),
                question=query.message,
            )
        except BaseException:
            # Unanswered or unrecorded: the key is free again, so a retry is answered afresh.
            if idempotency_key:
                await asyncio.to_thread(self.fleet.release_reply, scope, idempotency_key)
            raise
        finally:
            keeping.cancel()
        _count(answer, enrolled, query.language)
        return answer

    async def _keep_claimed(self, scope: str, key: str | None) -> None:
        while key:
            await asyncio.sleep(PENDING_TOUCH_S)
            await asyncio.to_thread(self.fleet.touch_reply, scope, key)

    async def _enrolled_region(self, node_id: str) -> str | None:
        """The region a node was enrolled in, if it names one: a lilEVY client that sends no
        region (the prototype's) got another country's emergency numbers without it."""
        try:
            region = await asyncio.to_thread(self.fleet.node_region, node_id)
        except NotFound:  # an admin or escalator key may ask for a node not enrolled here
            return None
        return None if region == "global" else region


def outcome(answer: EvyAnswer) -> str:
    """What the asker got, in the words an operator's dashboard counts."""
    if answer.triage.emergency:
        return "emergency"
    if answer.timings.get("cache_hit"):  # 1.0 for a hit, 0.0 for a miss
        return "cache_hit"
    if answer.answer_mode == "none":
        return "no_verified_answer"
    if answer.emergency_numbers:
        return "number"
    return "answered"


def category(answer: EvyAnswer) -> str:
    """The knowledge category the answer came from: its first citation's (`none` when it
    cites nothing)."""
    if answer.triage.emergency:
        return "emergency"
    return next((c.category for c in answer.citations if c.category), "none")


def _count(answer: EvyAnswer, region: str | None, language: str) -> None:
    metrics.ESCALATIONS.inc(
        tags={
            "region": region or "none",
            "language": metrics.bounded(language, metrics.LANGUAGES),
            "answer_mode": answer.answer_mode,
            "outcome": outcome(answer),
            "emergency_kind": answer.triage.kind or "none",
        }
    )
    for stage in ("retrieval", "compose", "generation", "total"):
        # A stage that did not run is in the timings as 0 (no model wrote an extractive one).
        if ms := answer.timings.get(f"{stage}_ms"):
            metrics.ESCALATION_SECONDS.observe(ms / 1000, tags={"stage": stage})
