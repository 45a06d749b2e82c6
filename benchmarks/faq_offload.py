"""How much escalation traffic FAQ packs take off bigEVY: a simulated fleet asks questions,
bigEVY answers and counts them, the most asked ones ship back to the nodes in their knowledge
packages, and the nodes answer those themselves from then on.

    .venv/bin/python benchmarks/faq_offload.py [--nodes 20] [--duration 900]
        [--question-every 40] [--sync-every 60] [--zipf 1.0]

bigEVY on a fresh local Ray with the default config (SmolLM2 on llama.cpp answers what is
escalated); the fleet is `lilevy.simulator` with `sync_every_s` (each node syncs its
SQLite + FTS5 knowledge store with verified packages, and answers a question itself when it
holds an FAQ entry sharing >= 60 % of its words) and questions drawn from
`clients/lilevy/lilevy/questions.txt` with weight 1/rank**zipf, lightly reworded each time;
`--cut` of the syncs are cut short mid-download (resumed by the next). At the end every node's
store is compared with a full snapshot built for it. The zipf
weighting is a modelling assumption (a few questions dominate real SMS traffic); `--zipf 0`
asks uniformly. Baseline: the same fleet before any FAQ exists, i.e. the first minutes of the
run, where every question is escalated.

The starter knowledge pack is loaded; only answers made of its sentences are published as FAQ
entries (issue 22). `--questions covered` asks the English questions of
`benchmarks/data/answer_quality.jsonl` the pack covers instead of `questions.txt` (mostly
farming and markets, which it does not). With `--edit-every S`, every S seconds one document
an FAQ entry was built from is rewritten or deleted (and put back at the next turn), as
operators do; at the end every published FAQ entry is checked against its sources as they
are then: one whose source is gone, or whose sentences its sources no longer say, outlived
them.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
from pathlib import Path

import httpx
from lilevy.simulator import simulate
from local_serve import HEADERS, start_serve

from bigevy.answers.sentences import comparable, prose_sentences
from bigevy.config import Settings
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read

DATA = Path(__file__).resolve().parent / "data" / "answer_quality.jsonl"


def covered_questions() -> list[str]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    return [r["question"] for r in rows if r["covered"] and r["language"] == "en"]


class Editor(threading.Thread):
    """Rewrites or deletes, every `every` s, a document an FAQ entry of `region` came from."""

    def __init__(self, http: httpx.Client, region: str, every: float, seed: int) -> None:
        super().__init__(daemon=True)
        self.http, self.region, self.every = http, region, every
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.edits = self.deletes = 0

    def run(self) -> None:
        removed: dict | None = None
        while not self.stop.wait(self.every):
            if removed is not None:  # what was deleted comes back, as it was
                self.http.put(f"/v1/knowledge/documents/{removed['id']}", json=removed)
                removed = None
            entries = self.http.get("/v1/faq", params={"region": self.region}).json()["data"]
            sources = sorted({s for e in entries if e["published"] for s in e["sources"]})
            if not sources:
                continue
            doc = self.http.get(f"/v1/knowledge/documents/{self.rng.choice(sources)}").json()
            body = {k: doc[k] for k in ("id", "title", "text", "category", "source", "region")}
            if self.rng.random() < 0.5:
                sentences = body["text"].split(". ")
                self.rng.shuffle(sentences)  # the same advice, other sentences first
                body["text"] = ". ".join(sentences).rstrip(".") + "."
                self.http.put(f"/v1/knowledge/documents/{body['id']}", json=body)
                self.edits += 1
            else:
                self.http.delete(f"/v1/knowledge/documents/{body['id']}")
                removed, self.deletes = body, self.deletes + 1


def outlived(http: httpx.Client, region: str) -> tuple[int, int]:
    """(published FAQ entries, those whose sources are gone or no longer say their SMS)."""
    entries = http.get("/v1/faq", params={"region": region}).json()["data"]
    published = [e for e in entries if e["published"]]
    stale = 0
    for entry in published:
        texts = []
        for source in entry["sources"]:
            found = http.get(f"/v1/knowledge/documents/{source}")
            texts.append(comparable(found.json()["text"]) if found.status_code == 200 else None)
        said = [comparable(s.removesuffix("...")) for s in prose_sentences(entry["answer"])]
        backed = all(t is not None for t in texts) and all(
            any(s in t for t in texts if t) for s in said
        )
        stale += not (entry["sources"] and said and backed)
    return len(published), stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--duration", type=float, default=900.0)
    parser.add_argument("--question-every", type=float, default=40.0)
    parser.add_argument("--sync-every", type=float, default=60.0)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--cut", type=float, default=0.2, help="share of syncs cut short")
    parser.add_argument("--restart", type=float, default=0.0, help="share of syncs after a restart")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--questions", choices=["default", "covered"], default="default")
    parser.add_argument("--edit-every", type=float, default=0.0, help="0: no edits")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bigevy-faq-") as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        base_url = start_serve(settings)
        admin_key = HEADERS["Authorization"].removeprefix("Bearer ")
        http = httpx.Client(base_url=base_url, headers=HEADERS, timeout=120)
        docs = [r.document for r in read(STARTER_KNOWLEDGE, {}) if r.document]
        http.post("/v1/knowledge/documents/batch", json={"documents": docs}).raise_for_status()
        editor = Editor(http, "KE", args.edit_every, args.seed)
        if args.edit_every:
            editor.start()
        report = simulate(
            base_url,
            admin_key,
            args.nodes,
            args.duration,
            heartbeat_interval_s=30.0,
            question_every_s=args.question_every,
            region="KE",
            sync_every_s=args.sync_every,
            cut_probability=args.cut,
            restart_probability=args.restart,
            questions=covered_questions() if args.questions == "covered" else None,
            zipf=args.zipf,
            seed=args.seed,
        )
        editor.stop.set()
        if args.edit_every:
            editor.join()
        published, stale = outlived(http, "KE")
    asked = sum(a for a, _ in report.timeline)
    print(
        f"\n{report.nodes} nodes, {report.duration_s:.0f} s, {asked} questions "
        f"(zipf {args.zipf}), {report.packages_applied} packages applied"
    )
    print("minute  asked  answered on the node")
    for minute, (n, local) in enumerate(report.timeline):
        share = local / n if n else 0.0
        print(f"{minute:6d}  {n:5d}  {local:5d}  {share:6.1%}")
    third = max(1, len(report.timeline) // 3)
    last = report.timeline[-third:]
    last_asked = sum(a for a, _ in last)
    last_local = sum(local for _, local in last)
    escalations = report.kinds["escalation"]
    print(
        f"\nanswered on the node: {report.answered_locally}/{asked} overall; last third of the "
        f"run {last_local}/{last_asked} = {last_local / max(last_asked, 1):.1%} of escalations "
        f"removed (first minute: {report.timeline[0][1]}/{report.timeline[0][0]})"
    )
    print(
        f"escalations: {escalations.ok} answered by bigEVY, {escalations.failed} failed, "
        f"{escalations.queued} queued; 5xx seen {report.server_errors}"
    )
    print(
        f"sync: {report.packages_applied} packages applied, {report.kinds['sync'].failed} "
        f"downloads cut (resumed later), {report.restarts} node restarts; nodes out of sync "
        f"at the end: "
        f"{len(report.out_of_sync)} of {report.nodes}"
    )
    print(
        f"documents rewritten {editor.edits}, deleted {editor.deletes}; FAQ entries published "
        f"at the end {published}, outliving or contradicting their sources {stale}"
    )


if __name__ == "__main__":
    main()
