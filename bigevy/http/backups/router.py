"""The backup routes: make one now, list, show, verify, prune. Restoring is the CLI's alone
(`bigevy backup restore`): it replaces the data dir of a bigEVY that is not running.

The work runs in the gateway, on its paths and database, in a worker thread; the passphrase
comes from the gateway's environment, never from a request.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Query

from bigevy.fleet.roles import ADMINS, OPERATORS
from bigevy.http.access import allow
from bigevy.http.backups.protocol import BackupCheck, BackupList, BackupOut
from bigevy.http.errors import ERRORS
from bigevy.http.services import Svc

router = APIRouter(prefix="/v1/backups", tags=["backups"], responses=ERRORS)
run = asyncio.to_thread


@router.post("", status_code=201, response_model=BackupOut, dependencies=[allow(ADMINS)])
async def create_backup(s: Svc) -> BackupOut:
    """A consistent backup now, to `backups.location`, while bigEVY keeps serving (minutes
    for a large base). Where it goes is configuration, never a request's choice: a path in
    a request would let a key write anywhere the server may."""
    return await run(s.backups.create)


@router.get("", response_model=BackupList, dependencies=[allow(OPERATORS)])
async def list_backups(s: Svc) -> BackupList:
    """Complete backups at the configured location, newest first."""
    return BackupList(data=await run(s.backups.list))


@router.post("/prune", response_model=BackupList, dependencies=[allow(ADMINS)])
async def prune_backups(
    s: Svc, dry_run: bool = Query(False, description="Say what would go; delete nothing.")
) -> BackupList:
    """Keep the newest backup of each of the last `keep_daily` days and `keep_weekly` weeks;
    the reply lists those deleted."""
    return BackupList(data=await run(s.backups.prune, None, None, None, dry_run))


@router.get("/{backup_id}", response_model=BackupOut, dependencies=[allow(OPERATORS)])
async def get_backup(s: Svc, backup_id: str) -> BackupOut:
    return await run(s.backups.get, backup_id)


@router.post("/{backup_id}/verify", response_model=BackupCheck, dependencies=[allow(ADMINS)])
async def verify_backup(s: Svc, backup_id: str) -> BackupCheck:
    """Every file's size and sha256 against the manifest, and the passphrase against the
    sealed keys."""
    problems = await run(s.backups.verify, backup_id)
    return BackupCheck(id=backup_id, ok=not problems, problems=problems)
