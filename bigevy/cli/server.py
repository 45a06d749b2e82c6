"""Start, stop and inspect bigEVY: `up`, `down`, `status`, `ray-env`."""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bigevy.cli.client import ApiError, Client, Unreachable, UrlOption
from bigevy.cli.ingest import send_records
from bigevy.cli.output import console
from bigevy.config import Settings
from bigevy.knowledge.ingest import STARTER_KNOWLEDGE, read
from bigevy.ops.files import write_atomically


def up(
    wait: Annotated[float, typer.Option(help="Seconds to wait for the models.")] = 600,
) -> None:
    """Start a local Ray (unless BIGEVY_RAY_ADDRESS names a cluster) and deploy bigEVY."""
    from bigevy.ops import cluster

    settings = Settings()
    with console.status("preparing the metadata database"):
        first_key = first_admin_key(settings)
    _start_ray(settings)
    with console.status("deploying the Serve application"):
        cluster.deploy(settings)
    deadline = time.monotonic() + wait
    # Serve's rollover before /readyz: mid-rollover, /readyz can already say ready while a
    # search sent next still finds nothing.
    with console.status("rolling out the replicas"):
        state, reason = cluster.wait_rolled_out(settings, wait)
    api = Client(settings=settings)
    base = api.base_url
    if state != "RUNNING":
        console.print(f"[red]bigEVY did not deploy[/red] (Serve: {state}): {reason}")
        raise typer.Exit(1)
    if not _wait_ready(api, deadline - time.monotonic()):
        console.print(f"[red]bigEVY is not ready[/red]; see `bigevy status` and {base}/readyz")
        raise typer.Exit(1)
    if settings.knowledge.load_starter:
        starter = send_records(read(STARTER_KNOWLEDGE, {}), api, 64, "starter knowledge")
        counts = starter.counts
        console.print(
            f"starter knowledge: {counts['added']} added, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged, {counts['failed']} failed"
        )
    _print_welcome(settings, base, first_key)


def _start_ray(settings: Settings) -> None:
    """A local head unless the settings name a cluster; join one that runs already."""
    from bigevy.ops import cluster

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
        try:
            connect_ray(settings)
        except BaseException:
            if started:  # a head left behind would be joined, with its token, by the next `up`
                cluster.stop_local_ray(settings)
            raise


def _print_welcome(settings: Settings, base: str, first_key: str | None) -> None:
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
        f"  console:  {base}/console  (sign in with an admin, operator or reader key)\n"
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


def _wait_ready(api: Client, timeout: float) -> bool:
    """Show each model's state until everything is ready (or the deadline passes)."""
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("waiting for the gateway", total=None)
        while time.monotonic() < deadline:
            try:
                ready, body = api.readiness(timeout=5)
            except Unreachable:
                ready, body = False, None
            if body is None:
                time.sleep(0.5)
                continue
            states = ", ".join(f"{m}: {s}" for m, s in body.get("models", {}).items())
            progress.update(task, description=f"loading models ({states or 'starting'})")
            if ready:
                progress.update(task, description=f"ready ({states})")
                return True
            if "failed" in body.get("models", {}).values():
                return False
            time.sleep(0.5)
    return False


def connect_ray(settings: Settings) -> None:
    """`cluster.connect`, with a Ray that refuses bigEVY's token as one red line."""
    from bigevy.ops import cluster

    with _refused_token():
        cluster.connect(settings)


@contextlib.contextmanager
def _refused_token() -> Iterator[None]:
    """A Ray that takes none of bigEVY's tokens, as one red line and exit 1."""
    from bigevy.ops.ray_auth import TokenRefused

    try:
        yield
    except TokenRefused as exc:
        console.print(f"[red]cannot join Ray[/red]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from None


def first_admin_key(settings: Settings) -> str | None:
    """Migrate the metadata database; make the first admin key if there is none."""
    from bigevy.fleet.service import open_fleet

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = open_fleet(settings).bootstrap_admin()
    if key:
        write_atomically(settings.admin_key_file, f"{key}\n".encode(), mode=0o600)
    return key


def down() -> None:
    """Remove the bigEVY app; stop the local Ray if `up` started it."""
    from bigevy.ops import cluster

    settings = Settings()
    if settings.ray_address is None and not cluster.local_ray_running(settings):
        console.print("bigEVY is not running")
        return
    with console.status("stopping bigEVY"):
        # The head `up` started takes Serve and every replica with it; any other Ray keeps
        # running without our app.
        stopped_ray = settings.ray_address is None and cluster.stop_local_ray(settings)
        if not stopped_ray:
            connect_ray(settings)
            cluster.undeploy(settings)
    address = settings.ray_address or cluster.local_address(settings)
    left = "" if stopped_ray else f" (the Ray at {address} keeps running)"
    console.print(f"bigEVY stopped{left}")


def ray_env() -> None:
    """Shell lines that point Ray's own tools (`serve status`, `serve deploy`, `ray status`) at
    bigEVY's Ray, with its token: eval "$(bigevy ray-env)"."""
    from bigevy.ops import cluster, ray_auth

    settings = Settings()
    address = settings.ray_address or cluster.local_address(settings)
    with _refused_token():
        token = ray_auth.token_for(address, settings.data_dir)
    exports = {**cluster.RAY_SETTINGS, **token.env, "RAY_ADDRESS": address}
    if settings.ray_address is None:
        exports["RAY_DASHBOARD_ADDRESS"] = f"http://127.0.0.1:{settings.ray_dashboard_port}"
    for name, value in exports.items():
        print(f"export {name}={shlex.quote(value)}")


def status(url: UrlOption = None) -> None:
    """Readiness and each model's state, replicas and throughput."""
    api = Client(url)
    is_ready, _ = api.readiness(timeout=10)
    try:
        models = api.get("/v1/admin/models", timeout=10)
    except ApiError as exc:
        console.print(f"[red]bigEVY at {api.base_url}: {exc.status}[/red] {exc.message}")
        raise typer.Exit(1) from None
    state = "[green]ready[/green]" if is_ready else "[yellow]not ready[/yellow]"
    console.print(f"bigEVY at {api.base_url}: {state}")
    table = Table("model", "state", "replicas", "context", "tokens", "tok/s", "memory MB")
    for m in models.get("data", []):
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
    _print_answer_cache(api)
    if not is_ready:
        raise typer.Exit(1)


def _print_answer_cache(api: Client) -> None:
    try:
        cache = api.get("/v1/knowledge/status", timeout=10).get("answer_cache")
    except ApiError:
        return  # the cache line is extra: the status above stands without it
    if cache:
        asked = cache["hits"] + cache["misses"]
        rate = f"{cache['hits'] / asked:.0%}" if asked else "-"
        console.print(
            f"answer cache: {cache['hits']} hits, {cache['misses']} misses ({rate}), "
            f"{cache['entries']} answers, {cache['bytes'] / 2**20:.1f} MB"
        )
