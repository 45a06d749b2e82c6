"""`bigevy alerts`: emergency alerts to the fleet."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import console

app = typer.Typer(help="Emergency alerts to the fleet.", no_args_is_help=True)


@app.command("send")
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
    alert = Client(url).post("/v1/alerts", json=body)
    console.print(
        f"alert {alert['id']} version {alert['version']}: reaches {alert['nodes']} nodes",
        markup=False,
    )


@app.command("list")
def alerts_list(
    all_: Annotated[bool, typer.Option("--all", help="Also cancelled and expired.")] = False,
    url: UrlOption = None,
) -> None:
    """Alerts and how many of the nodes they reach acknowledged them."""
    params = {"include_ended": str(all_).lower()}
    rows = Client(url).get("/v1/alerts", params=params)["data"]
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


@app.command("cancel")
def alerts_cancel(alert_id: str, url: UrlOption = None) -> None:
    """Withdraw an alert: nodes that show it take it down."""
    alert = Client(url).post(f"/v1/alerts/{alert_id}/cancel")
    console.print(f"alert {alert['id']} cancelled (version {alert['version']})", markup=False)
