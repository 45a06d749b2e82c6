"""SciFact retrieval quality (BEIR protocol) of bigEVY's knowledge base, per search mode, next to
LanceDB's out-of-the-box hybrid search over the same corpus.

    .venv/bin/python benchmarks/scifact_retrieval.py [--split test|train] [--rebuild] [--dtype auto]

Why: `KnowledgeStore.search` is what the server answers with, so the corpus goes in through our
own path (ingest.read -> KnowledgeService.put_many -> chunking, packaged embedder,
KnowledgeStore.upsert_many) and the queries go through `KnowledgeStore.search`, in process, no
Ray.
The baseline is what a LanceDB user gets without any of our choices: one row per document
(title + text), an FTS index on it, and `hybrid` search fused with the default `RRFReranker()`.

Metrics are document-level (a document ranks by its best chunk) and computed here with the
standard BEIR formulas: nDCG@10 with graded gains from the qrels, Recall@100. Tune on `train`,
report `test`. Embeddings are cached under /tmp/scifact-bench (keyed by model and text), and so
is the ingested store (per chunking; `--rebuild` after changing write code), so a second run
neither embeds nor ingests again.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import shutil
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bigevy.config import EmbedderSpec, KnowledgeSpec
from bigevy.knowledge import ingest
from bigevy.knowledge.chunking import layout
from bigevy.knowledge.records import DocumentIn, SearchMode
from bigevy.knowledge.service import KnowledgeService
from bigevy.knowledge.store import KnowledgeStore

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"
CACHE = Path("/tmp/scifact-bench")
MODES: tuple[SearchMode, ...] = ("vector", "keyword", "hybrid")
NDCG_AT = 10
RECALL_AT = 100
BASELINE = "LanceDB default hybrid (RRF)"


# -- data ----------------------------------------------------------------------------------------


def load_queries(data: Path) -> dict[str, str]:
    with (data / "queries.jsonl").open() as lines:
        return {str(q["_id"]): q["text"] for q in map(json.loads, lines) if q.get("text")}


def load_qrels(data: Path, split: str) -> dict[str, dict[str, int]]:
    """query id -> {document id: graded relevance}, positive judgements only (as BEIR)."""
    qrels: dict[str, dict[str, int]] = {}
    with (data / "qrels" / f"{split}.tsv").open() as lines:
        next(lines)  # header
        for line in lines:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(score)
    return qrels


def load_documents(data: Path) -> list[DocumentIn]:
    """The corpus as bigEVY's own JSONL reader sees it (`_id`, title, text)."""
    defaults = {"category": "research", "source": "academic"}
    docs = []
    for record in ingest.read(data / "corpus.jsonl", defaults):
        if record.document is None:
            print(f"skipped {record.origin}: {record.error}")
            continue
        docs.append(DocumentIn(**record.document))
    return docs


# -- metrics (BEIR / trec_eval definitions) ------------------------------------------------------


def ndcg(ranked: list[str], relevant: dict[str, int], k: int = NDCG_AT) -> float:
    """nDCG@k with linear gains (trec_eval's ndcg_cut, which BEIR reports)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall(ranked: list[str], relevant: dict[str, int], k: int = RECALL_AT) -> float:
    return len(set(ranked[:k]) & relevant.keys()) / len(relevant) if relevant else 0.0


def unique_documents(document_ids: Iterable[str]) -> list[str]:
    """A chunk ranking as a document ranking: each document at the rank of its best chunk."""
    return list(dict.fromkeys(document_ids))


def evaluate(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Means over every judged query (a query with no ranking scores 0)."""
    n = len(qrels)
    return {
        f"nDCG@{NDCG_AT}": sum(ndcg(rankings.get(q, []), rel) for q, rel in qrels.items()) / n,
        f"Recall@{RECALL_AT}": sum(recall(rankings.get(q, []), rel) for q, rel in qrels.items())
        / n,
    }


# -- embeddings, cached on disk ------------------------------------------------------------------


class CachedEmbedder:
    """The packaged embedder behind an on-disk cache: tuning runs never embed a text twice."""

    def __init__(self, spec: EmbedderSpec, cache_dir: Path) -> None:
        from bigevy.knowledge.embedder import Embedder

        self.embedder = Embedder(spec)
        self.model_id = self.embedder.model_id
        self.dimensions = self.embedder.dimensions
        #: What the cached vectors depend on: the model, and the precision it ran in.
        self.variant = f"{self.model_id}-{self.embedder.dtype}"
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(cache_dir / f"embeddings-{self.variant}.sqlite")
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB)")

    def _key(self, text: str) -> str:
        return hashlib.sha1(f"{self.variant}\0{text}".encode()).hexdigest()

    def encode(self, texts: list[str]) -> list[list[float]]:
        keys = [self._key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            batch = keys[start : start + 500]
            rows = self.db.execute(
                f"SELECT key, vec FROM emb WHERE key IN ({','.join('?' * len(batch))})", batch
            )
            found.update((k, np.frombuffer(v, dtype=np.float32)) for k, v in rows)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            vectors = self.embedder.encode([by_key[k] for k in missing])
            for k, v in zip(missing, vectors, strict=True):
                found[k] = np.asarray(v, dtype=np.float32)
            self.db.executemany(
                "INSERT OR REPLACE INTO emb VALUES (?, ?)",
                [(k, found[k].tobytes()) for k in missing],
            )
            self.db.commit()
        return [found[k].tolist() for k in keys]

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """The `Embed` coroutine KnowledgeService takes (a Serve handle in production)."""
        return self.encode(texts)


# -- our store -----------------------------------------------------------------------------------


def build_store(
    docs: list[DocumentIn],
    embedder: CachedEmbedder,
    spec: KnowledgeSpec,
    cache: Path,
    *,
    rebuild: bool = False,
    batch: int = 64,
) -> KnowledgeStore:
    """The corpus in a KnowledgeStore through KnowledgeService; reused when already complete."""
    chunk_layout = layout(spec.chunk_size, spec.chunk_overlap)
    uri = cache / f"store-{embedder.variant}-{chunk_layout}"
    done = uri / "COMPLETE"
    if rebuild and uri.exists():
        shutil.rmtree(uri)
    store = KnowledgeStore(
        str(uri),
        embedding_model=embedder.model_id,
        dimensions=embedder.dimensions,
        chunk_layout=chunk_layout,
    )
    if done.exists() and done.read_text().strip() == str(len(docs)) and not rebuild:
        return store
    service = KnowledgeService(store, embedder.embed, spec)

    async def put_all() -> None:
        with tqdm(total=len(docs), desc="ingest (chunk, embed, store)", unit="doc") as bar:
            for start in range(0, len(docs), batch):
                part = docs[start : start + batch]
                for outcome in await service.put_many(part):
                    if isinstance(outcome, Exception):
                        raise outcome
                bar.update(len(part))
                if (start // batch) % 4 == 3:
                    store.maintain()  # the deployment's upkeep: compaction, index update

    asyncio.run(put_all())
    store.maintain()  # every row in the FTS index, as a served store is after its upkeep
    done.write_text(str(len(docs)))
    return store


def search_rankings(
    store: KnowledgeStore,
    queries: dict[str, str],
    vectors: dict[str, list[float]],
    mode: SearchMode,
    depth: int,
) -> dict[str, list[str]]:
    """Document rankings from `KnowledgeStore.search` (chunk hits -> best chunk per doc).

    vector and keyword return chunks, so they are asked for `depth` chunks to cover 100
    documents; hybrid returns one hit per document, so it is asked for 100 like a caller would.
    """
    k = RECALL_AT if mode == "hybrid" else depth
    rankings = {}
    for query_id, text in queries.items():
        hits = store.search(vector=vectors[query_id], text=text, mode=mode, k=k)
        rankings[query_id] = unique_documents(h.document_id for h in hits)[:RECALL_AT]
    return rankings


# -- LanceDB out of the box ----------------------------------------------------------------------


def baseline_table(docs: list[DocumentIn], embedder: CachedEmbedder, cache: Path) -> Any:
    """LanceDB defaults: a row per document (title + text, embedded whole), FTS on `text`."""
    import lancedb
    from lancedb.index import FTS

    db = lancedb.connect(str(cache / f"baseline-{embedder.variant}"))
    try:
        table = db.open_table("docs")
        if table.count_rows() == len(docs):
            return table
    except ValueError:  # no such table yet
        pass
    texts = [f"{d.title} {d.text}" for d in docs]
    rows = []
    for start in tqdm(range(0, len(texts), 256), desc="baseline (embed documents)"):
        part = texts[start : start + 256]
        rows += [
            {"id": d.id, "text": t, "vector": v}
            for d, t, v in zip(docs[start : start + 256], part, embedder.encode(part), strict=True)
        ]
    table = db.create_table("docs", data=rows, mode="overwrite")
    table.create_index("text", config=FTS())
    return table


def baseline_rankings(
    table: Any, queries: dict[str, str], vectors: dict[str, list[float]]
) -> dict[str, list[str]]:
    """LanceDB's hybrid query fused with its default `RRFReranker()`."""
    from lancedb.rerankers import RRFReranker

    rankings = {}
    for query_id, text in queries.items():
        rows = (
            table.search(query_type="hybrid")
            .vector(vectors[query_id])
            .text(text)
            .rerank(RRFReranker())
            .limit(RECALL_AT)
            .to_list()
        )
        rankings[query_id] = [r["id"] for r in rows]
    return rankings


# -- run -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=["test", "train"], default="test")
    parser.add_argument("--data", type=Path, default=DATA, help="SciFact in BEIR form")
    parser.add_argument("--cache", type=Path, default=CACHE, help="embeddings and stores")
    parser.add_argument("--chunk-size", type=int, default=KnowledgeSpec().chunk_size)
    parser.add_argument("--chunk-overlap", type=int, default=KnowledgeSpec().chunk_overlap)
    parser.add_argument(
        "--depth", type=int, default=300, help="chunk hits asked of vector and keyword search"
    )
    parser.add_argument("--rebuild", action="store_true", help="ingest again (embeddings cached)")
    parser.add_argument(
        "--dtype", choices=["auto", "float32", "bfloat16"], default="auto", help="embedder dtype"
    )
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()

    qrels = load_qrels(args.data, args.split)
    queries = {q: t for q, t in load_queries(args.data).items() if q in qrels}
    docs = load_documents(args.data)
    spec = KnowledgeSpec(chunk_size=args.chunk_size, chunk_overlap=args.chunk_overlap)
    embedder = CachedEmbedder(EmbedderSpec(dtype=args.dtype), args.cache)
    store = build_store(
        docs,
        embedder,
        spec,
        args.cache,
        rebuild=args.rebuild,
    )
    # One query vector per query, shared by every mode and the baseline.
    vectors = dict(zip(queries, embedder.encode(list(queries.values())), strict=True))
    baseline = None if args.no_baseline else baseline_table(docs, embedder, args.cache)

    print(
        f"\nSciFact {args.split}: {len(queries)} queries, {len(docs)} documents, "
        f"{store.chunks.count_rows()} chunks (size {spec.chunk_size}, overlap "
        f"{spec.chunk_overlap}, title line in each), "
        f"embedder {embedder.model_id} ({embedder.embedder.dtype})\n"
    )
    runs = {f"bigEVY {mode}": mode for mode in MODES}
    if baseline is not None:
        runs[BASELINE] = "baseline"
    results: dict[str, dict[str, float]] = {}
    for name, mode in runs.items():
        started = time.perf_counter()
        if mode == "baseline":
            rankings = baseline_rankings(baseline, queries, vectors)
        else:
            rankings = search_rankings(store, queries, vectors, mode, args.depth)
        elapsed = (time.perf_counter() - started) / len(queries) * 1000
        results[name] = {**evaluate(rankings, qrels), "ms/query": elapsed}

    ndcg_name, recall_name = f"nDCG@{NDCG_AT}", f"Recall@{RECALL_AT}"
    print(f"{'search':<30} {ndcg_name:>8} {recall_name:>11} {'ms/query':>9}")
    for name, r in results.items():
        print(f"{name:<30} {r[ndcg_name]:>8.4f} {r[recall_name]:>11.4f} {r['ms/query']:>9.1f}")
    if baseline is not None:
        ours, base = results["bigEVY hybrid"], results[BASELINE]
        for metric in (ndcg_name, recall_name):
            print(
                f"bigEVY hybrid vs {BASELINE}, {metric}: {ours[metric] / base[metric]:.3f}x "
                f"({ours[metric] - base[metric]:+.4f})"
            )


if __name__ == "__main__":
    main()
