"""How well does the rule-based SMS triage separate emergencies from everything else?

    .venv/bin/python benchmarks/triage_eval.py [--data benchmarks/data/triage_messages.jsonl]

Per split: precision, recall and F1 of emergency detection, kind accuracy on the true
positives, recall per language; the misclassified messages of the dev split are listed
(tune on dev only; the test split is for reporting).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

from bigevy.answers.triage import Triage, triage  # noqa: E402

DEFAULT_DATA = REPO / "benchmarks" / "data" / "triage_messages.jsonl"


@dataclass(frozen=True)
class Scores:
    """Detection quality of one split, as the test suite and this report read it."""

    count: int
    precision: float
    recall: float
    f1: float
    kind_accuracy: float
    recall_by_language: dict[str, float]


def load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def evaluate(rows: list[dict]) -> tuple[Scores, list[tuple[dict, Triage]]]:
    """Score `rows`; also return the messages whose emergency flag or kind is wrong."""
    tp = fp = fn = kind_ok = 0
    positives: dict[str, int] = defaultdict(int)
    found: dict[str, int] = defaultdict(int)
    errors: list[tuple[dict, Triage]] = []
    for row in rows:
        result = triage(row["text"])
        if row["emergency"]:
            positives[row["language"]] += 1
        if result.emergency and row["emergency"]:
            tp += 1
            found[row["language"]] += 1
            kind_ok += result.kind == row["kind"]
        fp += result.emergency and not row["emergency"]
        fn += row["emergency"] and not result.emergency
        if result.emergency != row["emergency"] or result.kind != row["kind"]:
            errors.append((row, result))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    scores = Scores(
        count=len(rows),
        precision=precision,
        recall=recall,
        f1=f1,
        kind_accuracy=kind_ok / tp if tp else 0.0,
        recall_by_language={lang: found[lang] / n for lang, n in sorted(positives.items())},
    )
    return scores, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="labelled JSONL set")
    args = parser.parse_args()

    rows = load(args.data)
    for split in ("dev", "test"):
        scores, errors = evaluate([r for r in rows if r["split"] == split])
        languages = "  ".join(f"{k}={v:.2f}" for k, v in scores.recall_by_language.items())
        print(
            f"{split:<4}  n={scores.count:<4} precision={scores.precision:.3f}  "
            f"recall={scores.recall:.3f}  F1={scores.f1:.3f}  "
            f"kind accuracy={scores.kind_accuracy:.3f}"
        )
        print(f"      recall by language: {languages}")
        if split == "dev":
            for row, result in errors:
                want = row["kind"] if row["emergency"] else "-"
                got = result.kind or "-"
                print(
                    f"      want={want:<8} got={got:<8} score={result.score:.2f}  "
                    f"[{row['language']}] {row['text']!r}  cues={list(result.cues)}"
                )


if __name__ == "__main__":
    main()
