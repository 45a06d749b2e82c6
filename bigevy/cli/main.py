"""`bigevy`: the operator's command line. Every command talks to a running bigEVY or to Ray."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import ssl
import textwrap
import time
from collections.abc import Iterable, Iterator
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
from bigevy.sync.package import write_atomically

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


def _api_key() -> str | None:
    """BIGEVY_API_KEY, else the admin key `bigevy up` left in the data dir."""
    if key := os.environ.get("BIGEVY_API_KEY"):
        return key.strip()
    path = _settings().admin_key_file
    return path.read_text().strip() if path.exists() else None


def _auth() -> dict[str, str]:
    key = _api_key()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _call(method: str, url: str, **kwargs: object) -> httpx.Response:
    """One HTTP call to bigEVY with the operator's key; an unreachable server ends the command
    with status 1."""
    try:
        return httpx.request(
            method,
            url,
            headers=_auth(),
            verify=_verify(),
            **kwargs,  # type: ignore[arg-type]
        )
    except httpx.HTTPError as exc:
        console.print(f"[red]bigEVY is not reachable at {url}[/red]: {exc}")
        raise typer.Exit(1) from None


def _settings() -> Settings:
    return Settings()


@functools.cache
def _verify() -> ssl.SSLContext:
    """The system's CAs, and bigEVY's own certificate where it has one (`tls_certfile`): a
    self-signed one is then trusted by the CLI on the server's host."""
    context = ssl.create_default_context()
    certificate = _settings().tls_certfile
    if certificate is not None and certificate.exists():
        context.load_verify_locations(cafile=str(certificate))
    return context


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
                ready = httpx.get(f"{base_url}/readyz", timeout=5, verify=_verify())
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
    with console.status("preparing the metadata database"):
        first_key = _first_admin_key(settings)
    with console.status("starting Ray"):
        local = settings.ray_address is None
        try:
            started = local and cluster.start_local_ray(settings)
        except RuntimeError as exc:
            console.print(f"[red]Ray did not start[/red]: {exc}")
            raise typer.Exit(1) from None
        if local and not started and not cluster.ours(settings):
            console.print(
                f"joining the Ray already running at {cluster.local_address(settings)} "
                "(`bigevy down` will leave it running)"
            )
        _connect(settings)
    with console.status("deploying the Serve application"):
        cluster.deploy(settings)
    deadline = time.monotonic() + wait
    # Serve first: a second `up` once returned mid-rollover, and a search right after it found
    # nothing.
    with console.status("rolling out the replicas"):
        state, reason = cluster.wait_rolled_out(settings, wait)
    base = settings.base_url
    if state != "RUNNING":
        console.print(f"[red]bigEVY did not deploy[/red] (Serve: {state}): {reason}")
        raise typer.Exit(1)
    if not _wait_ready(base, deadline - time.monotonic()):
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
    key_file = settings.admin_key_file
    if first_key:
        console.print(
            f"first admin key (shown once; also saved to {key_file}, mode 0600):\n  {first_key}",
            soft_wrap=True,
        )
    auth = f'-H "Authorization: Bearer $(cat {key_file})"'
    console.print(
        f"\n[bold green]bigEVY is up[/bold green] at {base}  (data dir: {settings.data_dir})\n"
        f"  OpenAI API:  {base}/v1   schema: {base}/openapi.json   status: bigevy status\n"
        f'  try:  bigevy chat "How do I purify water?"\n'
        f"        curl {base}/v1/chat/completions {auth} \\\n"
        f"          -H 'Content-Type: application/json' \\\n"
        f'          -d \'{{"model": "{model}", "messages": '
        f'[{{"role": "user", "content": "Hello"}}]}}\'\n'
        f"        curl {base}/v1/evy/query {auth} \\\n"
        f"          -H 'Content-Type: application/json' \\\n"
        f'          -d \'{{"node_id": "demo", "message": "Flood coming, what do I do?"}}\'\n'
        f"  enrol a lilEVY node: bigevy nodes token, then bigevy nodes enroll TOKEN --name ...\n"
        f"  stop: bigevy down",
        soft_wrap=True,
    )


def _connect(settings: Settings) -> None:
    """`cluster.connect`, with a Ray that refuses bigEVY's token as one red line."""
    from bigevy import cluster

    with _refused_token():
        cluster.connect(settings)


@contextlib.contextmanager
def _refused_token() -> Iterator[None]:
    """A Ray that takes none of bigEVY's tokens, as one red line and exit 1."""
    from bigevy.ray_auth import TokenRefused

    try:
        yield
    except TokenRefused as exc:
        console.print(f"[red]cannot join Ray[/red]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from None


def _first_admin_key(settings: Settings) -> str | None:
    """Migrate the metadata database; make the first admin key if there is none."""
    from bigevy.fleet.service import open_fleet

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = open_fleet(settings).bootstrap_admin()
    if key:
        write_atomically(settings.admin_key_file, f"{key}\n".encode(), mode=0o600)
    return key


@app.command()
def down() -> None:
    """Remove the bigEVY app; stop the local Ray if `up` started it."""
    from bigevy import cluster

    settings = _settings()
    if settings.ray_address is None and not cluster.local_ray_running(settings):
        console.print("bigEVY is not running")
        return
    with console.status("stopping bigEVY"):
        # The head `up` started takes Serve and every replica with it; any other Ray keeps
        # running without our app.
        stopped_ray = settings.ray_address is None and cluster.stop_local_ray(settings)
        if not stopped_ray:
            _connect(settings)
            cluster.undeploy(settings)
    address = settings.ray_address or cluster.local_address(settings)
    left = "" if stopped_ray else f" (the Ray at {address} keeps running)"
    console.print(f"bigEVY stopped{left}")


@app.command("ray-env")
def ray_env() -> None:
    """Shell lines that point Ray's own tools (`serve status`, `serve deploy`, `ray status`) at
    bigEVY's Ray, with its token: eval "$(bigevy ray-env)"."""
    import shlex

    from bigevy import cluster, ray_auth

    settings = _settings()
    address = settings.ray_address or cluster.local_address(settings)
    with _refused_token():
        token = ray_auth.token_for(address, settings.data_dir)
    exports = {**cluster.RAY_SETTINGS, **token.env, "RAY_ADDRESS": address}
    if settings.ray_address is None:
        exports["RAY_DASHBOARD_ADDRESS"] = f"http://127.0.0.1:{settings.ray_dashboard_port}"
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")


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
    knowledge = _call("GET", f"{base}/v1/knowledge/status", timeout=10)
    cache = knowledge.json().get("answer_cache") if knowledge.status_code == 200 else None
    if cache:
        asked = cache["hits"] + cache["misses"]
        rate = f"{cache['hits'] / asked:.0%}" if asked else "-"
        console.print(
            f"answer cache: {cache['hits']} hits, {cache['misses']} misses ({rate}), "
            f"{cache['entries']} answers, {cache['bytes'] / 2**20:.1f} MB"
        )
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
        _connect(settings)
    _quiet_ray_console()
    with Progress(*Progress.get_default_columns(), TimeElapsedColumn(), console=console) as bar:
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


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The SMS a lilEVY node escalated.")],
    node_id: Annotated[str, typer.Option(help="Which node asks.")] = "cli",
    region: Annotated[str | None, typer.Option(help="Default: the node's enrolled one.")] = None,
    language: Annotated[str, typer.Option(help="The asker's language, e.g. sw.")] = "en",
    profile: Annotated[str | None, typer.Option(help="EVY prompt profile, e.g. sms.")] = None,
    segments: Annotated[int, typer.Option(min=1, max=10, help="SMS parts allowed.")] = 1,
    url: UrlOption = None,
) -> None:
    """Ask as a lilEVY node would: a grounded answer, its SMS, and the sources."""
    body: dict[str, object] = {
        "node_id": node_id,
        "message": question,
        "language": language,
        "max_sms_segments": segments,
    }
    if region:
        body["region"] = region
    if profile:
        body["profile"] = profile
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
            headers=_auth(),
            timeout=httpx.Timeout(10, read=300),
            verify=_verify(),
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


def _json_or_exit(response: httpx.Response, expected: int = 200) -> dict:
    if response.status_code != expected:
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


CategoryOption = Annotated[list[str] | None, typer.Option("--category", help="Repeatable.")]
SourceOption = Annotated[list[str] | None, typer.Option("--source", help="Repeatable.")]
RegionOption = Annotated[list[str] | None, typer.Option("--region", help="Repeatable.")]
LanguageOption = Annotated[list[str] | None, typer.Option("--language", help="Repeatable.")]


@knowledge_app.command("search")
def knowledge_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    mode: Annotated[str, typer.Option(help="hybrid, vector or keyword.")] = "hybrid",
    top_k: Annotated[int, typer.Option(help="Hits (1-100).")] = 5,
    category: CategoryOption = None,
    source: SourceOption = None,
    region: RegionOption = None,
    language: LanguageOption = None,
    url: UrlOption = None,
) -> None:
    """Search the knowledge base as answers do: each hit's scores, document and passage."""
    body = {
        "query": query,
        "mode": mode,
        "top_k": top_k,
        "categories": category or [],
        "sources": source or [],
        "regions": region or [],
        "languages": language or [],
    }
    found = _json_or_exit(_call("POST", f"{_base_url(url)}/v1/rag/search", json=body, timeout=60))
    table = Table("#", "score", "similarity", "document", "title", "passage")
    for rank, hit in enumerate(found["hits"], 1):
        similarity = hit["similarity"]
        table.add_row(
            str(rank),
            f"{hit['score']:.3f}",
            "-" if similarity is None else f"{similarity:.3f}",
            hit["citation"]["document_id"],
            hit["citation"]["title"],
            textwrap.shorten(hit["text"], 80, placeholder="..."),
        )
    console.print(table)


@knowledge_app.command("list")
def knowledge_list(
    category: CategoryOption = None,
    source: SourceOption = None,
    region: RegionOption = None,
    language: LanguageOption = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOption = None,
) -> None:
    """Documents (not deleted), filtered, a page at a time."""
    params: dict[str, object] = {
        "category": category or [],
        "source": source or [],
        "region": region or [],
        "language": language or [],
        "offset": offset,
        "limit": limit,
    }
    page = _json_or_exit(
        _call("GET", f"{_base_url(url)}/v1/knowledge/documents", params=params, timeout=60)
    )
    table = Table("id", "title", "category", "source", "region", "language", "version")
    for doc in page["data"]:
        table.add_row(
            doc["id"],
            doc["title"],
            doc["category"],
            doc["source"],
            doc["region"],
            doc["language"],
            str(doc["version"]),
        )
    console.print(table)
    shown = f"{offset + 1}-{offset + len(page['data'])}" if page["data"] else "none"
    console.print(f"{shown} of {page['total']}")


@knowledge_app.command("show")
def knowledge_show(
    document_id: Annotated[str, typer.Argument(help="The document's id.")],
    url: UrlOption = None,
) -> None:
    """One document: its fields, version, revision and text."""
    doc = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/knowledge/documents/{document_id}"))
    for name in ("id", "title", "category", "source", "region", "language", "priority", "url"):
        console.print(f"[bold]{name}[/bold]: {doc.get(name) or '-'}", highlight=False)
    console.print(
        f"[bold]version[/bold] {doc['version']}, [bold]revision[/bold] {doc['revision']}, "
        f"updated {time.ctime(doc['updated_at'])}",
        highlight=False,
    )
    console.print()
    console.print(doc["text"], markup=False)


@knowledge_app.command("delete")
def knowledge_delete(
    document_id: Annotated[str, typer.Argument(help="The document's id.")],
    url: UrlOption = None,
) -> None:
    """Take a document out of search; a tombstone with a new revision tells the nodes."""
    reply = _call("DELETE", f"{_base_url(url)}/v1/knowledge/documents/{document_id}", timeout=60)
    result = _json_or_exit(reply)
    console.print(
        f"{result['id']}: {result['status']} (version {result['version']}, "
        f"revision {result['revision']})",
        markup=False,
    )


keys_app = typer.Typer(help="API keys: create, list, rotate, revoke.", no_args_is_help=True)
nodes_app = typer.Typer(help="The lilEVY fleet: enrolment and node state.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(nodes_app, name="nodes")
app.add_typer(db_app, name="db")


def _ago(when: float | None) -> str:
    if when is None:
        return "-"
    seconds = time.time() - when
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{max(seconds, 0):.0f}s ago"


@keys_app.command("bootstrap")
def keys_bootstrap() -> None:
    """On the server, without bigEVY running: the first admin key (for `serve deploy` users;
    `bigevy up` does this itself). Does nothing when an admin key exists."""
    settings = _settings()
    with console.status("preparing the metadata database"):
        key = _first_admin_key(settings)
    if key is None:
        console.print("an admin key exists already; `bigevy keys create admin` makes another")
        return
    console.print(f"first admin key (shown once; saved to {settings.admin_key_file}):")
    console.print(key, markup=False, soft_wrap=True)


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Argument(help="admin, operator, reader or node")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    node: Annotated[str | None, typer.Option(help="The node a node key acts as.")] = None,
    expires_in: Annotated[int | None, typer.Option(help="Seconds until it expires.")] = None,
    url: UrlOption = None,
) -> None:
    """A new API key; it is shown once."""
    body = {"role": role, "name": name, "node_id": node, "expires_in_s": expires_in}
    created = _json_or_exit(_call("POST", f"{_base_url(url)}/v1/keys", json=body), 201)
    console.print(f"{created['role']} key {created['id']} (shown once):")
    console.print(created["key"], markup=False, soft_wrap=True)


@keys_app.command("list")
def keys_list(url: UrlOption = None) -> None:
    """Every key with its role and state (never the secret)."""
    data = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/keys"))["data"]
    table = Table("id", "role", "name", "node", "created", "last used", "state")
    now = time.time()
    for key in data:
        expired = key["expires_at"] is not None and key["expires_at"] <= now
        state = "revoked" if key["revoked_at"] else "expired" if expired else "active"
        table.add_row(
            key["id"],
            key["role"],
            key["name"],
            key["node_id"] or "-",
            _ago(key["created_at"]),
            _ago(key["last_used_at"]),
            state,
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: str, url: UrlOption = None) -> None:
    """The key stops working at once."""
    _json_or_exit(_call("POST", f"{_base_url(url)}/v1/keys/{key_id}/revoke"))
    console.print(f"key {key_id} revoked")


@keys_app.command("rotate")
def keys_rotate(key_id: str, url: UrlOption = None) -> None:
    """A new key with the same role; the old one is revoked at once."""
    created = _json_or_exit(_call("POST", f"{_base_url(url)}/v1/keys/{key_id}/rotate"))
    console.print(f"key {key_id} revoked; its replacement {created['id']} (shown once):")
    console.print(created["key"], markup=False, soft_wrap=True)


@nodes_app.command("token")
def nodes_token(
    region: Annotated[str | None, typer.Option(help="Pin the node to this region.")] = None,
    note: Annotated[str, typer.Option(help="Who or what the token is for.")] = "",
    expires_in: Annotated[int | None, typer.Option(help="Seconds (default a day).")] = None,
    url: UrlOption = None,
) -> None:
    """A one-time enrolment token for a new lilEVY node."""
    body = {"region": region, "note": note, "expires_in_s": expires_in}
    token = _json_or_exit(_call("POST", f"{_base_url(url)}/v1/enrollment-tokens", json=body), 201)
    expires = time.ctime(token["expires_at"])
    console.print(f"enrolment token {token['id']} (one-time, expires {expires}):")
    console.print(token["token"], markup=False, soft_wrap=True)


@nodes_app.command("token-revoke")
def nodes_token_revoke(token_id: str, url: UrlOption = None) -> None:
    """An unused enrolment token stops working at once."""
    path = f"{_base_url(url)}/v1/enrollment-tokens/{token_id}/revoke"
    _json_or_exit(_call("POST", path))
    console.print(f"enrolment token {token_id} revoked", markup=False)


@nodes_app.command("list")
def nodes_list(
    state: Annotated[list[str] | None, typer.Option(help="online, stale, offline, ...")] = None,
    region: Annotated[list[str] | None, typer.Option()] = None,
    url: UrlOption = None,
) -> None:
    """The fleet: each node's state, last heartbeat and vital signs."""
    params = {"state": state or [], "region": region or [], "limit": 1000}
    page = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/nodes", params=params))
    table = Table("node", "name", "region", "state", "last seen", "battery", "queue", "knowledge")
    for node in page["data"]:
        status = node["last_status"] or {}
        battery = status.get("battery_percent")
        table.add_row(
            node["id"],
            node["name"],
            node["region"],
            node["state"],
            _ago(node["last_seen_at"]),
            "-" if battery is None else f"{battery:.0f}%",
            str(status.get("queue_depth", "-")),
            str(status.get("knowledge_revision") or "-"),
        )
    console.print(table)
    console.print(f"{page['total']} node(s)")


@nodes_app.command("show")
def nodes_show(node_id: str, url: UrlOption = None) -> None:
    """One node: what it said at enrolment, and its recent heartbeats."""
    node = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/nodes/{node_id}"))
    for field_name in ("id", "name", "region", "location", "phone_number", "hardware", "model"):
        console.print(f"{field_name:>14}: {node[field_name]}", markup=False)
    console.print(f"{'state':>14}: {node['state']} (last seen {_ago(node['last_seen_at'])})")
    table = Table("received", "battery", "power", "sms in/out", "queue", "free MB", "links")
    for beat in node["heartbeats"]:
        battery = beat["battery_percent"]
        table.add_row(
            _ago(beat["received_at"]),
            "-" if battery is None else f"{battery:.0f}%",
            beat["power_source"],
            f"{beat['sms_in']}/{beat['sms_out']}",
            str(beat["queue_depth"]),
            "-" if beat["free_storage_mb"] is None else f"{beat['free_storage_mb']:.0f}",
            ",".join(beat["connectivity"]) or "-",
        )
    console.print(table)


@nodes_app.command("subscribe")
def nodes_subscribe(
    node_id: str,
    budget_mb: Annotated[float | None, typer.Option(help="Knowledge budget in MiB.")] = None,
    category: Annotated[list[str], typer.Option(help="Repeat; none: every category.")] = [],  # noqa: B006
    region: Annotated[list[str], typer.Option(help="Repeat; none: the node's own.")] = [],  # noqa: B006
    language: Annotated[list[str], typer.Option(help="Repeat; none: every language.")] = [],  # noqa: B006
    show: Annotated[bool, typer.Option(help="Only show the subscription.")] = False,
    url: UrlOption = None,
) -> None:
    """What a node holds: categories, regions, languages and its storage budget."""
    path = f"{_base_url(url)}/v1/nodes/{node_id}/subscription"
    if show:
        sub = _json_or_exit(_call("GET", path))
    else:
        body = {"categories": category, "regions": region, "languages": language}
        if budget_mb is not None:
            body["budget_mb"] = budget_mb
        sub = _json_or_exit(_call("PUT", path, json=body))
    for name in ("categories", "regions", "languages"):
        console.print(f"{name:>11}: {', '.join(sub[name]) or 'all'}", markup=False)
    console.print(f"{'budget':>11}: {sub['budget_mb']:g} MiB", markup=False)
    shares = ", ".join(f"{k} {v:.0%}" for k, v in sub["shares"].items())
    console.print(f"{'shares':>11}: {shares}", markup=False)


sync_app = typer.Typer(
    help="Knowledge sync to the edge: where each node stands.", no_args_is_help=True
)
app.add_typer(sync_app, name="sync")


@sync_app.command("status")
def sync_status(
    node_id: Annotated[str | None, typer.Argument(help="One node; default every node.")] = None,
    url: UrlOption = None,
) -> None:
    """Each node's acknowledged knowledge revision, lag, pending package and last error."""
    base = _base_url(url)
    if node_id:
        states = [_json_or_exit(_call("GET", f"{base}/v1/sync/nodes/{node_id}"))]
    else:
        states = _json_or_exit(_call("GET", f"{base}/v1/sync/nodes"))["data"]
    table = Table("node", "revision", "lag", "behind for", "pending", "last error")
    for s in states:
        table.add_row(
            s["node_id"],
            f"{s['acked_revision']}/{s['current_revision']}",
            str(s["lag_revisions"]),
            f"{s['lag_s']:.0f} s" if s["lag_revisions"] else "-",
            s["pending_package_id"] or "-",
            s["last_error"] or "-",
        )
    console.print(table)


alerts_app = typer.Typer(help="Emergency alerts to the fleet.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("send")
def alerts_send(
    headline: str,
    region: Annotated[list[str], typer.Option(help="Repeat; 'global' reaches every node.")],
    event: Annotated[str, typer.Option(help="What happens, e.g. 'Flash Flood'.")],
    severity: Annotated[str, typer.Option(help="Extreme|Severe|Moderate|Minor|Unknown")],
    urgency: Annotated[str, typer.Option(help="Immediate|Expected|Future|Past|Unknown")],
    instruction: Annotated[str, typer.Option(help="What people should do.")] = "",
    hours: Annotated[float, typer.Option(help="Expires after this many hours.")] = 6.0,
    identifier: Annotated[
        str | None, typer.Option(help="Same identifier again: an update of that alert.")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Send (or update) an alert; nodes of its regions get it within seconds."""
    body = {
        "identifier": identifier or f"cli-{int(time.time())}",
        "event": event,
        "severity": severity,
        "urgency": urgency,
        "headline": headline,
        "instruction": instruction,
        "regions": region,
        "expires": time.time() + hours * 3600,
    }
    response = _call("POST", f"{_base_url(url)}/v1/alerts", json=body)
    alert = _json_or_exit(response, 201 if response.status_code == 201 else 200)
    console.print(
        f"alert {alert['id']} version {alert['version']}: reaches {alert['nodes']} nodes",
        markup=False,
    )


@alerts_app.command("list")
def alerts_list(
    all_: Annotated[bool, typer.Option("--all", help="Also cancelled and expired.")] = False,
    url: UrlOption = None,
) -> None:
    """Alerts and how many of the nodes they reach acknowledged them."""
    params = {"include_ended": str(all_).lower()}
    rows = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/alerts", params=params))["data"]
    table = Table("id", "status", "severity", "event", "regions", "acked", "expires")
    for a in rows:
        table.add_row(
            a["id"],
            f"{a['status']} v{a['version']}",
            a["severity"],
            a["event"],
            ",".join(a["regions"]),
            f"{a['acked']}/{a['nodes']}",
            time.strftime("%Y-%m-%d %H:%M", time.localtime(a["expires"])),
        )
    console.print(table)


@alerts_app.command("cancel")
def alerts_cancel(alert_id: str, url: UrlOption = None) -> None:
    """Withdraw an alert: nodes that show it take it down."""
    alert = _json_or_exit(_call("POST", f"{_base_url(url)}/v1/alerts/{alert_id}/cancel"))
    console.print(f"alert {alert['id']} cancelled (version {alert['version']})", markup=False)


connectors_app = typer.Typer(help="Data sources fetched on schedules.", no_args_is_help=True)
app.add_typer(connectors_app, name="connectors")


@connectors_app.command("status")
def connectors_status(url: UrlOption = None) -> None:
    """Each source's health, last success and next fetch."""
    rows = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/connectors"))
    table = Table("source", "kind", "status", "last success", "next", "items", "reason")
    for h in rows:
        table.add_row(
            h["name"],
            h["kind"],
            h["status"],
            _ago(h["last_success"]),
            time.strftime("%H:%M:%S", time.localtime(h["next_due"])),
            str(h["items_seen"]),
            h["reason"] or "-",
        )
    console.print(table)


review_app = typer.Typer(
    help="Knowledge contributed by nodes, awaiting review.", no_args_is_help=True
)
app.add_typer(review_app, name="review")


@review_app.command("list")
def review_list(
    status: Annotated[str, typer.Option(help="pending|accepted|rejected")] = "pending",
    url: UrlOption = None,
) -> None:
    """Contributions in the queue, oldest first."""
    reply = _call("GET", f"{_base_url(url)}/v1/contributions", params={"status": status})
    table = Table("id", "node", "category", "title", "received", "text")
    for c in _json_or_exit(reply)["data"]:
        text = c["text"] if len(c["text"]) <= 60 else c["text"][:57] + "..."
        table.add_row(
            c["id"], c["node_id"], c["category"], c["title"], _ago(c["received_at"]), text
        )
    console.print(table)


@review_app.command("accept")
def review_accept(
    contribution_id: str,
    reason: Annotated[str, typer.Option(help="Note for the record.")] = "",
    region: Annotated[str | None, typer.Option(help="Default: the node's region.")] = None,
    url: UrlOption = None,
) -> None:
    """Put a contribution into the knowledge base (searchable, and synced to nodes)."""
    body = {"reason": reason, "region": region}
    path = f"{_base_url(url)}/v1/contributions/{contribution_id}/accept"
    done = _json_or_exit(_call("POST", path, json=body))
    console.print(f"accepted as document {done['document_id']}", markup=False)


@review_app.command("reject")
def review_reject(
    contribution_id: str,
    reason: Annotated[str, typer.Option(help="Why; kept with it.")] = "",
    url: UrlOption = None,
) -> None:
    """Keep a contribution out of the knowledge base."""
    path = f"{_base_url(url)}/v1/contributions/{contribution_id}/reject"
    done = _json_or_exit(_call("POST", path, json={"reason": reason}))
    console.print(f"rejected {done['id']}", markup=False)


faq_app = typer.Typer(
    help="FAQ entries built from frequent escalations, shipped to their region's nodes.",
    no_args_is_help=True,
)
app.add_typer(faq_app, name="faq")


@faq_app.command("list")
def faq_list(
    region: Annotated[str | None, typer.Option(help="One region's entries.")] = None,
    awaiting_review: Annotated[
        bool, typer.Option("--awaiting-review", help="Only answers awaiting approval.")
    ] = False,
    url: UrlOption = None,
) -> None:
    """Entries, most asked first: whether each is published, and from which documents."""
    params: dict[str, str] = {"region": region} if region else {}
    if awaiting_review:
        params["awaiting_review"] = "true"
    reply = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/faq", params=params))
    table = Table("id", "region", "lang", "asked", "published", "question", "sources")
    for e in reply["data"]:
        table.add_row(
            e["id"],
            e["region"],
            e["language"],
            str(e["count"]),
            "awaiting review" if e["awaiting_review"] else "yes" if e["published"] else "no",
            e["question"],
            ", ".join(e["sources"]) or "-",
        )
    console.print(table)


@faq_app.command("show")
def faq_show(entry_id: str, url: UrlOption = None) -> None:
    """One entry, with the SMS nodes answer it with."""
    e = _json_or_exit(_call("GET", f"{_base_url(url)}/v1/faq/{entry_id}"))
    state = "published" if e["published"] else "not published"
    if e["awaiting_review"]:
        state = "awaiting review"
    console.print(
        f"{e['question']}  ({e['region']}, {e['language']}, asked {e['count']}x, {state})",
        markup=False,
    )
    console.print(e["answer"] or "(no answer: withdrawn, or not backed by sources)", markup=False)
    console.print(f"sources: {', '.join(e['sources']) or '-'}", markup=False)


@faq_app.command("withdraw")
def faq_withdraw(entry_id: str, url: UrlOption = None) -> None:
    """Take an entry back from the nodes now (rebuilt from its sources when next asked)."""
    _json_or_exit(_call("POST", f"{_base_url(url)}/v1/faq/{entry_id}/withdraw"))
    console.print(f"withdrawn {entry_id}", markup=False)


@faq_app.command("approve")
def faq_approve(entry_id: str, url: UrlOption = None) -> None:
    """Approve an entry's answer as it is now (`faq.review`): it ships to the region's nodes."""
    e = _json_or_exit(_call("POST", f"{_base_url(url)}/v1/faq/{entry_id}/approve"))
    state = "published" if e["published"] else "approved (ships once among the most asked)"
    console.print(f"{entry_id}: {state}", markup=False)


@nodes_app.command("revoke")
def nodes_revoke(node_id: str, url: UrlOption = None) -> None:
    """The node and its keys stop working at once; its history is kept."""
    _json_or_exit(_call("POST", f"{_base_url(url)}/v1/nodes/{node_id}/revoke"))
    console.print(f"node {node_id} revoked")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the metadata database's migrations (bigevy up does this too)."""
    from bigevy.fleet.db import current_revision, make_engine, upgrade

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.metadata_url)
    before = current_revision(engine)
    upgrade(engine)
    console.print(f"metadata database at revision {current_revision(engine)} (was {before})")


# -- lilEVY edge: enrol a node from the command line, simulate a fleet ------------------------


def _write_private_json(path: Path, data: dict) -> None:
    """Atomically, mode 0600: the file holds a node key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


@nodes_app.command("enroll")
def nodes_enroll(
    token: Annotated[str, typer.Argument(help="From `bigevy nodes token`.")],
    name: Annotated[str, typer.Option(help="The node's name.")],
    region: Annotated[str | None, typer.Option(help="Its region (a token's region wins).")] = None,
    phone: Annotated[str, typer.Option(help="The SIM's phone number.")] = "",
    hardware: Annotated[str, typer.Option(help="e.g. Raspberry Pi 4 + SIM800.")] = "",
    location: Annotated[str, typer.Option(help="Where it stands.")] = "",
    state_file: Annotated[
        Path | None,
        typer.Option(help="Where to keep its id and key (default <data_dir>/edge/<id>.json)."),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Enrol a lilEVY node (the token is its only credential), save its key, heartbeat once."""
    import asyncio

    from bigevy.edge.client import EdgeClient, HeartbeatReply, HeartbeatStatus, NodeDescription
    from bigevy.edge.errors import EdgeError

    base = _base_url(url)
    description = NodeDescription(
        name=name, phone_number=phone, hardware=hardware, location=location
    )
    if region:
        description.region = region

    async def run() -> tuple[str, Path, str]:
        async with EdgeClient(base) as edge:
            enrolled = await edge.enroll(token, description)
            state = {
                "node_id": enrolled.node_id,
                "node_key": enrolled.node_key,
                "base_url": base,
                "signing_public_key": enrolled.signing_public_key,
            }
            path = state_file or _settings().data_dir / "edge" / f"{enrolled.node_id}.json"
            _write_private_json(path, state)
            try:
                reply = await edge.heartbeat(HeartbeatStatus(connectivity=["internet"]))
            except EdgeError as exc:
                return enrolled.node_id, path, f"its first heartbeat failed: {exc}"
            said = reply.state if isinstance(reply, HeartbeatReply) else "queued"
            return enrolled.node_id, path, said

    try:
        node_id, path, state = asyncio.run(run())
    except EdgeError as exc:
        console.print(f"[red]enrolment failed[/red]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"node {node_id} enrolled; its key is in {path} (mode 0600)", soft_wrap=True)
    if state != "online":
        console.print(f"[red]{state}[/red]", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"node {node_id} is [green]online[/green] (first heartbeat acknowledged)")


fleet_app = typer.Typer(help="Fleet-wide tools: a simulated lilEVY fleet.", no_args_is_help=True)
app.add_typer(fleet_app, name="fleet")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


@fleet_app.command("simulate")
def fleet_simulate(
    nodes: Annotated[int, typer.Option(min=1, help="Simulated lilEVY nodes.")] = 10,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of load.")] = 60,
    heartbeat_interval: Annotated[float, typer.Option(min=0.1, help="Seconds.")] = 5.0,
    question_every: Annotated[
        float, typer.Option(min=0.1, help="Mean seconds between a node's questions.")
    ] = 60.0,
    region: Annotated[str, typer.Option(help="The nodes' region.")] = "KE",
    url: UrlOption = None,
) -> None:
    """Enrol N simulated nodes that heartbeat and escalate SMS questions; report the load."""
    from rich.progress import BarColumn

    from bigevy.edge.simulator import Progress as SimProgress
    from bigevy.edge.simulator import simulate

    key = _api_key()
    if not key:
        console.print("[red]no API key[/red]: set BIGEVY_API_KEY to an admin key")
        raise typer.Exit(1)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("enrolling", total=nodes)

        def show(p: SimProgress) -> None:
            if p.phase == "running":
                text = (
                    f"running: {p.heartbeats} heartbeats, {p.escalations} answers, "
                    f"{p.failures} failures"
                )
            else:
                text = p.phase
            bar.update(task, description=text, completed=p.done, total=p.total or None)

        report = simulate(
            _base_url(url),
            key,
            nodes,
            duration,
            heartbeat_interval_s=heartbeat_interval,
            question_every_s=question_every,
            region=region,
            on_progress=show,
        )
        bar.update(task, description="done", completed=1, total=1)
    console.print(
        f"{report.nodes} node(s) for {report.duration_s:.0f} s: "
        f"[bold]{report.heartbeats_per_s:.1f} heartbeats/s[/bold] sustained "
        f"({report.acknowledged_heartbeats} acknowledged)"
    )
    table = Table("kind", "ok", "failed", "queued", "p50 ms", "p95 ms", "p99 ms")
    for kind, stats in report.kinds.items():
        table.add_row(
            kind,
            str(stats.ok),
            str(stats.failed),
            str(stats.queued),
            _ms(stats.p(50)),
            _ms(stats.p(95)),
            _ms(stats.p(99)),
        )
    console.print(table)
    seen = ", ".join(f"{k}: {n}" for k, n in sorted(report.responses.items())) or "-"
    failed = ", ".join(f"{k}: {n}" for k, n in sorted(report.failures.items())) or "none"
    console.print(f"responses (every try): {seen}", soft_wrap=True)
    console.print(f"failed for good: {failed}", soft_wrap=True)
    colour = "red" if report.server_errors else "green"
    console.print(
        f"5xx: [{colour}]{report.server_errors}[/{colour}]   outbox depth at the end: "
        f"{report.outbox_depth}   dead letters: {report.dead_letters}"
    )
