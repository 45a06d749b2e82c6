"""`bigevy artifacts` and `bigevy rollouts`: what the fleet installs, and how it gets there."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import ago, console, progress_bar

artifacts = typer.Typer(help="Files for the fleet: models, software, config.", no_args_is_help=True)
rollouts = typer.Typer(help="Staged rollouts of artifacts to the fleet.", no_args_is_help=True)
CHUNK = 1024 * 1024


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


@artifacts.command("add")
def artifacts_add(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    kind: Annotated[str, typer.Option(help="model | software | config")],
    version: Annotated[str, typer.Option(help="Unique within its kind.")],
    hardware: Annotated[
        list[str] | None, typer.Option(help="Repeat; the nodes' hardware it runs on (any).")
    ] = None,
    url: UrlOption = None,
) -> None:
    """Upload FILE (streamed; bigEVY checks it against the sha256 computed here) and sign it."""
    size = file.stat().st_size
    digest = hashlib.sha256()
    with progress_bar() as bar:
        task = bar.add_task("hashing", total=size)
        with file.open("rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                bar.advance(task, len(chunk))

        def body() -> Iterator[bytes]:
            with file.open("rb") as f:
                while chunk := f.read(CHUNK):
                    bar.advance(upload, len(chunk))
                    yield chunk

        upload = bar.add_task("uploading", total=size)
        params = {
            "kind": kind,
            "version": version,
            "name": file.name,
            "hardware": hardware or [],
            "sha256": digest.hexdigest(),
        }
        artifact = Client(url).post(
            "/v1/artifacts",
            params=params,
            content=body(),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            timeout=None,
        )
    console.print(
        f"artifact {artifact['id']}: {artifact['kind']} {artifact['version']}, "
        f"{_mb(artifact['size'])}, sha256 {artifact['sha256'][:12]}…, signed",
        markup=False,
    )


@artifacts.command("list")
def artifacts_list(url: UrlOption = None) -> None:
    """Every artifact, newest first."""
    table = Table("id", "kind", "version", "size", "hardware", "rollouts", "added")
    for a in Client(url).get("/v1/artifacts")["data"]:
        table.add_row(
            a["id"],
            a["kind"],
            a["version"],
            _mb(a["size"]),
            ", ".join(a["hardware"]) or "any",
            str(a["rollouts"]),
            ago(a["created_at"]),
        )
    console.print(table)


@artifacts.command("show")
def artifacts_show(artifact_id: str, url: UrlOption = None) -> None:
    """One artifact and the document nodes verify."""
    artifact = Client(url).get(f"/v1/artifacts/{artifact_id}")
    console.print_json(json.dumps(artifact))


@artifacts.command("delete")
def artifacts_delete(artifact_id: str, url: UrlOption = None) -> None:
    """Delete an artifact no rollout uses, and its file."""
    Client(url).delete(f"/v1/artifacts/{artifact_id}")
    console.print(f"artifact {artifact_id} deleted", markup=False)


def parse_target(to: list[str]) -> dict[str, object]:
    """`--to region=a,b --to hardware=rpi4 --to nodes=n1,n2`, or `--to all`."""
    if to == ["all"]:
        return {"all": True}
    target: dict[str, object] = {}
    for item in to:
        key, _, values = item.partition("=")
        field = {"region": "regions", "regions": "regions", "hardware": "hardware"}.get(
            key, "nodes" if key in ("node", "nodes") else None
        )
        if field is None or not values:
            raise typer.BadParameter(f"{item!r}: use region=…, hardware=…, nodes=… or all")
        target[field] = [v for v in values.split(",") if v]
    return target


def parse_phases(phases: str) -> list[float]:
    try:
        return [float(p.strip().rstrip("%")) for p in phases.split(",") if p.strip()]
    except ValueError:
        raise typer.BadParameter(f"{phases!r}: percents like 5%,25%,100%") from None


@rollouts.command("create")
def rollouts_create(
    artifact_id: str,
    to: Annotated[list[str], typer.Option(help="region=…, hardware=…, nodes=… (all hold), or all")],
    phases: Annotated[str, typer.Option(help="Cumulative percents, ending at 100%.")] = (
        "5%,25%,100%"
    ),
    pause_above: Annotated[
        float | None, typer.Option(help="Pause past this failed share, e.g. 0.02.")
    ] = None,
    soak: Annotated[float | None, typer.Option(help="Seconds a phase may wait on nodes.")] = None,
    auto_rollback: Annotated[bool, typer.Option(help="Roll back by itself on a pause.")] = False,
    url: UrlOption = None,
) -> None:
    """Offer an artifact to the nodes named, phase by phase."""
    body = {
        "artifact_id": artifact_id,
        "to": parse_target(to),
        "phases": parse_phases(phases),
        "pause_above": pause_above,
        "soak_s": soak,
        "auto_rollback": auto_rollback,
    }
    _print_rollout(Client(url).post("/v1/rollouts", json=body))


@rollouts.command("list")
def rollouts_list(
    state: Annotated[str | None, typer.Option(help="active, paused, completed, ...")] = None,
    url: UrlOption = None,
) -> None:
    """Rollouts, newest first, with where each stands."""
    params = {"state": state} if state else {}
    table = Table("id", "artifact", "state", "phase", "healthy", "failed", "nodes", "updated")
    for r in Client(url).get("/v1/rollouts", params=params)["data"]:
        table.add_row(
            r["id"],
            f"{r['kind']} {r['version']}",
            r["state"],
            f"{r['phase'] + 1}/{len(r['phases'])} ({r['phases'][r['phase']]:g}%)",
            str(r["counts"]["healthy"]),
            str(r["counts"]["failed"]),
            f"{r['reached']}/{r['nodes']}",
            ago(r["updated_at"]),
        )
    console.print(table)


@rollouts.command("show")
def rollouts_show(rollout_id: str, url: UrlOption = None) -> None:
    """A rollout: its counts, and every event with who made it."""
    _print_rollout(Client(url).get(f"/v1/rollouts/{rollout_id}"))


@rollouts.command("nodes")
def rollouts_nodes(
    rollout_id: str,
    status: Annotated[str | None, typer.Option(help="failed, healthy, pending, ...")] = None,
    url: UrlOption = None,
) -> None:
    """Each node of a rollout: its phase, status and what it last said."""
    params = {"status": status} if status else {}
    table = Table("node", "phase", "status", "detail", "updated")
    for n in Client(url).get(f"/v1/rollouts/{rollout_id}/nodes", params=params)["data"]:
        phase = str(n["phase"] + 1)
        table.add_row(n["node_id"], phase, n["status"], n["detail"], ago(n["updated_at"]))
    console.print(table)


def _command(action: str) -> None:
    def run(
        rollout_id: str,
        reason: Annotated[str, typer.Option(help="Recorded with the change.")] = "",
        url: UrlOption = None,
    ) -> None:
        body = {"reason": reason}
        _print_rollout(Client(url).post(f"/v1/rollouts/{rollout_id}/{action}", json=body))

    run.__doc__ = {
        "pause": "Stop offering the artifact; nodes keep what they have.",
        "resume": "Go on, accepting the failures seen so far.",
        "abort": "End the rollout; nodes keep what they installed.",
        "rollback": "Take the artifact back from every node that installed it.",
    }[action]
    rollouts.command(action)(run)


for _action in ("pause", "resume", "abort", "rollback"):
    _command(_action)


def _print_rollout(r: dict) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in r["counts"].items() if v) or "no nodes"
    phase = f"phase {r['phase'] + 1} of {len(r['phases'])} ({r['phases'][r['phase']]:g}%)"
    console.print(
        f"rollout {r['id']}: {r['kind']} {r['version']} [bold]{r['state']}[/bold], {phase}; "
        f"{r['reached']} of {r['nodes']} nodes reached; {counts}",
        highlight=False,
    )
    if r["reason"]:
        console.print(f"reason: {r['reason']}", markup=False)
    for e in r.get("events", []):
        line = f"  {ago(e['at']):>8}  {e['actor']:<14} {e['event']:<12} {e['detail']}"
        console.print(line, markup=False)
