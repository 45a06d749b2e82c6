"""`bigevy review`: knowledge that nodes contributed, accepted or rejected by an operator."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import ago, console

app = typer.Typer(help="Knowledge contributed by nodes, awaiting review.", no_args_is_help=True)


@app.command("list")
def review_list(
    status: Annotated[str, typer.Option(help="pending|accepted|rejected")] = "pending",
    url: UrlOption = None,
) -> None:
    """Contributions in the queue, oldest first."""
    reply = Client(url).get("/v1/contributions", params={"status": status})
    table = Table("id", "node", "category", "title", "received", "text")
    for c in reply["data"]:
        text = c["text"] if len(c["text"]) <= 60 else c["text"][:57] + "..."
        table.add_row(c["id"], c["node_id"], c["category"], c["title"], ago(c["received_at"]), text)
    console.print(table)


@app.command("accept")
def review_accept(
    contribution_id: str,
    reason: Annotated[str, typer.Option(help="Note for the record.")] = "",
    region: Annotated[str | None, typer.Option(help="Default: the node's region.")] = None,
    title: Annotated[str | None, typer.Option(help="Accept it with this title.")] = None,
    text: Annotated[str | None, typer.Option(help="Accept it with this text.")] = None,
    url: UrlOption = None,
) -> None:
    """Put a contribution into the knowledge base (searchable, and synced to nodes), as the
    node wrote it or edited (`--title`, `--text`)."""
    body = {"reason": reason, "region": region, "title": title, "text": text}
    done = Client(url).post(f"/v1/contributions/{contribution_id}/accept", json=body)
    console.print(f"accepted as document {done['document_id']}", markup=False)


@app.command("reject")
def review_reject(
    contribution_id: str,
    reason: Annotated[str, typer.Option(help="Why; kept with it.")] = "",
    url: UrlOption = None,
) -> None:
    """Keep a contribution out of the knowledge base."""
    done = Client(url).post(f"/v1/contributions/{contribution_id}/reject", json={"reason": reason})
    console.print(f"rejected {done['id']}", markup=False)
