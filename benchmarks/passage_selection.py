"""Which retrieved passages an escalation's answer gets, against labels of what is relevant.

    .venv/bin/python benchmarks/passage_selection.py [--sweep]

`benchmarks/data/starter_relevance.jsonl`: the 90 English and French non-emergency SMS of the
triage set (most are about something the starter pack does not cover: homework, maize prices)
and 18 questions written for this set about what it does cover, each labelled with the starter
documents that bear on it (none for most). Each message is searched as `POST /v1/evy/query`
searches (hybrid, top 3, the starter pack in LanceDB, the packaged embedder; in process), then
`bigevy.answers.passages.on_topic` picks what the model may use. Per split:

- *recall*: questions with a relevant document that still get one;
- *precision*: passages given that are relevant;
- *off-topic clean*: questions with no relevant document that get no passage (and no citation).

"everything" is the top 3 as given before `on_topic` existed. `--sweep` lists the dev split
under a grid of settings: choose on dev (keep recall, then the most precision), report test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bigevy.answers.passages import RELATIVE_SCORE, on_topic
from bigevy.config import EmbedderSpec, KnowledgeSpec
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read
from bigevy.knowledge.records import DocumentIn, Hit
from bigevy.knowledge.service import KnowledgeService
from bigevy.knowledge.store import KnowledgeStore

DATA = Path(__file__).resolve().parent / "data" / "starter_relevance.jsonl"
TOP_K = 3  # EvyQuery.top_k's default


@dataclass(frozen=True)
class Scores:
    recall: float
    precision: float
    clean: float
    passages: int


def starter_store(embedder: Embedder, where: Path) -> KnowledgeStore:
    spec = KnowledgeSpec()
    store = KnowledgeStore(
        str(where),
        embedding_model=embedder.model_id,
        dimensions=embedder.dimensions,
        chunk_layout=layout(spec.chunk_size, spec.chunk_overlap),
    )

    async def embed(texts: list[str]) -> list[list[float]]:
        return embedder.encode(texts)

    docs = [DocumentIn(**r.document) for r in read(STARTER_KNOWLEDGE, {}) if r.document]
    for outcome in asyncio.run(KnowledgeService(store, embed, spec).put_many(docs)):
        if isinstance(outcome, Exception):
            raise outcome
    store.maintain()
    return store


def score(rows: list[dict], found: list[list[Hit]]) -> Scores:
    on, hit, off, clean, given, relevant = 0, 0, 0, 0, 0, 0
    for row, hits in zip(rows, found, strict=True):
        ids = {h.document_id for h in hits}
        given += len(ids)
        relevant += len(ids & set(row["relevant"]))
        if row["relevant"]:
            on += 1
            hit += bool(ids & set(row["relevant"]))
        else:
            off += 1
            clean += not ids
    return Scores(hit / on, relevant / given if given else 1.0, clean / off, given)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="dev split under a grid of settings")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    spec = EmbedderSpec()
    embedder = Embedder(spec)
    store = starter_store(embedder, Path(tempfile.mkdtemp(prefix="bigevy-passages-")))
    vectors = embedder.encode([r["text"] for r in rows])
    searched = [
        store.search(vector=v, text=r["text"], mode="hybrid", k=TOP_K)
        for r, v in zip(rows, vectors, strict=True)
    ]
    print(f"{len(rows)} messages; embedder {embedder.model_id} ({embedder.dtype})")
    settings = {
        "everything (before)": lambda hits: hits,
        f"on_topic (floor {spec.relevance_floor}, relative {RELATIVE_SCORE})": lambda hits: (
            on_topic(hits, spec.relevance_floor)
        ),
    }
    print("\n| passages | split | recall | precision | off-topic clean | passages given |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, pick in settings.items():
        for split in ("dev", "test"):
            chosen = [i for i, r in enumerate(rows) if r["split"] == split]
            s = score([rows[i] for i in chosen], [pick(searched[i]) for i in chosen])
            print(
                f"| {name} | {split} | {s.recall:.2f} | {s.precision:.2f} | {s.clean:.2f} | "
                f"{s.passages} |"
            )
    if args.sweep:
        dev = [i for i, r in enumerate(rows) if r["split"] == "dev"]
        print("\ndev: floor relative -> recall precision clean passages")
        for floor in (-1.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4):
            for relative in (0.0, 0.25, 0.4, 0.5, 0.6, 0.75):
                s = score(
                    [rows[i] for i in dev], [on_topic(searched[i], floor, relative) for i in dev]
                )
                print(
                    f"  {floor:5.2f} {relative:4.2f} -> {s.recall:.2f} {s.precision:.2f} "
                    f"{s.clean:.2f} {s.passages}"
                )


if __name__ == "__main__":
    main()
