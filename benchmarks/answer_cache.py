"""The answer cache: its threshold, set on labelled paraphrases, and what it saves under a
Zipf workload of reworded questions sent through `POST /v1/evy/query`.

    .venv/bin/python benchmarks/answer_cache.py [--requests 400] [--zipf 1.1]

1. Threshold. `benchmarks/data/paraphrases.jsonl` holds groups of questions that each ask one
   thing (rewordings), beside sibling groups that share most words but ask another thing. Every
   pair of questions of one language is a positive (same group) or a negative. The even-numbered
   groups (dev) choose the lowest cosine at which no negative pair is taken for a positive; the
   odd-numbered (test) report its precision and recall there.
2. Workload. Groups are drawn with Zipf probabilities (a few asked often), a question of the
   group at random, sent once each to bigEVY on the embedded defaults with the starter pack.
   Reported: the hit rate; cached answers first made for a question of another group (an upper
   bound on wrong reuse: two groups answered from one document may rightly share an SMS); and
   p50/p95 of cached and of uncached answers, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from local_serve import HEADERS, start_serve

from bigevy.config import EmbedderSpec, Settings
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read

DATA = Path(__file__).resolve().parent / "data" / "paraphrases.jsonl"


def pairs(rows: list[dict], vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosines of every same-language pair, and whether it is a positive."""
    cosines, positive = [], []
    for i, a in enumerate(rows):
        for j in range(i + 1, len(rows)):
            if rows[j]["language"] == a["language"]:
                cosines.append(float(vectors[i] @ vectors[j]))
                positive.append(rows[j]["group"] == a["group"])
    return np.array(cosines), np.array(positive)


def threshold(rows: list[dict], vectors: np.ndarray) -> dict[str, float]:
    groups = sorted({r["group"] for r in rows})
    dev_groups = set(groups[::2])
    halves = {}
    for name, keep in (("dev", True), ("test", False)):
        index = [i for i, r in enumerate(rows) if (r["group"] in dev_groups) == keep]
        halves[name] = pairs([rows[i] for i in index], vectors[index])
    cos, pos = halves["dev"]
    chosen = float(np.max(cos[~pos])) + 1e-4  # the lowest with no negative above it
    cos_t, pos_t = halves["test"]
    taken = cos_t >= chosen
    return {
        "threshold": round(chosen, 4),
        "dev recall": float(np.mean(cos[pos] >= chosen)),
        "test precision": float(np.mean(pos_t[taken])) if taken.any() else 1.0,
        "test recall": float(np.mean(cos_t[pos_t] >= chosen)),
        "test negatives taken": int(np.sum(taken & ~pos_t)),
    }


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def workload(rows: list[dict], similarity: float, requests: int, s: float) -> None:
    by_group: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_group[row["group"]].append(row)
    groups = sorted(by_group)
    rng = random.Random(7)
    rng.shuffle(groups)
    weights = [1 / (rank + 1) ** s for rank in range(len(groups))]
    workdir = Path(tempfile.mkdtemp(prefix="bigevy-cache-"))
    settings = Settings(data_dir=workdir)
    settings.knowledge.answer_cache.similarity = similarity
    base_url = start_serve(settings)
    http = httpx.Client(base_url=base_url, headers=HEADERS, timeout=300)
    docs = [r.document for r in read(STARTER_KNOWLEDGE, {}) if r.document]
    http.post("/v1/knowledge/documents/batch", json={"documents": docs}).raise_for_status()
    latency: dict[bool, list[float]] = {True: [], False: []}
    answered_for: dict[str, str] = {}  # an SMS -> the group it was first made for
    wrong = 0
    for i in range(requests):
        group = rng.choices(groups, weights)[0]
        row = rng.choice(by_group[group])
        body = {"node_id": "bench", "message": row["question"], "language": row["language"]}
        started = time.perf_counter()
        reply = http.post("/v1/evy/query", json=body)
        elapsed = (time.perf_counter() - started) * 1000
        reply.raise_for_status()
        answer = reply.json()
        hit = answer["timings"].get("cache_hit") == 1.0
        latency[hit].append(elapsed)
        made_for = answered_for.setdefault(answer["sms"], group)
        wrong += hit and made_for != group
        if (i + 1) % 100 == 0:
            print(f"  {i + 1}/{requests}", flush=True)
    hits, misses = latency[True], latency[False]
    print(
        f"\n| requests | groups | hit rate | hits made for another group | cached p50 / p95 ms | "
        f"uncached p50 / p95 ms |\n| --- | --- | --- | --- | --- | --- |\n"
        f"| {requests} | {len(groups)} | {len(hits) / requests:.0%} | {wrong} | "
        f"{percentile(hits, 50):.0f} / {percentile(hits, 95):.0f} | "
        f"{percentile(misses, 50):.0f} / {percentile(misses, 95):.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--similarity", type=float, default=None, help="default: the chosen")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    embedder = Embedder(EmbedderSpec())
    vectors = embedder.encode_array([r["question"] for r in rows])
    chosen = threshold(rows, vectors)
    print("| " + " | ".join(chosen) + " |\n|" + " --- |" * len(chosen))
    print(
        "| "
        + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in chosen.values())
        + " |"
    )
    workload(rows, args.similarity or chosen["threshold"], args.requests, args.zipf)


if __name__ == "__main__":
    main()
