"""`bigevy connectors`: the data sources fetched on schedules."""

from __future__ import annotations

import time

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import ago, console

app = typer.Typer(help="Data sources fetched on schedules.", no_args_is_help=True)


@app.command("status")
def connectors_status(url: UrlOption = None) -> None:
    """Each source's health, last success and next fetch."""
    rows = Client(url).get("/v1/connectors")
    table = Table("source", "kind", "status", "last success", "next", "items", "reason")
    for h in rows:
        table.add_row(
            h["name"],
            h["kind"],
            h["status"],
            ago(h["last_success"]),
            time.strftime("%H:%M:%S", time.localtime(h["next_due"])),
            str(h["items_seen"]),
            h["reason"] or "-",
        )
    console.print(table)
