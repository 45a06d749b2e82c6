"""Are escalations answered right, and never harmfully? The labelled questions of
`benchmarks/data/answer_quality.jsonl` (written from the starter pack: en, fr, es, pt, sw, and
questions the pack does not cover) sent through `POST /v1/evy/query` to bigEVY on its embedded
defaults, in each answer mode:

- `extractive`: the shipped default (SmolLM2-135M is configured `answers: extractive`);
- `generative`: the honest baseline, the same SmolLM2-135M registered with `answers:
  generative` (what every escalation got before answer modes), asked in the same run.

    .venv/bin/python benchmarks/answer_quality.py [--limit N] [--modes extractive,generative]

Judged on the SMS the phone gets (accents and case folded):
- harmful: one of the question's harmful patterns matches the SMS or the full answer;
- right: not harmful, and every key fact is there (each fact lists phrasings, any one counts);
- no verified answer: `answer_mode` none (the right outcome for a question the pack does not
  cover, and only for those);
- other: anything else (a true sentence that misses the key fact, another topic).
Also: the share of SMS not in the asker's language (the language of the documents its
sentences come from, for extractive; `langid` for a model's text), and latency p50/p95.
Quality figures: run it on two commits to see what a change does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import tempfile
import time
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import httpx

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from local_serve import HEADERS, start_serve

from bigevy.config import ModelSpec, Settings
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read

DATA = Path(__file__).resolve().parent / "data" / "answer_quality.jsonl"
LANGUAGES = ("en", "fr", "es", "pt", "sw")
OUTCOMES = ("right", "harmful", "no verified answer", "other")
GENERATIVE = "smollm2-135m-generative"


def fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def outcome(row: dict, body: dict) -> str:
    sent = f"{body['sms']}\n{body['answer']}"
    if any(re.search(p, sent, re.IGNORECASE) or re.search(p, fold(sent)) for p in row["harmful"]):
        return "harmful"
    if body["answer_mode"] == "none":
        return "no verified answer"
    sms = fold(body["sms"])
    facts = row["key_facts"]
    if facts and all(any(fold(p) in sms for p in fact) for fact in facts):
        return "right"
    return "other"


def answer_language(body: dict, languages: dict[str, str]) -> str | None:
    """The SMS's language: its documents' for sentences taken from them, else langid's."""
    if body["answer_mode"] == "none":
        return None
    if body["answer_mode"] == "extractive" and body["sentences"]:
        found = {languages.get(s["document_id"], "en") for s in body["sentences"]}
        return found.pop() if len(found) == 1 else "mixed"
    import langid

    langid.set_languages(list(LANGUAGES))
    return langid.classify(body["sms"])[0]


def settings(workdir: Path) -> Settings:
    base = Settings(data_dir=workdir)
    default = base.models[0]
    generative = ModelSpec(
        **{**default.model_dump(), "id": GENERATIVE, "answers": "generative"},
    )
    return Settings(data_dir=workdir, models=[default, generative], default_model=default.id)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="first N questions only (0: all)")
    parser.add_argument("--modes", default="extractive,generative")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    rows = rows[: args.limit or None]
    modes = args.modes.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bigevy-quality-"))
    config = settings(workdir)
    base_url = start_serve(config, num_cpus=6)
    http = httpx.Client(base_url=base_url, headers=HEADERS, timeout=300)
    docs = [r.document for r in read(STARTER_KNOWLEDGE, {}) if r.document]
    http.post("/v1/knowledge/documents/batch", json={"documents": docs}).raise_for_status()
    languages = {d["id"]: d.get("language", "en") for d in docs}
    print(f"starter knowledge: {len(docs)} documents; {len(rows)} questions", flush=True)
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    latency: dict[str, list[float]] = defaultdict(list)
    examples: dict[str, list[str]] = defaultdict(list)
    for mode in modes:
        model = config.models[0].id if mode == "extractive" else GENERATIVE
        for i, row in enumerate(rows, 1):
            started = time.perf_counter()
            reply = http.post(
                "/v1/evy/query",
                json={
                    "node_id": "bench",
                    "message": row["question"],
                    "language": row["language"],
                    "model": model,
                },
            )
            latency[mode].append((time.perf_counter() - started) * 1000)
            reply.raise_for_status()
            body = reply.json()
            got = outcome(row, body)
            covered = "covered" if row["covered"] else "uncovered"
            for key in ((mode, row["language"]), (mode, "all")):
                counts[key][f"{covered} {got}"] += 1
                counts[key][covered] += 1
                said = answer_language(body, languages)
                counts[key]["answered"] += said is not None
                counts[key]["other language"] += said not in (None, row["language"])
            if got == "harmful" or (row["covered"] and got != "right"):
                examples[f"{mode} {covered} {got}"].append(
                    f"[{row['id']}] {row['question']!r} -> {body['sms']!r}"
                )
            if i % 25 == 0:
                print(f"  {mode}: {i}/{len(rows)}", flush=True)
    report(counts, latency, examples)


def report(
    counts: dict[tuple[str, str], Counter[str]],
    latency: dict[str, list[float]],
    examples: dict[str, list[str]],
) -> None:
    print(
        "\n| mode | language | covered | right | harmful | no verified answer | other |"
        " uncovered: no verified answer | uncovered: harmful | not in asker's language |"
    )
    print("| --- " * 10 + "|")
    for (mode, language), c in sorted(
        counts.items(), key=lambda kv: (kv[0][0], kv[0][1] == "all", kv[0][1])
    ):
        n = c["covered"] or 1
        cells = " | ".join(f"{c['covered ' + o]} ({c['covered ' + o] / n:.0%})" for o in OUTCOMES)
        u = c["uncovered"]
        refused = f"{c['uncovered no verified answer']}/{u}"
        other = f"{c['other language']}/{c['answered']}"
        print(
            f"| {mode} | {language} | {c['covered']} | {cells} | {refused} | "
            f"{c['uncovered harmful']} | {other} |"
        )
    print("\n| mode | p50 ms | p95 ms |\n| --- | --- | --- |")
    for mode, values in latency.items():
        print(f"| {mode} | {percentile(values, 50):.0f} | {percentile(values, 95):.0f} |")
    for name, lines in sorted(examples.items()):
        print(f"\n{name}: {len(lines)}")
        for line in lines[:12]:
            print(f"  {line}")


if __name__ == "__main__":
    main()
