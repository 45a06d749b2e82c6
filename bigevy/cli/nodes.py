"""`bigevy nodes`: the lilEVY fleet, from enrolment tokens to each node's state."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import ago, console
from bigevy.config import Settings
from bigevy.ops.files import write_atomically

if TYPE_CHECKING:
    from lilevy.client import NodeDescription

app = typer.Typer(help="The lilEVY fleet: enrolment and node state.", no_args_is_help=True)


@app.command("token")
def nodes_token(
    region: Annotated[str | None, typer.Option(help="Pin the node to this region.")] = None,
    note: Annotated[str, typer.Option(help="Who or what the token is for.")] = "",
    expires_in: Annotated[int | None, typer.Option(help="Seconds (default a day).")] = None,
    url: UrlOption = None,
) -> None:
    """A one-time enrolment token for a new lilEVY node."""
    body = {"region": region, "note": note, "expires_in_s": expires_in}
    token = Client(url).post("/v1/enrollment-tokens", json=body)
    expires = time.ctime(token["expires_at"])
    console.print(f"enrolment token {token['id']} (one-time, expires {expires}):")
    console.print(token["token"], markup=False, soft_wrap=True)


@app.command("token-revoke")
def nodes_token_revoke(token_id: str, url: UrlOption = None) -> None:
    """An unused enrolment token stops working at once."""
    Client(url).post(f"/v1/enrollment-tokens/{token_id}/revoke")
    console.print(f"enrolment token {token_id} revoked", markup=False)


@app.command("list")
def nodes_list(
    state: Annotated[list[str] | None, typer.Option(help="online, stale, offline, ...")] = None,
    region: Annotated[list[str] | None, typer.Option()] = None,
    url: UrlOption = None,
) -> None:
    """The fleet: each node's state, last heartbeat and vital signs."""
    params = {"state": state or [], "region": region or [], "limit": 1000}
    page = Client(url).get("/v1/nodes", params=params)
    table = Table("node", "name", "region", "state", "last seen", "battery", "queue", "knowledge")
    for node in page["data"]:
        status = node["last_status"] or {}
        battery = status.get("battery_percent")
        table.add_row(
            node["id"],
            node["name"],
            node["region"],
            node["state"],
            ago(node["last_seen_at"]),
            "-" if battery is None else f"{battery:.0f}%",
            str(status.get("queue_depth", "-")),
            str(status.get("knowledge_revision") or "-"),
        )
    console.print(table)
    console.print(f"{page['total']} node(s)")


@app.command("show")
def nodes_show(node_id: str, url: UrlOption = None) -> None:
    """One node: what it said at enrolment, and its recent heartbeats."""
    node = Client(url).get(f"/v1/nodes/{node_id}")
    for field_name in ("id", "name", "region", "location", "phone_number", "hardware", "model"):
        console.print(f"{field_name:>14}: {node[field_name]}", markup=False)
    console.print(f"{'state':>14}: {node['state']} (last seen {ago(node['last_seen_at'])})")
    table = Table("received", "battery", "power", "sms in/out", "queue", "free MB", "links")
    for beat in node["heartbeats"]:
        battery = beat["battery_percent"]
        table.add_row(
            ago(beat["received_at"]),
            "-" if battery is None else f"{battery:.0f}%",
            beat["power_source"],
            f"{beat['sms_in']}/{beat['sms_out']}",
            str(beat["queue_depth"]),
            "-" if beat["free_storage_mb"] is None else f"{beat['free_storage_mb']:.0f}",
            ",".join(beat["connectivity"]) or "-",
        )
    console.print(table)


@app.command("subscribe")
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
    api, path = Client(url), f"/v1/nodes/{node_id}/subscription"
    if show:
        sub = api.get(path)
    else:
        body = {"categories": category, "regions": region, "languages": language}
        if budget_mb is not None:
            body["budget_mb"] = budget_mb
        sub = api.put(path, json=body)
    for name in ("categories", "regions", "languages"):
        console.print(f"{name:>11}: {', '.join(sub[name]) or 'all'}", markup=False)
    console.print(f"{'budget':>11}: {sub['budget_mb']:g} MiB", markup=False)
    shares = ", ".join(f"{k} {v:.0%}" for k, v in sub["shares"].items())
    console.print(f"{'shares':>11}: {shares}", markup=False)


@app.command("window")
def nodes_window(
    node_id: str,
    window: Annotated[
        str, typer.Argument(help="HH:MM-HH:MM in UTC (may wrap midnight), or 'any'.")
    ],
    url: UrlOption = None,
) -> None:
    """When updates may be offered to the node."""
    body = {"window": None if window == "any" else window}
    Client(url).put(f"/v1/nodes/{node_id}/maintenance-window", json=body)
    console.print(f"node {node_id}: updates {'any time' if window == 'any' else window + ' UTC'}")


@app.command("revoke")
def nodes_revoke(node_id: str, url: UrlOption = None) -> None:
    """The node and its keys stop working at once; its history is kept."""
    Client(url).post(f"/v1/nodes/{node_id}/revoke")
    console.print(f"node {node_id} revoked")


@app.command("enroll")
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
    from lilevy.client import NodeDescription
    from lilevy.errors import EdgeError

    description = NodeDescription(
        name=name, phone_number=phone, hardware=hardware, location=location
    )
    if region:
        description.region = region
    base = Client(url).base_url
    try:
        node_id, path, state = asyncio.run(_enroll(base, token, description, state_file))
    except EdgeError as exc:
        console.print(f"[red]enrolment failed[/red]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"node {node_id} enrolled; its key is in {path} (mode 0600)", soft_wrap=True)
    if state != "online":
        console.print(f"[red]{state}[/red]", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"node {node_id} is [green]online[/green] (first heartbeat acknowledged)")


async def _enroll(
    base: str, token: str, description: NodeDescription, state_file: Path | None
) -> tuple[str, Path, str]:
    """Enrol, save the node's id and key (mode 0600), heartbeat once: the node's id, where its
    key is, and the state the heartbeat reported (or why it failed)."""
    from lilevy.client import EdgeClient, HeartbeatReply, HeartbeatStatus
    from lilevy.errors import EdgeError

    async with EdgeClient(base) as edge:
        enrolled = await edge.enroll(token, description)
        state = {
            "node_id": enrolled.node_id,
            "node_key": enrolled.node_key,
            "base_url": base,
            "signing_public_key": enrolled.signing_public_key,
        }
        path = state_file or Settings().data_dir / "edge" / f"{enrolled.node_id}.json"
        write_atomically(path, (json.dumps(state, indent=2) + "\n").encode(), mode=0o600)
        try:
            reply = await edge.heartbeat(HeartbeatStatus(connectivity=["internet"]))
        except EdgeError as exc:
            return enrolled.node_id, path, f"its first heartbeat failed: {exc}"
        said = reply.state if isinstance(reply, HeartbeatReply) else "queued"
        return enrolled.node_id, path, said
