"""How well `bigevy.answers.support` tells a model's sentence its passage supports from one it
does not: `benchmarks/data/support_sentences.jsonl` (supported, unsupported and contradicting
sentences written from the 15 English safety documents of the starter pack), each checked
against its document's text with the real embedding model, in process, together with the
quantity rule every generated sentence also passes (`bigevy.answers.grounding.quantities`).

    .venv/bin/python benchmarks/support_check.py [--grid]

Reported per half (dev: even-numbered lines, on which the floors were chosen; test: odd) and
label: the share kept (supported: should be high; unsupported and contradicting: should be 0).
`--grid` prints the dev figures for a grid of the two floors.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np

import bigevy.answers.support as support
from bigevy.answers.grounding import quantities
from bigevy.config import EmbedderSpec
from bigevy.knowledge.embedder import Embedder
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read

DATA = Path(__file__).resolve().parent / "data" / "support_sentences.jsonl"
LABELS = ("supported", "unsupported", "contradicting")


def run(rows: list[dict], check: support.SupportCheck, docs: dict[str, str]) -> Counter[str]:
    kept: Counter[str] = Counter()
    for row in rows:
        source = docs[row["document"]]
        (backing,) = asyncio.run(check.supported([row["sentence"]], [source]))
        # As an answer is checked: its numbers too
        # (bigevy.answers.grounding.drop_unsupported_quantities).
        numbers_given = quantities(row["sentence"]) <= quantities(source)
        kept[row["label"]] += backing is not None and numbers_given
        kept[f"{row['label']} total"] += 1
    return kept


def line(name: str, kept: Counter[str]) -> str:
    cells = " | ".join(
        f"{kept[label]}/{kept[label + ' total']} ({kept[label] / kept[label + ' total']:.0%})"
        for label in LABELS
    )
    return f"| {name} | {cells} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", action="store_true")
    args = parser.parse_args()
    rows = [json.loads(x) for x in DATA.read_text().splitlines() if x.strip()]
    docs = {
        r.document["id"]: f"{r.document['title']}. {r.document['text']}"
        for r in read(STARTER_KNOWLEDGE, {})
        if r.document
    }
    model = Embedder(EmbedderSpec())

    async def embed(texts: list[str]) -> np.ndarray:
        return model.encode_array(texts)

    check = support.SupportCheck(embed)
    dev, test = rows[::2], rows[1::2]
    if args.grid:
        for similarity, coverage in itertools.product(
            (0.4, 0.5, 0.6, 0.7, 0.8), (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)
        ):
            support.SIMILARITY_FLOOR, support.COVERAGE_FLOOR = similarity, coverage
            print(line(f"{similarity} / {coverage}", run(dev, check, docs)), flush=True)
        return
    print("| half | kept: supported | unsupported | contradicting |\n| --- | --- | --- | --- |")
    print(line("dev", run(dev, check, docs)))
    print(line("test", run(test, check, docs)))


if __name__ == "__main__":
    main()
