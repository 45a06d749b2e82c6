"""`bigevy fleet simulate`: a simulated lilEVY fleet against a running bigEVY."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import console
from bigevy.cli.updates import parse_phases

if TYPE_CHECKING:
    from lilevy.simulator import SimulationReport

app = typer.Typer(help="Fleet-wide tools: a simulated lilEVY fleet.", no_args_is_help=True)


@app.command("simulate")
def fleet_simulate(
    nodes: Annotated[int, typer.Option(min=1, help="Simulated lilEVY nodes.")] = 10,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of load.")] = 60,
    heartbeat_interval: Annotated[float, typer.Option(min=0.1, help="Seconds.")] = 5.0,
    question_every: Annotated[
        float, typer.Option(min=0.1, help="Mean seconds between a node's questions.")
    ] = 60.0,
    region: Annotated[str, typer.Option(help="The nodes' region.")] = "KE",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Serve the fleet's lilEVY metrics for Prometheus on this port while it runs.",
        ),
    ] = None,
    rollout: Annotated[
        str | None,
        typer.Option(help="Roll this artifact out to the simulated fleet; report how it went."),
    ] = None,
    phases: Annotated[str, typer.Option(help="The rollout's phases.")] = "5%,25%,100%",
    fail_share: Annotated[
        float, typer.Option(min=0, max=1, help="Share of nodes whose self-test fails.")
    ] = 0.0,
    url: UrlOption = None,
) -> None:
    """Enrol N simulated nodes that heartbeat and escalate SMS questions; report the load
    (and, with --rollout, how a rollout to them went)."""
    from lilevy.simulator import Progress as SimProgress
    from lilevy.simulator import simulate

    api = Client(url)
    key = api.api_key
    if not key:
        console.print("[red]no API key[/red]: set BIGEVY_API_KEY to an admin key")
        raise typer.Exit(1)
    if metrics_port is not None:
        console.print(f"metrics: http://127.0.0.1:{metrics_port}/metrics while the fleet runs")
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=console
    ) as bar:
        task = bar.add_task("enrolling", total=nodes)

        def show(p: SimProgress) -> None:
            if p.phase == "running":
                text = (
                    f"running: {p.heartbeats} heartbeats, {p.escalations} answers, "
                    f"{p.failures} failures"
                )
            else:
                text = p.phase
            bar.update(task, description=text, completed=p.done, total=p.total or None)

        report = simulate(
            api.base_url,
            key,
            nodes,
            duration,
            heartbeat_interval_s=heartbeat_interval,
            question_every_s=question_every,
            region=region,
            on_progress=show,
            metrics_port=metrics_port,
            rollout_artifact=rollout,
            rollout_phases=parse_phases(phases),
            fail_share=fail_share,
        )
        bar.update(task, description="done", completed=1, total=1)
    _print_report(report)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _print_report(report: SimulationReport) -> None:
    console.print(
        f"{report.nodes} node(s) for {report.duration_s:.0f} s: "
        f"[bold]{report.heartbeats_per_s:.1f} heartbeats/s[/bold] sustained "
        f"({report.acknowledged_heartbeats} acknowledged)"
    )
    table = Table("kind", "ok", "failed", "queued", "p50 ms", "p95 ms", "p99 ms")
    for kind, stats in report.kinds.items():
        table.add_row(
            kind,
            str(stats.ok),
            str(stats.failed),
            str(stats.queued),
            _ms(stats.p(50)),
            _ms(stats.p(95)),
            _ms(stats.p(99)),
        )
    console.print(table)
    seen = ", ".join(f"{k}: {n}" for k, n in sorted(report.responses.items())) or "-"
    failed = ", ".join(f"{k}: {n}" for k, n in sorted(report.failures.items())) or "none"
    console.print(f"responses (every try): {seen}", soft_wrap=True)
    console.print(f"failed for good: {failed}", soft_wrap=True)
    colour = "red" if report.server_errors else "green"
    console.print(
        f"5xx: [{colour}]{report.server_errors}[/{colour}]   outbox depth at the end: "
        f"{report.outbox_depth}   dead letters: {report.dead_letters}"
    )
    if (r := report.rollout) is not None:
        settled = "-" if r.settled_after_s is None else f"{r.settled_after_s:.1f} s"
        console.print(
            f"rollout {r.rollout_id}: [bold]{r.state}[/bold] in phase {r.phase + 1} after "
            f"{settled}; {r.failing_nodes} node(s) set to fail; nodes beyond that phase "
            f"offered it: {r.offered_beyond}; {dict(r.counts)}",
            highlight=False,
        )
