"""Questions to bigEVY: `ask` as a lilEVY node asks, `chat` as an OpenAI client does."""

from __future__ import annotations

from typing import Annotated

import typer

from bigevy.cli.client import Client, Unreachable, UrlOption
from bigevy.cli.output import console


def ask(
    question: Annotated[str, typer.Argument(help="The SMS a lilEVY node escalated.")],
    node_id: Annotated[str, typer.Option(help="Which node asks.")] = "cli",
    region: Annotated[str | None, typer.Option(help="Default: the node's enrolled one.")] = None,
    language: Annotated[str, typer.Option(help="The asker's language, e.g. sw.")] = "en",
    profile: Annotated[str | None, typer.Option(help="EVY prompt profile, e.g. sms.")] = None,
    segments: Annotated[int, typer.Option(min=1, max=10, help="SMS parts allowed.")] = 1,
    url: UrlOption = None,
) -> None:
    """Ask as a lilEVY node would: a grounded answer, its SMS, and the sources."""
    body: dict[str, object] = {
        "node_id": node_id,
        "message": question,
        "language": language,
        "max_sms_segments": segments,
    }
    if region:
        body["region"] = region
    if profile:
        body["profile"] = profile
    answer = Client(url).post("/v1/evy/query", json=body, timeout=300)
    if answer["triage"]["emergency"]:
        numbers = ", ".join(f"{n['number']} ({n['service']})" for n in answer["emergency_numbers"])
        console.print(
            f"[bold red]EMERGENCY ({answer['triage']['kind']})[/bold red] answered from the "
            f"knowledge base; numbers: {numbers or 'none found'}"
        )
    console.print(answer["answer"], markup=False)
    # .ci/run reads the line after `SMS (` as the SMS.
    console.print(
        f"\n[bold]SMS[/bold] ({answer['sms_segments']} part(s), {answer['sms_encoding']}):",
    )
    console.print(answer["sms"], markup=False, soft_wrap=True)
    for citation in answer["citations"]:
        console.print(f"  source: {citation['title']} ({citation['document_id']})", markup=False)


def chat(
    question: Annotated[str, typer.Argument(help="What to ask.")],
    model: Annotated[str | None, typer.Option(help="Model id (default model if omitted).")] = None,
    profile: Annotated[str | None, typer.Option(help="EVY prompt profile, e.g. sms.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="At most this many tokens.")] = None,
    url: UrlOption = None,
) -> None:
    """Ask bigEVY one question and stream the answer."""
    body: dict[str, object] = {
        "messages": [{"role": "user", "content": question}],
        "stream": True,
    }
    for key, value in (("model", model), ("profile", profile), ("max_tokens", max_tokens)):
        if value is not None:
            body[key] = value
    try:
        for event in Client(url).stream("/v1/chat/completions", body, read_timeout=300):
            for choice in event["choices"]:
                console.print(choice["delta"].get("content") or "", end="")
    except Unreachable as exc:
        console.print(f"[red]bigEVY is not reachable[/red]: {exc}")
        raise typer.Exit(1) from None
    console.print()
