"""A node's heartbeat: stored once per Idempotency-Key, answered with what the node should do
next and the alerts it has not acknowledged (its fallback when it holds no alert stream)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bigevy.alerts.service import AlertService
from bigevy.fleet.service import FleetService
from bigevy.http.alerts.protocol import SignedAlert
from bigevy.http.fleet.protocol import Directive, HeartbeatIn, HeartbeatReply
from bigevy.http.knowledge.serving import KnowledgeGateway
from bigevy.updates.rollouts import Rollouts


class Heartbeats:
    def __init__(
        self,
        fleet: FleetService,
        alerts: AlertService,
        knowledge: KnowledgeGateway,
        rollouts: Rollouts,
    ) -> None:
        self.fleet = fleet
        self.alerts = alerts
        self.knowledge = knowledge
        self.rollouts = rollouts

    async def beat(
        self, node_id: str, beat: HeartbeatIn, idempotency_key: str | None
    ) -> tuple[HeartbeatReply, bool]:
        """The reply, and whether this beat was a retry of one already stored."""
        replayed, pending, updates = await asyncio.to_thread(
            self._store_and_collect, node_id, beat, idempotency_key
        )
        directives = [Directive(**d) for d in updates]
        revision = await self.knowledge.revision()
        if beat.knowledge_revision is not None and beat.knowledge_revision < revision:
            directives.append(
                Directive(
                    type="knowledge_update",
                    detail={"from_revision": beat.knowledge_revision, "to_revision": revision},
                )
            )
        reply = HeartbeatReply(
            node_id=node_id,
            state="online",
            server_time=time.time(),
            heartbeat_interval_s=self.fleet.spec.heartbeat_interval_s,
            directives=directives,
            alerts=pending,
        )
        return reply, replayed

    def _store_and_collect(
        self, node_id: str, beat: HeartbeatIn, idempotency_key: str | None
    ) -> tuple[bool, list[SignedAlert], list[dict[str, Any]]]:
        """One trip to a worker thread for the whole database part (40 beats/s from a fleet
        of 200: each hop off the event loop counts)."""
        replayed = self.fleet.heartbeat(node_id, beat, idempotency_key)
        pending = self.alerts.pending_for(node_id)
        self.alerts.mark_sent(node_id, [(a.alert_id, a.version) for a in pending], "heartbeat")
        return replayed, pending, self.rollouts.directives_for(node_id)
