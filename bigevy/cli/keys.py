"""`bigevy keys`: API keys."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import ago, console
from bigevy.cli.server import first_admin_key
from bigevy.config import Settings

app = typer.Typer(help="API keys: create, list, rotate, revoke.", no_args_is_help=True)


@app.command("bootstrap")
def keys_bootstrap() -> None:
    """On the server, without bigEVY running: the first admin key (for `serve deploy` users;
    `bigevy up` does this itself). Does nothing when an admin key exists."""
    settings = Settings()
    with console.status("preparing the metadata database"):
        key = first_admin_key(settings)
    if key is None:
        console.print("an admin key exists already; `bigevy keys create admin` makes another")
        return
    console.print(f"first admin key (shown once; saved to {settings.admin_key_file}):")
    console.print(key, markup=False, soft_wrap=True)


@app.command("create")
def keys_create(
    role: Annotated[str, typer.Argument(help="admin, operator, reader or node")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    node: Annotated[str | None, typer.Option(help="The node a node key acts as.")] = None,
    expires_in: Annotated[int | None, typer.Option(help="Seconds until it expires.")] = None,
    url: UrlOption = None,
) -> None:
    """A new API key; it is shown once."""
    body = {"role": role, "name": name, "node_id": node, "expires_in_s": expires_in}
    created = Client(url).post("/v1/keys", json=body)
    console.print(f"{created['role']} key {created['id']} (shown once):")
    console.print(created["key"], markup=False, soft_wrap=True)


@app.command("list")
def keys_list(url: UrlOption = None) -> None:
    """Every key with its role and state (never the secret)."""
    data = Client(url).get("/v1/keys")["data"]
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
            ago(key["created_at"]),
            ago(key["last_used_at"]),
            state,
        )
    console.print(table)


@app.command("revoke")
def keys_revoke(key_id: str, url: UrlOption = None) -> None:
    """The key stops working at once."""
    Client(url).post(f"/v1/keys/{key_id}/revoke")
    console.print(f"key {key_id} revoked")


@app.command("rotate")
def keys_rotate(key_id: str, url: UrlOption = None) -> None:
    """A new key with the same role; the old one is revoked at once."""
    created = Client(url).post(f"/v1/keys/{key_id}/rotate")
    console.print(f"key {key_id} revoked; its replacement {created['id']} (shown once):")
    console.print(created["key"], markup=False, soft_wrap=True)
