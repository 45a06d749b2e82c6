"""Backup and restore of a data dir holding N documents: time, size and documents per second,
against copying the same data dir as plain files (the honest floor: every byte read and
written once, no consistency, no checksums, no sealing).

    .venv/bin/python benchmarks/backup_restore.py [--documents 100000] [--batch 2000]

The knowledge base is the real LanceDB store (documents, 384-d chunks, the FTS index) with
vectors drawn at random (embedding is not what is measured), and the metadata database has
200 enrolled nodes. Each document is one chunk of ~500 characters. The same data dir is
copied with `shutil.copytree`, backed up with `Backups.create`, and restored with
`Backups.restore` onto an empty data dir; the restore is checked (count and revision).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.progress import Progress

from bigevy.backups.sealing import PASSPHRASE_ENV
from bigevy.backups.service import Backups
from bigevy.config import Settings
from bigevy.fleet.service import open_fleet
from bigevy.http.fleet.protocol import EnrollRequest
from bigevy.knowledge.records import DocumentIn
from bigevy.knowledge.store import KnowledgeStore
from bigevy.knowledge.taxonomy import Category, Source

DIMENSIONS = 384
WORDS = ["water", "boil", "minute", "safe", "drink", "child", "fever", "clinic", "flood"]


def fill(settings: Settings, documents: int, batch: int) -> int:
    """`documents` documents in the store; its revision."""
    store = KnowledgeStore(settings.lancedb_uri, embedding_model="bench", dimensions=DIMENSIONS)
    rng = np.random.default_rng(7)
    with Progress() as bar:
        task = bar.add_task("writing documents", total=documents)
        for start in range(0, documents, batch):
            items = []
            for i in range(start, min(documents, start + batch)):
                text = " ".join(rng.choice(WORDS, 80)) + f" ({i})."
                doc = DocumentIn(f"doc-{i}", f"Note {i}", text, Category.healthcare, Source.medical)
                vector = rng.standard_normal(DIMENSIONS).astype(np.float32).tolist()
                items.append((doc, [text], [vector]))
            store.upsert_many(items)
            bar.advance(task, len(items))
    store.maintain()  # as the knowledge deployment does: indexes, compaction
    fleet = open_fleet(settings)
    for n in range(200):
        token = fleet.create_token(None, None, "", None).token
        fleet.enroll(EnrollRequest(token=token, name=f"lil-{n}"))
    fleet.engine.dispose()
    return store.revision()


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault(PASSPHRASE_ENV, "a benchmark passphrase, not a secret")
    with tempfile.TemporaryDirectory(prefix="bigevy-backup-bench-") as tmp:
        root = Path(tmp)
        settings = Settings(data_dir=root / "data", backups={"location": str(root / "backups")})
        revision = fill(settings, args.documents, args.batch)
        data_bytes = size_of(settings.data_dir)

        started = time.perf_counter()
        shutil.copytree(settings.data_dir, root / "copy")
        copy_s = time.perf_counter() - started

        backups = Backups(settings)
        started = time.perf_counter()
        backup = backups.create()
        backup_s = time.perf_counter() - started

        target = settings.model_copy(update={"data_dir": root / "restored"})
        started = time.perf_counter()
        Backups(target).restore(backup.id, settings.backup_location)
        restore_s = time.perf_counter() - started
        restored = KnowledgeStore(
            target.lancedb_uri, embedding_model="bench", dimensions=DIMENSIONS
        )
        assert restored.revision() == revision == backup.knowledge_revision
        assert restored.documents.count_rows() == args.documents

    mb = 1024 * 1024
    print(f"\n{args.documents} documents, data dir {data_bytes / mb:.0f} MB")
    print(f"  plain copy   {copy_s:7.1f} s   {args.documents / copy_s:9.0f} documents/s")
    print(
        f"  backup       {backup_s:7.1f} s   {args.documents / backup_s:9.0f} documents/s   "
        f"{backup.bytes / mb:.0f} MB in {backup.files} files"
    )
    print(f"  restore      {restore_s:7.1f} s   {args.documents / restore_s:9.0f} documents/s")
    print(f"backup / plain copy time: {backup_s / copy_s:.2f}")
    print(f"restore / plain copy time: {restore_s / copy_s:.2f}")


if __name__ == "__main__":
    main()
