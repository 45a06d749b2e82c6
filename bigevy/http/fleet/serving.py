"""A node's heartbeat: stored once per Idempotency-Key, answered with what the node should do
next and the alerts it has not acknowledged (its fallback when it holds no alert stream)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from bigevy import metrics
from bigevy.alerts.service import AlertService
from bigevy.fleet.service import FleetService
from bigevy.http.alerts.protocol import SignedAlert
from bigevy.http.fleet.protocol import Directive, HeartbeatIn, HeartbeatReply
from bigevy.http.knowledge.serving import KnowledgeGateway

log = logging.getLogger("ray.serve")
#: How often the nodes-by-state gauge is recounted (a node goes stale after minutes).
CENSUS_EVERY_S = 15.0


async def report_census(
    fleet: FleetService, alerts: AlertService, data_dir: Path, every_s: float = CENSUS_EVERY_S
) -> None:
    """Keep the fleet gauges current: nodes by (state, region), each seen one reported (0
    once empty), the nodes still waiting for a live alert, and the data dir's disk."""
    seen: set[tuple[str, str]] = set()
    while True:
        try:
            counts = await asyncio.to_thread(fleet.census)
            seen |= counts.keys()
            for state, region in seen:
                tags = {"state": state, "region": region}
                metrics.NODES.set(counts.get((state, region), 0), tags=tags)
            waiting = await asyncio.to_thread(_waiting_for_alerts, alerts)
            for severity, nodes in waiting.items():
                metrics.ALERTS_WAITING.set(nodes, tags={"severity": severity})
            disk = shutil.disk_usage(data_dir)
            metrics.DATA_DIR_BYTES.set(disk.free, tags={"measure": "free"})
            metrics.DATA_DIR_BYTES.set(disk.total, tags={"measure": "total"})
        except Exception:
            log.exception("counting nodes failed; trying again")
        await asyncio.sleep(every_s)


def _waiting_for_alerts(alerts: AlertService) -> dict[str, int]:
    """Per severity: nodes without the current version of a live alert posted over the
    delivery budget ago."""
    now = time.time()
    waiting = dict.fromkeys(("Extreme", "Severe", "Moderate", "Minor", "Unknown"), 0)
    for alert in alerts.list(include_ended=False, detail=True):
        if now - alert.updated_at < metrics.ALERT_DELIVERY_BUDGET_S:
            continue
        late = sum(1 for d in alert.deliveries or [] if d.status == "pending")
        waiting[alert.severity] = waiting.get(alert.severity, 0) + late
    return waiting


class Heartbeats:
    def __init__(
        self, fleet: FleetService, alerts: AlertService, knowledge: KnowledgeGateway
    ) -> None:
        self.fleet = fleet
        self.alerts = alerts
        self.knowledge = knowledge

    async def beat(
        self, node_id: str, beat: HeartbeatIn, idempotency_key: str | None
    ) -> tuple[HeartbeatReply, bool]:
        """The reply, and whether this beat was a retry of one already stored."""
        replayed, pending = await asyncio.to_thread(
            self._store_and_collect, node_id, beat, idempotency_key
        )
        directives = []
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
    ) -> tuple[bool, list[SignedAlert]]:
        """One trip to a worker thread for the whole database part (40 beats/s from a fleet
        of 200: each hop off the event loop counts)."""
        replayed = self.fleet.heartbeat(node_id, beat, idempotency_key)
        pending = self.alerts.pending_for(node_id)
        self.alerts.mark_sent(node_id, [(a.alert_id, a.version) for a in pending], "heartbeat")
        return replayed, pending
