"""Serve shell over `SyncService`: builds and tracks the knowledge packages of the edge."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ray import serve

from bigevy.api.sync import (
    AckIn,
    SignedManifest,
    SubscriptionIn,
    SubscriptionOut,
    SyncErrorIn,
    SyncState,
)
from bigevy.config import Settings
from bigevy.fleet.service import open_fleet
from bigevy.sync.catalogue import CatalogueReader
from bigevy.sync.service import SyncService

log = logging.getLogger("ray.serve")
#: How often expired and superseded packages are removed.
PRUNE_EVERY_S = 600.0


@serve.deployment(name="sync")
class SyncDeployment:
    async def __init__(self, settings: Settings) -> None:
        self.service = SyncService(
            settings, open_fleet(settings), CatalogueReader(settings.lancedb_uri)
        )
        self._pruning = asyncio.create_task(self._prune())

    async def _prune(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_EVERY_S)
            try:
                removed = await asyncio.to_thread(self.service.prune)
                if removed:
                    log.info("removed %d packages no node needs", removed)
            except Exception:
                log.exception("pruning packages failed; retried next round")

    # Blocking work (SQL, LanceDB, zstd) runs in worker threads: the replica stays responsive.

    async def subscription(self, node_id: str) -> SubscriptionOut:
        return await asyncio.to_thread(self.service.subscription, node_id)

    async def set_subscription(self, node_id: str, body: SubscriptionIn) -> SubscriptionOut:
        return await asyncio.to_thread(self.service.set_subscription, node_id, body)

    async def manifest(self, node_id: str, full: bool) -> SignedManifest | None:
        return await asyncio.to_thread(self.service.manifest, node_id, full)

    async def package_file(self, node_id: str, package_id: str) -> Path:
        return await asyncio.to_thread(self.service.package_file, node_id, package_id)

    async def ack(self, node_id: str, body: AckIn) -> SyncState:
        return await asyncio.to_thread(self.service.ack, node_id, body)

    async def report_error(self, node_id: str, body: SyncErrorIn) -> SyncState:
        return await asyncio.to_thread(self.service.report_error, node_id, body)

    async def states(self, node_ids: list[str] | None) -> list[SyncState]:
        return await asyncio.to_thread(self.service.states, node_ids)

    async def state(self, node_id: str) -> SyncState:
        return await asyncio.to_thread(self.service.state, node_id)

    async def check_health(self) -> None:
        await asyncio.to_thread(self.service.catalogue.revision)

    def __del__(self) -> None:
        task: Any = getattr(self, "_pruning", None)
        if task is not None:
            task.cancel()
