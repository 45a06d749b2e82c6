"""`bigevy`: the operator's command line. Every command talks to a running bigEVY or to Ray."""

from __future__ import annotations

import typer

from bigevy.cli import (
    alerts,
    analytics,
    ask,
    backup,
    connectors,
    dashboards,
    db,
    faq,
    ingest,
    keys,
    knowledge,
    nodes,
    review,
    server,
    simulate,
    sync,
    updates,
)
from bigevy.cli.client import ReportingGroup

app = typer.Typer(
    cls=ReportingGroup, help="bigEVY, the central node of the EVY network.", no_args_is_help=True
)

app.command("up")(server.up)
app.command("down")(server.down)
app.command("ray-env")(server.ray_env)
app.command("status")(server.status)
app.command("ingest")(ingest.ingest)
app.command("ask")(ask.ask)
app.command("chat")(ask.chat)

app.add_typer(knowledge.app, name="knowledge")
app.add_typer(keys.app, name="keys")
app.add_typer(nodes.app, name="nodes")
app.add_typer(db.app, name="db")
app.add_typer(sync.app, name="sync")
app.add_typer(alerts.app, name="alerts")
app.add_typer(connectors.app, name="connectors")
app.add_typer(review.app, name="review")
app.add_typer(faq.app, name="faq")
app.add_typer(simulate.app, name="fleet")
app.add_typer(dashboards.app, name="dashboards")
app.add_typer(analytics.app, name="analytics")
app.add_typer(updates.artifacts, name="artifacts")
app.add_typer(updates.rollouts, name="rollouts")
app.add_typer(backup.app, name="backup")

if __name__ == "__main__":
    app()
