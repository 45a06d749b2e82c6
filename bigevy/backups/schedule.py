"""Scheduled backups: each interval, one gateway replica (the one whose claim on the interval's
row lands first) makes a backup and prunes the old ones."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.exc import IntegrityError

from bigevy.backups.service import Backups
from bigevy.fleet.models import BackupRun
from bigevy.fleet.service import FleetService

log = logging.getLogger("ray.serve")
#: How often a replica looks whether the current interval has its backup.
CHECK_EVERY_S = 60.0


def run_due(backups: Backups, fleet: FleetService, every_s: float) -> str | None:
    """The backup of the current interval if no replica made it yet; its id."""
    now = fleet.clock()
    slot = int(now // every_s)
    try:
        with fleet.sessions.begin() as session:
            session.add(BackupRun(slot=slot, started_at=now))
    except IntegrityError:
        return None  # another replica has this interval
    backup_id, error = None, None
    try:
        backup_id = backups.create().id
        backups.prune()
    except Exception as exc:  # recorded, and tried again next interval
        error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("scheduled backup failed: %s", error)
    with fleet.sessions.begin() as session:
        run = session.get(BackupRun, slot)
        assert run is not None
        run.finished_at, run.backup_id, run.error = fleet.clock(), backup_id, error
    return backup_id


async def keep_backing_up(backups: Backups, fleet: FleetService, every_h: float) -> None:
    while True:
        await asyncio.sleep(CHECK_EVERY_S)
        try:
            await asyncio.to_thread(run_due, backups, fleet, every_h * 3600)
        except Exception as exc:  # the database away for a moment: next time
            log.warning("backup schedule check failed: %r", exc)
