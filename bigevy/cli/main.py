"""`bigevy`: the operator's command line. Every command talks to a running bigEVY or to Ray."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import httpx
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bigevy.api.knowledge import MAX_BATCH, DocumentCreate
from bigevy.config import Settings
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, Record, files, read

if TYPE_CHECKING:
    from bigevy.knowledge.bulk import BulkReport

app = typer.Typer(help="bigEVY, the central node of the EVY network.", no_args_is_help=True)
console = Console()

UrlOption = Annotated[
    str | None, typer.Option("--url", help="bigEVY base URL (default from settings).")
]


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip() or response.reason_phrase


def _call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One HTTP call to bigEVY; an unreachable server ends the command with status 1."""
    try:
        return httpx.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as exc:
        console.print(f"[red]bigEVY is not reachable at {url}[/red]: {exc}")
        raise typer.Exit(1) from None


def _settings() -> Settings:
    return Settings()


def _base_url(url: str | None) -> str:
    return (url or _settings().base_url).rstrip("/")


def _wait_ready(base_url: str, timeout: float) -> bool:
    """Show each model's state until everything is ready (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("waiting for the gateway", total=None)
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{base_url}/readyz", timeout=5)
                body = ready.json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.5)
                continue
            states = ", ".join(f"{m}: {s}" for m, s in body.get("models", {}).items())
            progress.update(task, description=f"loading models ({states or 'starting'})")
            if ready.status_code == 200:
                progress.update(task, description=f"ready ({states})")
                return True
            if "failed" in body.get("models", {}).values():
                return False
            time.sleep(0.5)
    return False


@app.command()
def up(
    wait: Annotated[float, typer.Option(help="Seconds to wait for the models.")] = 600,
) -> None:
    """Start a local Ray (unless BIGEVY_RAY_ADDRESS names a cluster) and deploy bigEVY."""
    from bigevy import cluster

    settings = _settings()
    with console.status("starting Ray"):
        if settings.ray_address is None:
            cluster.start_local_ray(settings)
        cluster.connect(settings)
    with console.status("deploying the Serve application"):
        cluster.deploy(settings)
    base = settings.base_url
    if not _wait_ready(base, wait):
        console.print(f"[red]bigEVY is not ready[/red]; see `bigevy status` and {base}/readyz")
        raise typer.Exit(1)
    if settings.knowledge.load_starter:
        starter = send_records(read(STARTER_KNOWLEDGE, {}), base, 64, "starter knowledge")
        counts = starter.counts
        console.print(
            f"starter knowledge: {counts['added']} added, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['failed']} failed"
        )
    model = settings.default_model
    console.print(
        f"\n[bold green]bigEVY is up[/bold green] at {base}  (data dir: {settings.data_dir})\n"
        f"  OpenAI API:  {base}/v1   docs: {base}/docs   status: bigevy status\n"
        f'  try:  bigevy chat "How do I purify water?"\n'
        f"        curl {base}/v1/chat/completions -H 'Content-Type: application/json' \\\n"
        f'          -d \'{{"model": "{model}", "messages": '
        f'[{{"role": "user", "content": "Hello"}}]}}\'\n'
        f"        curl {base}/v1/evy/query -H 'Content-Type: application/json' \\\n"
        f'          -d \'{{"node_id": "demo", "message": "Flood coming, what do I do?"}}\'\n'
        f"  stop: bigevy down",
        soft_wrap=True,
    )


@app.command()
def down() -> None:
    """Remove the bigEVY app; stop the local Ray if `up` started it."""
    from bigevy import cluster

    settings = _settings()
    if settings.ray_address is None and not cluster.local_ray_running(settings):
        console.print("bigEVY is not running")
        return
    with console.status("stopping bigEVY"):
        if settings.ray_address is None:
            cluster.stop_local_ray()  # takes Serve and every replica with it
        else:
            cluster.connect(settings)
            cluster.undeploy(settings)
    console.print("bigEVY stopped")


@app.command()
def status(url: UrlOption = None) -> None:
    """Readiness and each model's state, replicas and throughput."""
    base = _base_url(url)
    ready = _call("GET", f"{base}/readyz", timeout=10)
    models = _call("GET", f"{base}/v1/admin/models", timeout=10)
    if models.status_code != 200:
        console.print(f"[red]bigEVY at {base}: {models.status_code}[/red] {_error_message(models)}")
        raise typer.Exit(1)
    is_ready = ready.status_code == 200
    state = "[green]ready[/green]" if is_ready else "[yellow]not ready[/yellow]"
    console.print(f"bigEVY at {base}: {state}")
    table = Table("model", "state", "replicas", "context", "tokens", "tok/s", "memory MB")
    for m in models.json().get("data", []):
        replicas = ", ".join(f"{k.lower()} {v}" for k, v in m["replicas"].items())
        memory = f"{m['memory_bytes'] / 2**20:.0f}" if m.get("memory_bytes") else "-"
        table.add_row(
            m["id"],
            m["state"],
            replicas,
            str(m["context_length"]),
            str(m["tokens_generated"]),
            str(m["tokens_per_second"]),
            memory,
        )
    console.print(table)
    if not is_ready:
        raise typer.Exit(1)


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
    records: Iterable[Record], base_url: str, batch_size: int, label: str
) -> IngestReport:
    """Validate records here, send the valid ones in batches, count each outcome."""
    report = IngestReport()
    fail, counts = report.fail, report.counts
    valid: list[tuple[str, DocumentCreate]] = []
    for record in records:
        if record.document is None:
            fail(record.origin, record.error or "unreadable")
            continue
        try:
            valid.append((record.origin, DocumentCreate.model_validate(record.document)))
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(record.origin, f"{'.'.join(map(str, first['loc']))}: {first['msg']}")

    endpoint = f"{base_url}/v1/knowledge/documents/batch"
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(label, total=len(valid))
        for start in range(0, len(valid), batch_size):
            batch = valid[start : start + batch_size]
            body = {"documents": [d.model_dump(mode="json") for _, d in batch]}
            reply = _call("POST", endpoint, json=body, timeout=600)
            if reply.status_code != 200:
                for origin, _ in batch:
                    fail(origin, f"{reply.status_code} {_error_message(reply)}")
            else:
                for (origin, _), item in zip(batch, reply.json()["results"], strict=True):
                    if item["status"] == "failed":
                        fail(origin, item["error"])
                    else:
                        counts[item["status"]] += 1
            bar.advance(task, len(batch))
    return report


@app.command()
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
        report = send_records(read(path, defaults), _base_url(url), batch_size, f"ingesting {path}")
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


def _bulk_ingest(
    path: Path, defaults: dict[str, str], batch_size: int, actors: int, cpus: float
) -> IngestReport | BulkReport:
    from bigevy import cluster
    from bigevy.knowledge import bulk

    settings = _settings()
    jsonl = [str(f) for f in files(path) if f.suffix.lower() == ".jsonl"]
    if not jsonl:
        console.print(f"[red]--bulk reads JSONL files; there are none in {path}[/red]")
        raise typer.Exit(1)
    total = 0
    for name in jsonl:
        with open(name, "rb") as lines:
            total += sum(1 for line in lines if line.strip())
    with console.status("joining the Ray cluster"):
        cluster.connect(settings)
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task(f"bulk ingesting {len(jsonl)} file(s)", total=total)
        report = bulk.run(
            jsonl,
            bulk.ServeWriter(settings.app_name),
            embedder=settings.embedder,
            knowledge=settings.knowledge,
            defaults=defaults,
            embed_actors=actors,
            embed_cpus=cpus,
            batch_docs=batch_size,
            on_progress=lambda n: bar.advance(task, n),
        )
    console.print(f"{report.chunks} chunks embedded and written")
    return report


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The SMS a lilEVY node escalated.")],
    node_id: Annotated[str, typer.Option(help="Which node asks.")] = "cli",
    region: Annotated[str | None, typer.Option(help="The node's region.")] = None,
    segments: Annotated[int, typer.Option(min=1, max=10, help="SMS parts allowed.")] = 1,
    url: UrlOption = None,
) -> None:
    """Ask as a lilEVY node would: a grounded answer, its SMS, and the sources."""
    body: dict[str, object] = {
        "node_id": node_id,
        "message": question,
        "max_sms_segments": segments,
    }
    if region:
        body["region"] = region
    reply = _call("POST", f"{_base_url(url)}/v1/evy/query", json=body, timeout=300)
    if reply.status_code != 200:
        console.print(f"[red]{reply.status_code}[/red] {_error_message(reply)}")
        raise typer.Exit(1)
    answer = reply.json()
    if answer["triage"]["emergency"]:
        numbers = ", ".join(f"{n['number']} ({n['service']})" for n in answer["emergency_numbers"])
        console.print(
            f"[bold red]EMERGENCY ({answer['triage']['kind']})[/bold red] answered from the "
            f"knowledge base; numbers: {numbers or 'none found'}"
        )
    console.print(answer["answer"], markup=False)
    console.print(
        f"\n[bold]SMS[/bold] ({answer['sms_segments']} part(s), {answer['sms_encoding']}):",
    )
    console.print(answer["sms"], markup=False, soft_wrap=True)
    for citation in answer["citations"]:
        console.print(f"  source: {citation['title']} ({citation['document_id']})", markup=False)


@app.command()
def chat(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str | None, typer.Option(help="Model id (default model if omitted).")] = None,
    profile: Annotated[str | None, typer.Option(help="EVY prompt profile, e.g. sms.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="At most this many tokens.")] = None,
    url: UrlOption = None,
) -> None:
    """Ask bigEVY one question and stream the answer."""
    body: dict[str, object] = {
        "messages": [{"role": "user", "content": question}],
        "stream": True,
    }
    for key, value in (("model", model), ("profile", profile), ("max_tokens", max_tokens)):
        if value is not None:
            body[key] = value
    try:
        with httpx.stream(
            "POST",
            f"{_base_url(url)}/v1/chat/completions",
            json=body,
            timeout=httpx.Timeout(10, read=300),
        ) as response:
            if response.status_code != 200:
                response.read()
                console.print(f"[red]{response.status_code}[/red] {_error_message(response)}")
                raise typer.Exit(1)
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                for choice in json.loads(line[6:])["choices"]:
                    console.print(choice["delta"].get("content") or "", end="")
    except httpx.HTTPError as exc:
        console.print(f"[red]bigEVY is not reachable[/red]: {exc}")
        raise typer.Exit(1) from None
    console.print()


if __name__ == "__main__":
    app()


knowledge_app = typer.Typer(help="The knowledge base: its state and upkeep.", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")


def _print_knowledge(status: dict) -> None:
    console.print(
        f"{status['documents']} documents ({status['tombstones']} deleted), "
        f"{status['chunks']} chunks, revision {status['revision']}, "
        f"embedded by {status['embedding_model']} ({status['dimensions']}-d)"
    )
    if status.get("reembedding"):
        progress = status["reembedding"]
        console.print(
            f"[yellow]re-embedding[/yellow]: {progress['done']} documents done, "
            f"{progress['pending']} pending (searches cover the done ones)"
        )
    if status.get("other_models"):
        console.print(
            f"earlier models' chunks kept until then: {', '.join(status['other_models'])}"
        )
    table = Table("index", "type", "columns", "indexed rows", "unindexed rows")
    for index in status["indexes"]:
        table.add_row(
            index["name"],
            index["type"],
            ", ".join(index["columns"]),
            str(index["indexed_rows"]),
            str(index["unindexed_rows"]),
        )
    console.print(table)


def _json_or_exit(response: httpx.Response) -> dict:
    if response.status_code != 200:
        console.print(f"[red]{response.status_code}[/red] {_error_message(response)}")
        raise typer.Exit(1)
    return response.json()


@knowledge_app.command("status")
def knowledge_status(url: UrlOption = None) -> None:
    """Documents, chunks, revision, embedding model and index coverage."""
    _print_knowledge(_json_or_exit(_call("GET", f"{_base_url(url)}/v1/knowledge/status")))


@knowledge_app.command("maintain")
def knowledge_maintain(url: UrlOption = None) -> None:
    """Build the vector index if due and fold new rows into the indexes now."""
    with console.status("optimizing the knowledge base"):
        reply = _call("POST", f"{_base_url(url)}/v1/knowledge/maintain", timeout=3600)
    result = _json_or_exit(reply)
    console.print("done: " + ", ".join(result["done"]))
    _print_knowledge(result["status"])
