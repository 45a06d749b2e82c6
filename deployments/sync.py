"""The sync deployment: builds and tracks the knowledge packages of the edge."""

from __future__ import annotations

from bigevy.config import Settings
from bigevy.fleet.service import open_fleet
from bigevy.sync.catalogue import CatalogueReader
from bigevy.sync.service import SyncService


async def open_sync(settings: Settings) -> SyncService:
    service = SyncService(settings, open_fleet(settings), CatalogueReader(settings.lancedb_uri))
    service.start_pruning()
    service.start_reporting()
    return service
