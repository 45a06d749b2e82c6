"""`bigevy sync`: knowledge sync to the edge, node by node."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import console

app = typer.Typer(help="Knowledge sync to the edge: where each node stands.", no_args_is_help=True)


@app.command("status")
def sync_status(
    node_id: Annotated[str | None, typer.Argument(help="One node; default every node.")] = None,
    url: UrlOption = None,
) -> None:
    """Each node's acknowledged knowledge revision, lag, pending package and last error."""
    api = Client(url)
    if node_id:
        states = [api.get(f"/v1/sync/nodes/{node_id}")]
    else:
        states = api.get("/v1/sync/nodes")["data"]
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
