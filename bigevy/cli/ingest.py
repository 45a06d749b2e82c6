"""`bigevy ingest`: files into the knowledge base, through bigEVY or (`--bulk`) a Ray Data job."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from bigevy.cli.client import ApiError, Client, UrlOption
from bigevy.cli.output import console, progress_bar
from bigevy.config import Settings
from bigevy.http.knowledge.protocol import MAX_BATCH, DocumentCreate
from bigevy.knowledge.ingest import Record, files, read

if TYPE_CHECKING:
    from bigevy.knowledge.bulk import BulkReport


@dataclass
class IngestReport:
    counts: dict[str, int] = field(
        default_factory=lambda: {"added": 0, "updated": 0, "unchanged": 0, "failed": 0}
    )
    failures: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, origin: str, reason: str) -> None:
        self.counts["failed"] += 1
        self.failures.append((origin, reason))


def send_records(
    records: Iterable[Record], api: Client, batch_size: int, label: str
) -> IngestReport:
    """Validate records here, send the valid ones in batches, count each outcome."""
    report = IngestReport()
    valid = _validate(records, report)
    with progress_bar() as bar:
        task = bar.add_task(label, total=len(valid))
        for start in range(0, len(valid), batch_size):
            batch = valid[start : start + batch_size]
            _send_batch(api, batch, report)
            bar.advance(task, len(batch))
    return report


def _validate(records: Iterable[Record], report: IngestReport) -> list[tuple[str, DocumentCreate]]:
    valid: list[tuple[str, DocumentCreate]] = []
    for record in records:
        if record.document is None:
            report.fail(record.origin, record.error or "unreadable")
            continue
        try:
            valid.append((record.origin, DocumentCreate.model_validate(record.document)))
        except ValidationError as exc:
            first = exc.errors()[0]
            report.fail(record.origin, f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
    return valid


def _send_batch(api: Client, batch: list[tuple[str, DocumentCreate]], report: IngestReport) -> None:
    """One batch; a refused batch fails each of its records, and the ingest goes on."""
    body = {"documents": [d.model_dump(mode="json") for _, d in batch]}
    try:
        reply = api.post("/v1/knowledge/documents/batch", json=body, timeout=600)
    except ApiError as exc:
        for origin, _ in batch:
            report.fail(origin, str(exc))
        return
    for (origin, _), item in zip(batch, reply["results"], strict=True):
        if item["status"] == "failed":
            report.fail(origin, item["error"])
        else:
            report.counts[item["status"]] += 1


def ingest(
    path: Annotated[Path, typer.Argument(exists=True, help="A file or a directory.")],
    category: Annotated[str, typer.Option(help="Category of records that name none.")] = (
        "general_knowledge"
    ),
    source: Annotated[str, typer.Option(help="Source of records that name none.")] = "local",
    region: Annotated[str, typer.Option(help="Region of records that name none.")] = "global",
    language: Annotated[str, typer.Option(help="Language of records that name none.")] = "en",
    batch_size: Annotated[int, typer.Option(min=1, max=MAX_BATCH)] = 64,
    bulk: Annotated[
        bool,
        typer.Option(
            help="Large JSONL corpora: a Ray Data job on the cluster chunks and embeds on a "
            "pool of actors; only the writes go through bigEVY."
        ),
    ] = False,
    embed_actors: Annotated[int, typer.Option(min=1, help="--bulk: embedding actors.")] = 1,
    embed_cpus: Annotated[float, typer.Option(min=0, help="--bulk: CPUs per actor.")] = 1.0,
    url: UrlOption = None,
) -> None:
    """Add JSONL, Markdown, text and HTML files to the knowledge base (exit 1 if any failed)."""
    defaults = {"category": category, "source": source, "region": region, "language": language}
    if bulk:
        report = _bulk_ingest(path, defaults, batch_size, embed_actors, embed_cpus)
    else:
        report = send_records(read(path, defaults), Client(url), batch_size, f"ingesting {path}")
    counts, failures = report.counts, report.failures

    table = Table("added", "updated", "unchanged (skipped)", "failed")
    table.add_row(*(str(counts[k]) for k in ("added", "updated", "unchanged", "failed")))
    console.print(table)
    for origin, reason in failures[:20]:
        console.print(f"[yellow]skipped[/yellow] {origin}: {reason}", soft_wrap=True)
    if len(failures) > 20:
        console.print(f"... and {len(failures) - 20} more")
    if failures:
        raise typer.Exit(1)


def _quiet_ray_console() -> None:
    """The bar of a bulk ingest is the progress: Ray Data's own bars and its and Serve's INFO
    lines on the console would only break it up. Ray Data's log file keeps everything."""
    import ray.data
    import ray.serve  # both set their loggers up on import: quieted after it

    ray.data.DataContext.get_current().enable_progress_bars = False
    for name, level in (("ray.data", logging.ERROR), ("ray.serve", logging.WARNING)):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.setLevel(level)


def _bulk_ingest(
    path: Path, defaults: dict[str, str], batch_size: int, actors: int, cpus: float
) -> IngestReport | BulkReport:
    from bigevy.cli.server import connect_ray  # here: server imports this module for `up`
    from bigevy.knowledge import bulk

    settings = Settings()
    jsonl = [str(f) for f in files(path) if f.suffix.lower() == ".jsonl"]
    if not jsonl:
        console.print(f"[red]--bulk reads JSONL files; there are none in {path}[/red]")
        raise typer.Exit(1)
    total = 0
    for name in jsonl:
        with open(name, "rb") as lines:
            total += sum(1 for line in lines if line.strip())
    with console.status("joining the Ray cluster"):
        connect_ray(settings)
    _quiet_ray_console()
    with progress_bar() as bar:
        # Nothing is written until the pool's actors have loaded the model and embedded a
        # first batch (~30 s on a 2-core host): say so rather than show a bar that stands.
        title = f"bulk ingesting {len(jsonl)} file(s)"
        task = bar.add_task(f"{title}: starting the embedding actors", total=total)

        def advance(documents: int) -> None:
            bar.update(task, advance=documents, description=title)

        report = bulk.run(
            jsonl,
            bulk.ServeWriter(settings.app_name),
            embedder=settings.embedder,
            knowledge=settings.knowledge,
            defaults=defaults,
            embed_actors=actors,
            embed_cpus=cpus,
            batch_docs=batch_size,
            on_progress=advance,
        )
    console.print(f"{report.chunks} chunks embedded and written")
    return report
