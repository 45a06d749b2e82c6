"""`bigevy faq`: FAQ entries built from frequent escalations."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import console

app = typer.Typer(
    help="FAQ entries built from frequent escalations, shipped to their region's nodes.",
    no_args_is_help=True,
)


@app.command("list")
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
    reply = Client(url).get("/v1/faq", params=params)
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


@app.command("show")
def faq_show(entry_id: str, url: UrlOption = None) -> None:
    """One entry, with the SMS nodes answer it with."""
    e = Client(url).get(f"/v1/faq/{entry_id}")
    state = "published" if e["published"] else "not published"
    if e["awaiting_review"]:
        state = "awaiting review"
    console.print(
        f"{e['question']}  ({e['region']}, {e['language']}, asked {e['count']}x, {state})",
        markup=False,
    )
    console.print(e["answer"] or "(no answer: withdrawn, or not backed by sources)", markup=False)
    console.print(f"sources: {', '.join(e['sources']) or '-'}", markup=False)


@app.command("withdraw")
def faq_withdraw(entry_id: str, url: UrlOption = None) -> None:
    """Take an entry back from the nodes now (rebuilt from its sources when next asked)."""
    Client(url).post(f"/v1/faq/{entry_id}/withdraw")
    console.print(f"withdrawn {entry_id}", markup=False)


@app.command("approve")
def faq_approve(entry_id: str, url: UrlOption = None) -> None:
    """Approve an entry's answer as it is now (`faq.review`): it ships to the region's nodes."""
    e = Client(url).post(f"/v1/faq/{entry_id}/approve")
    state = "published" if e["published"] else "approved (ships once among the most asked)"
    console.print(f"{entry_id}: {state}", markup=False)
