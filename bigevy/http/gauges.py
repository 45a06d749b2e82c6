"""The gauges each gateway replica keeps current: nodes by state and region, nodes still
waiting for a live alert, and the data dir's disk. Each replica reports the same figures
(dashboards and rules aggregate them with max); they are set again every interval, as Ray
evicts a gauge that is not refreshed."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import get_args

from bigevy import metrics
from bigevy.alerts.service import AlertService
from bigevy.fleet.service import FleetService
from bigevy.http.alerts.protocol import Severity

log = logging.getLogger("ray.serve")
#: How often the gauges are taken again (a node goes stale after minutes).
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
    waiting = dict.fromkeys(get_args(Severity), 0)
    for alert in alerts.list(include_ended=False, detail=True):
        if now - alert.updated_at < metrics.ALERT_DELIVERY_BUDGET_S:
            continue
        late = sum(1 for d in alert.deliveries or [] if d.status == "pending")
        waiting[alert.severity] += late
    return waiting
