"""Reading files for ingestion: every format, and bad records reported by file and line."""

from __future__ import annotations

import json
from pathlib import Path

from bigevy.knowledge.ingest import read

DEFAULTS = {"category": "general_knowledge", "source": "local"}


def corpus(root: Path) -> Path:
    (root / "notes").mkdir(parents=True)
    lines = [
        json.dumps(
            {
                "_id": "4983",
                "title": "Microstructural development",
                "text": "Alterations of the architecture of cerebral white matter.",
                "metadata": {},
            }
        ),
        "{not json",
        json.dumps({"id": "w1", "text": "Boil water.", "category": "emergency"}),
        json.dumps({"id": "w2", "title": "no text"}),
        "",
        json.dumps(["a", "list"]),
    ]
    (root / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    (root / "notes" / "Flood Safety.md").write_text(
        "---\ncategory: weather_safety\nregion: east-africa\n---\n"
        "# Flood safety\n\nMove to **higher ground**. See [the guide](http://x.org).\n"
    )
    (root / "notes" / "broken.md").write_text("---\ncategory: [unclosed\n---\n# x\n")
    (root / "notes" / "first-aid.txt").write_text("First aid basics\nPress on a bleeding wound.\n")
    (root / "page.html").write_text(
        "<html><head><title>Cyclone tips</title><script>var x=1;</script></head>"
        "<body><h1>Cyclones</h1><p>Stay indoors.</p><nav>menu</nav></body></html>"
    )
    (root / "picture.png").write_bytes(b"\x89PNG")
    return root


def test_every_format_is_read(tmp_path: Path) -> None:
    records = list(read(corpus(tmp_path), DEFAULTS))
    docs = {r.document["id"]: r.document for r in records if r.document}
    assert set(docs) == {"4983", "w1", "notes/Flood-Safety", "notes/first-aid", "page"}
    assert docs["4983"]["title"] == "Microstructural development"
    assert docs["w1"]["category"] == "emergency" and docs["w1"]["source"] == "local"
    assert docs["notes/Flood-Safety"]["title"] == "Flood safety"
    assert docs["notes/Flood-Safety"]["category"] == "weather_safety"  # from its front matter
    assert docs["notes/Flood-Safety"]["region"] == "east-africa"
    # The title heading is the title, not the text's first line again
    assert docs["notes/Flood-Safety"]["text"] == "Move to higher ground. See the guide."
    assert docs["notes/first-aid"]["title"] == "First aid basics"
    assert docs["page"]["title"] == "Cyclone tips"
    assert "Stay indoors." in docs["page"]["text"]
    assert "var x" not in docs["page"]["text"] and "menu" not in docs["page"]["text"]


def test_bad_records_are_reported_with_file_and_line(tmp_path: Path) -> None:
    records = list(read(corpus(tmp_path), DEFAULTS))
    errors = {r.origin: r.error for r in records if r.error}
    jsonl = str(tmp_path / "corpus.jsonl")
    broken = str(tmp_path / "notes" / "broken.md")
    assert set(errors) == {f"{jsonl}:2", f"{jsonl}:4", f"{jsonl}:6", broken}
    assert "front matter" in errors[broken]
    assert "invalid JSON" in errors[f"{jsonl}:2"]
    assert "text" in errors[f"{jsonl}:4"]
    assert "object" in errors[f"{jsonl}:6"]


def test_a_single_file(tmp_path: Path) -> None:
    path = corpus(tmp_path) / "notes" / "first-aid.txt"
    (record,) = read(path, DEFAULTS)
    assert record.document is not None and record.document["id"] == "first-aid"
