"""`bigevy knowledge`: the knowledge base's state, upkeep, search and documents."""

from __future__ import annotations

import textwrap
import time
from typing import Annotated

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import console

app = typer.Typer(help="The knowledge base: its state and upkeep.", no_args_is_help=True)

CategoryOption = Annotated[list[str] | None, typer.Option("--category", help="Repeatable.")]
SourceOption = Annotated[list[str] | None, typer.Option("--source", help="Repeatable.")]
RegionOption = Annotated[list[str] | None, typer.Option("--region", help="Repeatable.")]
LanguageOption = Annotated[list[str] | None, typer.Option("--language", help="Repeatable.")]


def _print_knowledge(status: dict) -> None:
    console.print(
        f"{status['documents']} documents ({status['tombstones']} deleted), "
        f"{status['chunks']} chunks, revision {status['revision']}, "
        f"embedded by {status['embedding_model']} ({status['dimensions']}-d)"
    )
    if status.get("reembedding"):
        progress = status["reembedding"]
        console.print(
            f"[yellow]re-embedding[/yellow]: {progress['done']} documents done, "
            f"{progress['pending']} pending (searches cover the done ones)"
        )
    if status.get("other_models"):
        console.print(
            f"earlier models' chunks kept until then: {', '.join(status['other_models'])}"
        )
    table = Table("index", "type", "columns", "indexed rows", "unindexed rows")
    for index in status["indexes"]:
        table.add_row(
            index["name"],
            index["type"],
            ", ".join(index["columns"]),
            str(index["indexed_rows"]),
            str(index["unindexed_rows"]),
        )
    console.print(table)


@app.command("status")
def knowledge_status(url: UrlOption = None) -> None:
    """Documents, chunks, revision, embedding model and index coverage."""
    _print_knowledge(Client(url).get("/v1/knowledge/status"))


@app.command("maintain")
def knowledge_maintain(url: UrlOption = None) -> None:
    """Build the vector index if due and fold new rows into the indexes now."""
    with console.status("optimizing the knowledge base"):
        result = Client(url).post("/v1/knowledge/maintain", timeout=3600)
    console.print("done: " + ", ".join(result["done"]))
    _print_knowledge(result["status"])


@app.command("search")
def knowledge_search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    mode: Annotated[str, typer.Option(help="hybrid, vector or keyword.")] = "hybrid",
    top_k: Annotated[int, typer.Option(help="Hits (1-100).")] = 5,
    category: CategoryOption = None,
    source: SourceOption = None,
    region: RegionOption = None,
    language: LanguageOption = None,
    url: UrlOption = None,
) -> None:
    """Search the knowledge base as answers do: each hit's scores, document and passage."""
    body = {
        "query": query,
        "mode": mode,
        "top_k": top_k,
        "categories": category or [],
        "sources": source or [],
        "regions": region or [],
        "languages": language or [],
    }
    found = Client(url).post("/v1/rag/search", json=body, timeout=60)
    table = Table("#", "score", "similarity", "document", "title", "passage")
    for rank, hit in enumerate(found["hits"], 1):
        similarity = hit["similarity"]
        table.add_row(
            str(rank),
            f"{hit['score']:.3f}",
            "-" if similarity is None else f"{similarity:.3f}",
            hit["citation"]["document_id"],
            hit["citation"]["title"],
            textwrap.shorten(hit["text"], 80, placeholder="..."),
        )
    console.print(table)


@app.command("list")
def knowledge_list(
    category: CategoryOption = None,
    source: SourceOption = None,
    region: RegionOption = None,
    language: LanguageOption = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    url: UrlOption = None,
) -> None:
    """Documents (not deleted), filtered, a page at a time."""
    params: dict[str, object] = {
        "category": category or [],
        "source": source or [],
        "region": region or [],
        "language": language or [],
        "offset": offset,
        "limit": limit,
    }
    page = Client(url).get("/v1/knowledge/documents", params=params, timeout=60)
    table = Table("id", "title", "category", "source", "region", "language", "version")
    for doc in page["data"]:
        table.add_row(
            doc["id"],
            doc["title"],
            doc["category"],
            doc["source"],
            doc["region"],
            doc["language"],
            str(doc["version"]),
        )
    console.print(table)
    shown = f"{offset + 1}-{offset + len(page['data'])}" if page["data"] else "none"
    console.print(f"{shown} of {page['total']}")


@app.command("show")
def knowledge_show(
    document_id: Annotated[str, typer.Argument(help="The document's id.")],
    url: UrlOption = None,
) -> None:
    """One document: its fields, version, revision and text."""
    doc = Client(url).get(f"/v1/knowledge/documents/{document_id}")
    for name in ("id", "title", "category", "source", "region", "language", "priority", "url"):
        console.print(f"[bold]{name}[/bold]: {doc.get(name) or '-'}", highlight=False)
    console.print(
        f"[bold]version[/bold] {doc['version']}, [bold]revision[/bold] {doc['revision']}, "
        f"updated {time.ctime(doc['updated_at'])}",
        highlight=False,
    )
    console.print()
    console.print(doc["text"], markup=False)


@app.command("delete")
def knowledge_delete(
    document_id: Annotated[str, typer.Argument(help="The document's id.")],
    url: UrlOption = None,
) -> None:
    """Take a document out of search; a tombstone with a new revision tells the nodes."""
    result = Client(url).delete(f"/v1/knowledge/documents/{document_id}", timeout=60)
    console.print(
        f"{result['id']}: {result['status']} (version {result['version']}, "
        f"revision {result['revision']})",
        markup=False,
    )
