"""Package building cannot be driven without bound: a node switching its subscription back
and forth while asking for full snapshots stores each distinct build once, and at most a few.
The sync service in-process (no Ray) over a real knowledge store and fleet database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bigevy.config import KnowledgeSpec, Settings
from bigevy.errors import ValidationFailed
from bigevy.fleet.models import Package
from bigevy.fleet.service import open_fleet
from bigevy.http.fleet.protocol import EnrollRequest
from bigevy.http.sync.protocol import SubscriptionIn
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.records import DocumentIn
from bigevy.knowledge.service import KnowledgeService
from bigevy.knowledge.store import KnowledgeStore
from bigevy.sync.catalogue import CatalogueReader
from bigevy.sync.service import SyncService

DOCS = [
    DocumentIn(f"doc-{i}", f"Note {i}", f"Market day {i} is on Monday.", category, "local")
    for i, category in enumerate(["community", "healthcare", "community", "emergency"])
]


def test_switching_subscriptions_stores_each_build_once_and_few(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    embedder = Embedder(settings.embedder)
    spec = KnowledgeSpec()
    store = KnowledgeStore(
        settings.lancedb_uri,
        embedding_model=embedder.model_id,
        dimensions=embedder.dimensions,
        chunk_layout=layout(spec.chunk_size, spec.chunk_overlap),
    )

    async def embed(texts: list[str]) -> list[list[float]]:
        return embedder.encode(texts)

    asyncio.run(KnowledgeService(store, embed, spec).put_many(DOCS))
    fleet = open_fleet(settings)
    sync = SyncService(settings, fleet, CatalogueReader(settings.lancedb_uri))
    token = fleet.create_token(None, None, "", None).token
    node_id = fleet.enroll(EnrollRequest(token=token, name="switcher")).node_id

    with pytest.raises(ValidationFailed, match="budget_mb"):
        sync.set_subscription(node_id, SubscriptionIn(budget_mb=1_000_000))
    seen = []
    for round_ in range(10):
        categories = ["community"] if round_ % 2 else ["healthcare", "emergency"]
        sync.set_subscription(node_id, SubscriptionIn(categories=categories))
        built = sync.manifest(node_id, full=True)
        assert built is not None
        seen.append(built.package_id)
    assert len(set(seen)) == 2  # two distinct builds, each stored once and handed out again
    more = [["emergency"], ["community", "emergency"], ["healthcare"], ["community", "healthcare"]]
    for categories in more:  # more distinct builds than are kept: the oldest go
        sync.set_subscription(node_id, SubscriptionIn(categories=categories))
        built = sync.manifest(node_id, full=True)
        assert built is not None
        seen.append(built.package_id)
    assert len(set(seen)) == 6
    with fleet.sessions() as session:
        kept = session.query(Package).filter(Package.node_id == node_id).count()
    assert kept <= settings.sync.max_packages_per_node
    fleet.engine.dispose()
