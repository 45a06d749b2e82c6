"""What lilEVY users get back for ordinary (non-emergency) questions: the labelled SMS of
`benchmarks/data/triage_messages.jsonl` escalated through `POST /v1/evy/query` to bigEVY on its
embedded defaults (SmolLM2-135M, the starter knowledge pack).

    .venv/bin/python benchmarks/escalation_answers.py [--limit N] [--workdir DIR]

Reported, per language and overall: answers with no citation (nothing retrieved; since the
eleventh session also nothing about the question, `bigevy.answers.passages`), answers
taken from the knowledge base instead of the model, SMS under 20 characters (a "1."), SMS with
a list's marker left in ("1.", "- "), SMS with a "[n]" source mark, and answers or SMS with a
sentence giving a phone number that none of their cited documents gives (the test
`bigevy.answers.grounding` applies to every answer since the tenth session, here against the cited
documents' whole text), answers citing another region's document (its region neither
global nor the country of a place the message names: the benchmark sends no region, as a node
enrolled without one would), and answers with citations and a sentence naming a country that
neither the message nor the cited documents (nor their regions) name, and answers that are a
bare yes or no (`bigevy.answers.hollow.verdict_only`). Run it on two commits to
see what a change does; quality figures, not timings, so machine load does not matter.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import httpx

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from local_serve import HEADERS, start_serve

from bigevy.answers.grounding import drop_unsupported_countries, drop_unsupported_numbers
from bigevy.answers.hollow import verdict_only
from bigevy.answers.places import region_named
from bigevy.config import Settings
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read

DATA = Path(__file__).resolve().parent / "data" / "triage_messages.jsonl"
SOURCE_MARK = re.compile(r"\[\d{1,2}\]")
#: "1." to "9)" standing alone, or "-" / "*" opening it: a list's marker left in an SMS
#: ("age of 10." is not one).
LIST_MARKER = re.compile(r"(?:^|\s)[1-9][.)](?=\s|$)|^[-*•]\s")
SHORT_SMS = 20
#: The figures about the SMS; an example of any other shows the answer.
SMS_FIGURES = ("short SMS", "list marker")
FIGURES = (
    "no citation",
    "knowledge base",
    "short SMS",
    "list marker",
    "source mark",
    "unsourced number",
    "other region",
    "unsourced country",
    "yes/no only",
)


def load_starter(http: httpx.Client) -> int:
    docs = [r.document for r in read(STARTER_KNOWLEDGE, {}) if r.document]
    reply = http.post("/v1/knowledge/documents/batch", json={"documents": docs})
    reply.raise_for_status()
    return len(docs)


def faults(body: dict, cited: list[dict], asked: str) -> set[str]:
    """Which of FIGURES this answer shows; `cited`: its cited documents."""
    found = set()
    sources = [f"{doc['title']}\n{doc['text']}" for doc in cited]
    if not body["citations"]:
        found.add("no citation")
    if body["model"] == "knowledge-base":
        found.add("knowledge base")
    if len(body["sms"]) < SHORT_SMS:
        found.add("short SMS")
    if LIST_MARKER.search(body["sms"]):
        found.add("list marker")
    if SOURCE_MARK.search(body["answer"]) or SOURCE_MARK.search(body["sms"]):
        found.add("source mark")
    sent = (body["answer"], body["sms"])
    if any(drop_unsupported_numbers(text, sources, asked).dropped for text in sent):
        found.add("unsourced number")
    if any(doc["region"] not in ("global", region_named(asked)) for doc in cited):
        found.add("other region")
    regions = [doc["region"] for doc in cited]
    if cited and any(
        drop_unsupported_countries(text, sources, asked, regions).dropped for text in sent
    ):
        found.add("unsourced country")
    if verdict_only(asked, body["answer"]) or verdict_only(asked, body["sms"]):
        found.add("yes/no only")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="first N messages only (0: all)")
    parser.add_argument("--workdir", default=None, help="data dir (default: a fresh temp dir)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if not r["emergency"]][: args.limit or None]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bigevy-answers-"))
    base_url = start_serve(Settings(data_dir=workdir))
    http = httpx.Client(base_url=base_url, headers=HEADERS, timeout=300)
    print(f"starter knowledge: {load_starter(http)} documents; {len(rows)} messages", flush=True)
    documents: dict[str, dict] = {}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    for i, row in enumerate(rows, 1):
        reply = http.post(
            "/v1/evy/query",
            json={"node_id": "bench", "message": row["text"], "language": row["language"]},
        )
        reply.raise_for_status()
        body = reply.json()
        for c in body["citations"]:
            if c["document_id"] not in documents:
                got = http.get(f"/v1/knowledge/documents/{c['document_id']}")
                documents[c["document_id"]] = got.json()
        cited = [documents[c["document_id"]] for c in body["citations"]]
        found = faults(body, cited, row["text"])
        for language in (row["language"], "all"):
            counts[language]["messages"] += 1
            counts[language].update(found)
        for name in found:
            shown = body["sms"] if name in SMS_FIGURES else body["answer"][:300]
            examples[name].append(f"{row['text']!r} -> {shown!r}")
        if i % 20 == 0:
            print(f"  {i}/{len(rows)}", flush=True)
    print("\n| language | messages | " + " | ".join(FIGURES) + " |")
    print("| --- " * (len(FIGURES) + 2) + "|")
    for language in sorted(counts, key=lambda lang: (lang == "all", lang)):
        c = counts[language]
        cells = " | ".join(f"{c[name]} ({c[name] / c['messages']:.0%})" for name in FIGURES)
        print(f"| {language} | {c['messages']} | {cells} |")
    for name in FIGURES:
        for example in examples[name][:3]:
            print(f"  {name}: {example}")


if __name__ == "__main__":
    main()
