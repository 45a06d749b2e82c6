"""`bigevy analytics`: what the fleet asked and got over a period, as tables, JSON or charts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from bigevy.cli.client import Client, UrlOption
from bigevy.cli.output import console

app = typer.Typer(
    help="Escalations, questions, FAQ offload, nodes and alert delivery over a period.",
    no_args_is_help=True,
)

PeriodOption = Annotated[str, typer.Option(help="Hours or days ending now: 24h, 7d, 30d.")]
RegionOption = Annotated[str | None, typer.Option(help="One region (default: every region).")]
PlotOption = Annotated[
    Path | None, typer.Option(help="Also draw the report's charts into this folder.")
]
FormatOption = Annotated[str, typer.Option("--format", help="Charts as png or svg.")]
JsonOption = Annotated[bool, typer.Option("--json", help="The report as JSON, not tables.")]


def _report(
    path: str,
    period: str,
    region: str | None,
    url: str | None,
    **params: Any,
) -> dict[str, Any]:
    query = {"period": period, **params}
    if region:
        query["region"] = region
    return Client(url).get(f"/v1/analytics/{path}", params=query)


def _check_format(suffix: str) -> str:
    if suffix not in ("png", "svg"):
        raise typer.BadParameter("png or svg", param_hint="--format")
    return suffix


def _finish(
    sections: list[tuple[str, dict[str, Any]]],
    whole: dict[str, Any],
    as_json: bool,
    plot: Path | None,
    suffix: str,
) -> None:
    """Print the report (tables, or `whole` as JSON) and draw its charts."""
    if as_json:
        console.print_json(json.dumps(whole))
    else:
        for section, report in sections:
            SHOW[section](report)
    if plot is not None:
        from bigevy.analytics.charts import draw  # matplotlib loads only when charts are asked for

        for section, report in sections:
            for path in draw(section, report, plot, suffix):
                console.print(f"chart: {path}", markup=False)


def _show_escalations(r: dict[str, Any]) -> None:
    p50, p95 = r["latency_ms_p50"], r["latency_ms_p95"]
    latency = f", latency p50 {p50:.0f} ms, p95 {p95:.0f} ms" if p50 is not None else ""
    console.print(f"[bold]Escalations[/bold] ({_when(r)}): {r['total']}{latency}")
    table = Table("by", "counts")
    for name in ("regions", "outcomes", "answer_modes", "categories", "languages"):
        table.add_row(name.replace("_", " "), ", ".join(f"{k} {v}" for k, v in r[name].items()))
    console.print(table)
    per_day: dict[str, int] = {}
    for row in r["days"]:
        per_day[row["day"]] = per_day.get(row["day"], 0) + row["count"]
    if per_day:
        console.print("per day: " + ", ".join(f"{d} {n}" for d, n in per_day.items()))


def _show_questions(r: dict[str, Any]) -> None:
    what = "Questions nothing vetted answers" if r["unanswered_only"] else "Most asked questions"
    since = time.strftime("%Y-%m-%d", time.gmtime(r["kept_since"]))
    note = " (only the most asked wordings grouped)" if r["truncated"] else ""
    console.print(f"[bold]{what}[/bold] ({_when(r)}, texts kept since {since}){note}")
    table = Table("asked", "unanswered", "question", "also asked as")
    for g in r["groups"]:
        table.add_row(
            str(g["count"]), str(g["unanswered"]), g["question"], "; ".join(g["wordings"])
        )
    console.print(table)


def _show_offload(r: dict[str, Any]) -> None:
    console.print(f"[bold]FAQ offload[/bold] ({_when(r)}{_covered(r)})")
    table = Table("region", "SMS in", "FAQ answers", "escalations", "FAQ share")
    for row in r["regions"]:
        share = row["faq_share"]
        table.add_row(
            row["region"],
            str(row["sms_in"]),
            str(row["faq_answers"]),
            str(row["escalations"]),
            "-" if share is None else f"{share:.0%}",
        )
    console.print(table)


def _show_nodes(r: dict[str, Any]) -> None:
    console.print(f"[bold]Nodes[/bold] ({_when(r)}{_covered(r)})")
    table = Table("node", "region", "uptime", "battery min/avg/last", "SMS in/out", "escalated")
    for n in r["nodes"]:
        battery = "/".join(_num(n[f"battery_{k}"]) for k in ("min", "avg", "last"))
        uptime = "-" if n["uptime"] is None else f"{n['uptime']:.0%}"
        table.add_row(
            f"{n['name']} {n['node_id']}",
            n["region"],
            uptime,
            battery,
            f"{n['sms_in']}/{n['sms_out']}",
            str(n["escalations"]),
        )
    console.print(table)


def _show_alerts(r: dict[str, Any]) -> None:
    overall = r["delivery_s"]
    summary = f": p50 {overall['p50']:.1f}s, p95 {overall['p95']:.1f}s" if overall else ""
    console.print(f"[bold]Alert delivery[/bold] ({_when(r)}){summary}")
    table = Table("alert", "event", "severity", "reached", "acked", "to deliver p50/max")
    for a in r["alerts"]:
        d = a["delivery_s"]
        table.add_row(
            a["alert_id"],
            a["event"],
            a["severity"],
            f"{a['delivered']}/{a['nodes']}",
            str(a["acked"]),
            f"{d['p50']:.1f}s / {d['max']:.1f}s" if d else "-",
        )
    console.print(table)


SHOW = {
    "escalations": _show_escalations,
    "questions": _show_questions,
    "unanswered": _show_questions,
    "offload": _show_offload,
    "nodes": _show_nodes,
    "alerts": _show_alerts,
}


def _when(r: dict[str, Any]) -> str:
    return f"{r['period']['name']}, {r.get('region') or 'every region'}"


def _covered(r: dict[str, Any]) -> str:
    if r["covered_since"] > r["period"]["start"]:
        return ", heartbeats kept since " + time.strftime(
            "%Y-%m-%d %H:%M", time.gmtime(r["covered_since"])
        )
    return ""


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


@app.command("summary")
def analytics_summary(
    period: PeriodOption = "7d",
    region: RegionOption = None,
    limit: Annotated[int, typer.Option(help="Question groups listed.")] = 10,
    plot: PlotOption = None,
    suffix: FormatOption = "png",
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """Every report for the period, and with --plot every chart."""
    suffix = _check_format(suffix)
    r = _report("summary", period, region, url, limit=limit)
    sections = [
        ("escalations", r["escalations"]),
        ("questions", r["top_questions"]),
        ("unanswered", r["unanswered"]),
        ("offload", r["offload"]),
        ("nodes", r["nodes"]),
        ("alerts", r["alerts"]),
    ]
    _finish(sections, r, as_json, plot, suffix)


@app.command("questions")
def analytics_questions(
    period: PeriodOption = "7d",
    region: RegionOption = None,
    unanswered: Annotated[
        bool, typer.Option("--unanswered", help="Only what nothing vetted answers.")
    ] = False,
    limit: Annotated[int, typer.Option(help="Question groups listed.")] = 20,
    plot: PlotOption = None,
    suffix: FormatOption = "png",
    as_json: JsonOption = False,
    url: UrlOption = None,
) -> None:
    """The most asked questions, grouped by meaning (--unanswered: what to write next)."""
    suffix = _check_format(suffix)
    r = _report("questions", period, region, url, limit=limit, unanswered=str(unanswered).lower())
    _finish([("unanswered" if unanswered else "questions", r)], r, as_json, plot, suffix)


def _simple(section: str, doc: str) -> None:
    """A command for a report that takes only period and region."""

    def command(
        period: PeriodOption = "7d",
        region: RegionOption = None,
        plot: PlotOption = None,
        suffix: FormatOption = "png",
        as_json: JsonOption = False,
        url: UrlOption = None,
    ) -> None:
        suffix = _check_format(suffix)
        r = _report(section, period, region, url)
        _finish([(section, r)], r, as_json, plot, suffix)

    command.__doc__ = doc
    app.command(section)(command)


_simple("escalations", "Escalations per day by region, category, language; outcomes, modes.")
_simple("offload", "Per region: SMS received, answered from FAQ entries on nodes, escalated.")
_simple("nodes", "Per node: uptime, battery and SMS volume.")
_simple("alerts", "Alerts posted in the period: seconds to reach each node and its ack.")
