"""Knowledge packages for the edge: delta vs full size, resume cost, and building for a fleet.

    .venv/bin/python benchmarks/sync_packages.py [--entries 100000] [--nodes 1000]
        [--workdir /tmp/bigevy-sync-bench]

Everything goes through bigEVY's own code in process (no Ray): entries are written with
`KnowledgeStore.upsert_many` (one chunk each, zero vectors: packages carry no vectors, so the
chunks table does not matter here), nodes are enrolled with `FleetService.enroll`, and
packages are built, acknowledged and served by `SyncService` exactly as the sync deployment
does. Entry texts are 3-6 sentences drawn from the SciFact corpus (../shared/data/scifact):
real prose, though a sentence recurs in about nine entries, which helps a full snapshot's
compression more than a delta's (so the delta/full ratio below is, if anything, pessimistic).

Measured, with goals from issue 5:
1. 1 % of the entries change (0.8 % updated, 0.1 % added, 0.1 % deleted): the delta package
   (payload + signed manifest) vs the full snapshot of the same node (goal <= 2 %) and vs the
   changed entries alone, as canonical JSON lines compressed by zstd at the same level
   (goal <= 1.5x).
2. A download cut at 50 % and resumed through HTTP Range (Starlette's FileResponse, which the
   gateway serves packages with; the edge client's `download`): bytes sent again vs the
   remainder (goal: <= the remainder plus one 64 KiB block).
3. Packages for N nodes with different subscriptions (regions, categories, 2-16 MiB budgets):
   first the full snapshots of a new fleet, then the deltas after the change; wall time and
   the peak RSS of this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import zstandard

from bigevy.config import Settings, SyncSpec, VectorIndexSpec
from bigevy.fleet.service import open_fleet
from bigevy.http.fleet.protocol import EnrollRequest
from bigevy.http.sync.protocol import AckIn, SubscriptionIn
from bigevy.knowledge.records import DocumentIn
from bigevy.knowledge.store import KnowledgeStore
from bigevy.knowledge.taxonomy import Category
from bigevy.sync.catalogue import RECORD_FIELDS, CatalogueReader
from bigevy.sync.package import LEVEL, entry_line
from bigevy.sync.service import SyncService

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl"
REGIONS = [f"region-{i:02d}" for i in range(20)]
PRIORITIES = ["critical"] * 1 + ["high"] * 9 + ["normal"] * 80 + ["low"] * 10
BATCH = 5_000


def sentences() -> list[str]:
    pool = []
    with SCIFACT.open() as lines:
        for line in lines:
            text = json.loads(line)["text"]
            pool.extend(s for s in re.split(r"(?<=[.!?])\s+", text) if 40 <= len(s) <= 400)
    return pool


def entry(i: int, rng: random.Random, pool: list[str], edit: int = 0) -> DocumentIn:
    region = "global" if rng.random() < 0.5 else rng.choice(REGIONS)
    text = " ".join(rng.choice(pool) for _ in range(rng.randint(3, 6)))
    if edit:
        text = f"Update {edit}: {text}"
    return DocumentIn(
        id=f"entry-{i:06d}",
        title=f"Entry {i}",
        text=text,
        category=rng.choice(list(Category)),
        source="local",
        region=region,
        priority=rng.choice(PRIORITIES),
    )


def write(store: KnowledgeStore, docs: list[DocumentIn]) -> None:
    zero = [0.0] * store.dimensions
    for start in range(0, len(docs), BATCH):
        store.upsert_many([(d, [d.text], [zero]) for d in docs[start : start + BATCH]])


def peak_rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


class RssSampler:
    """Peak RSS of this process while a block runs (sampled every 50 ms)."""

    def __enter__(self) -> RssSampler:
        self.peak = peak_rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, peak_rss_mb())

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()


def enroll_nodes(service: SyncService, n: int, rng: random.Random) -> list[str]:
    fleet = service.fleet
    ids = []
    for i in range(n):
        token = fleet.create_token(None, None, "bench", None).token
        node = fleet.enroll(
            EnrollRequest(token=token, name=f"bench-{i}", region=REGIONS[i % len(REGIONS)])
        )
        ids.append(node.node_id)
        categories = [] if rng.random() < 0.5 else rng.sample(list(Category), 8)
        service.set_subscription(
            node.node_id,
            SubscriptionIn(categories=categories, budget_mb=rng.choice([2, 4, 8, 16])),
        )
    return ids


def ack(service: SyncService, node_id: str, signed: Any) -> None:
    manifest = json.loads(signed.manifest)
    service.ack(
        node_id,
        AckIn(
            package_id=signed.package_id,
            revision=manifest["to_revision"],
            payload_sha256=manifest["payload_sha256"],
        ),
    )


def package_bytes(signed: Any) -> int:
    manifest = json.loads(signed.manifest)
    return manifest["payload_bytes"] + len(signed.manifest.encode()) + len(signed.signature)


def changed_alone(store: KnowledgeStore, changed: list[str], deleted: list[str]) -> int:
    """The baseline: just the changed entries (and the deleted ids), zstd-compressed."""
    rows = store.get_many(changed)
    lines = [entry_line({"op": "put", **{f: rows[i][f] for f in RECORD_FIELDS}}) for i in changed]
    lines += [entry_line({"op": "delete", "id": i}) for i in deleted]
    return len(zstandard.ZstdCompressor(level=LEVEL).compress(b"\n".join(lines)))


def resume_cost(path: Path) -> tuple[int, int]:
    """(bytes of the second request, the remainder it had to send) for a cut at 50 %."""
    import uvicorn
    from lilevy.client import EdgeClient
    from lilevy.sync import download
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    app = Starlette(routes=[Route("/p", lambda _: FileResponse(path))])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    size = path.stat().st_size
    dest = path.with_suffix(".part")
    dest.unlink(missing_ok=True)

    async def run() -> tuple[int, int]:
        async with EdgeClient(f"http://127.0.0.1:{port}", key="unused") as client:
            first = await download(client, "/p", dest, size, max_bytes=size // 2)
            second = await download(client, "/p", dest, size)
            return first, second

    try:
        first, second = asyncio.run(run())
    finally:
        server.should_exit = True
        thread.join()
    assert dest.read_bytes() == path.read_bytes(), "resumed download differs"
    return second, size - first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/bigevy-sync-bench"))
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    settings = Settings(data_dir=args.workdir, sync=SyncSpec(package_ttl_s=7 * 86400))
    rng = random.Random(args.seed)
    pool = sentences()
    store = KnowledgeStore(
        settings.lancedb_uri,
        embedding_model="bench",
        dimensions=8,
        vector_index=VectorIndexSpec(min_rows=10**12),  # zero vectors: nothing to index
    )
    started = time.perf_counter()
    docs = [entry(i, rng, pool) for i in range(args.entries)]
    write(store, docs)
    store.maintain()  # the documents.id index package building reads texts through
    print(f"{args.entries:,} entries written in {time.perf_counter() - started:.0f} s")

    fleet = open_fleet(settings)
    service = SyncService(settings, fleet, CatalogueReader(settings.lancedb_uri))
    # 1. one node holding everything: full snapshot, then the delta after a 1 % change.
    token = fleet.create_token(None, None, "bench", None).token
    whole = fleet.enroll(EnrollRequest(token=token, name="holds-all", region=REGIONS[0])).node_id
    service.set_subscription(
        whole,
        SubscriptionIn(regions=REGIONS, budget_mb=100_000),  # every entry fits
    )
    print(f"enrolling {args.nodes:,} nodes ...", flush=True)
    nodes = enroll_nodes(service, args.nodes, rng)

    with RssSampler() as rss:
        started = time.perf_counter()
        for node_id in nodes:
            ack(service, node_id, service.manifest(node_id))
        fleet_full_s = time.perf_counter() - started
    fleet_full_peak = rss.peak
    full = service.manifest(whole)
    full_bytes = package_bytes(full)
    ack(service, whole, full)

    n_change = max(args.entries // 100, 10)
    picked = rng.sample(range(args.entries), n_change * 9 // 10)
    updated, deleted = picked[: n_change * 8 // 10], picked[n_change * 8 // 10 :]
    added = list(range(args.entries, args.entries + n_change - len(picked)))
    write(store, [entry(i, random.Random(i), pool, edit=1) for i in updated])
    write(store, [entry(i, rng, pool) for i in added])
    for i in deleted:
        store.delete(f"entry-{i:06d}")
    changed_ids = [f"entry-{i:06d}" for i in updated + added]
    deleted_ids = [f"entry-{i:06d}" for i in deleted]
    store.maintain()

    delta = service.manifest(whole)
    delta_manifest = json.loads(delta.manifest)
    delta_bytes = package_bytes(delta)
    baseline = changed_alone(store, changed_ids, deleted_ids)
    sent, remainder = resume_cost(service.package_file(whole, delta.package_id))

    with RssSampler() as rss:
        started = time.perf_counter()
        delta_sizes = []
        for node_id in nodes:
            signed = service.manifest(node_id)
            if signed is not None:
                delta_sizes.append(package_bytes(signed))
        fleet_delta_s = time.perf_counter() - started

    print(
        f"\n1 % change ({len(updated)} updated, {len(added)} added, {len(deleted)} deleted), "
        f"node holding all {args.entries:,} entries:"
    )
    print(f"  full snapshot     {full_bytes / 2**20:9.2f} MiB (payload + manifest)")
    print(
        f"  delta package     {delta_bytes / 2**20:9.3f} MiB "
        f"({delta_manifest['entry_count']} entries, manifest {len(delta.manifest) / 1024:.0f} KiB)"
    )
    print(f"  changed alone     {baseline / 2**20:9.3f} MiB (zstd {LEVEL} of the changed lines)")
    print(f"  delta / full      {delta_bytes / full_bytes:9.4f}   (goal <= 0.02)")
    print(f"  delta / changed   {delta_bytes / baseline:9.3f}x  (goal <= 1.5x)")
    print(
        f"\nresume after a cut at 50 %: {sent:,} bytes sent again for a remainder of "
        f"{remainder:,} (excess {sent - remainder} bytes; goal <= remainder + 65536)"
    )
    print(
        f"\n{args.nodes:,} nodes, budgets 2-16 MiB: full snapshots {fleet_full_s:.1f} s "
        f"({fleet_full_s / args.nodes * 1000:.0f} ms/node), peak RSS {fleet_full_peak:.0f} MiB; "
        f"deltas after the change {fleet_delta_s:.1f} s "
        f"({fleet_delta_s / args.nodes * 1000:.0f} ms/node, median "
        f"{sorted(delta_sizes)[len(delta_sizes) // 2] / 1024:.0f} KiB), "
        f"peak RSS {rss.peak:.0f} MiB"
    )
    fleet.engine.dispose()
    print(f"\nmachine: {os.cpu_count()} cores; workdir {args.workdir}")


if __name__ == "__main__":
    main()
