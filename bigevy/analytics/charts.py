"""Charts of analytics reports: what a person would rather look at than read, drawn by
matplotlib from the reports' JSON, for `bigevy analytics … --plot DIR` (PNG or SVG files) and
for the console (SVG, served from the same place: no chart library runs in the browser)."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

Report = dict[str, Any]


def _figure(height: float) -> tuple[Figure, Axes]:
    # A Figure of its own, not pyplot's: no GUI backend, no global state to close.
    figure = Figure(figsize=(9, height))
    return figure, figure.subplots()


def _title(report: Report, what: str) -> str:
    where = report.get("region") or "every region"
    return f"{what}, {report['period']['name']} ({where})"


def escalations_per_day(report: Report) -> Figure | None:
    """Stacked bars: escalations per day, one colour per region."""
    if not report["days"]:
        return None
    per_region: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in report["days"]:
        per_region[row["region"]][row["day"]] += row["count"]
    days = sorted({row["day"] for row in report["days"]})
    fig, ax = _figure(4)
    bottom = [0] * len(days)
    for region, counts in sorted(per_region.items()):
        heights = [counts.get(d, 0) for d in days]
        ax.bar(days, heights, bottom=bottom, label=region)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_ylabel("escalations")
    ax.set_title(_title(report, "Escalations per day"))
    ax.legend(fontsize="small")
    ax.tick_params(axis="x", labelrotation=45)
    return fig


def outcomes(report: Report) -> Figure | None:
    """Horizontal bars: how escalations were answered."""
    return _bars(report["outcomes"], _title(report, "Outcomes"), "escalations")


def questions(report: Report) -> Figure | None:
    """Horizontal bars: the most asked (or unanswered) questions, most asked on top."""
    groups = report["groups"]
    what = "Questions nothing vetted answers" if report["unanswered_only"] else "Most asked"
    counts = {_short(g["question"]): g["count"] for g in reversed(groups)}
    return _bars(counts, _title(report, what), "times asked", sort=False)


def offload(report: Report) -> Figure | None:
    """Bars: per region, the share of questions FAQ entries answered on the nodes."""
    shares = {r["region"]: 100 * r["faq_share"] for r in report["regions"] if r["faq_share"]}
    return _bars(shares, _title(report, "Answered from FAQ on the node"), "% of questions")


def nodes(report: Report) -> Figure | None:
    """Bars per node: uptime and average battery (%)."""
    rows = report["nodes"]
    if not rows:
        return None
    fig, ax = _figure(max(3, 0.3 * len(rows)))
    labels = [f"{n['name']} ({n['region']})" for n in rows]
    ys = range(len(rows))
    ax.barh([y - 0.2 for y in ys], [100 * (n["uptime"] or 0) for n in rows], 0.4, label="uptime")
    ax.barh([y + 0.2 for y in ys], [n["battery_avg"] or 0 for n in rows], 0.4, label="battery")
    ax.set_yticks(list(ys), labels, fontsize="small")
    ax.set_xlabel("%")
    ax.set_xlim(0, 100)
    ax.set_title(_title(report, "Nodes"))
    ax.legend(fontsize="small")
    return fig


def alert_delivery(report: Report) -> Figure | None:
    """Bars per alert: seconds from posting to the median and slowest node reached."""
    rows = [a for a in report["alerts"] if a["delivery_s"]]
    if not rows:
        return None
    fig, ax = _figure(max(3, 0.3 * len(rows)))
    labels = [f"{a['event']} {a['alert_id'][-6:]}" for a in rows]
    ys = range(len(rows))
    ax.barh([y - 0.2 for y in ys], [a["delivery_s"]["p50"] for a in rows], 0.4, label="median")
    ax.barh([y + 0.2 for y in ys], [a["delivery_s"]["max"] for a in rows], 0.4, label="slowest")
    ax.set_yticks(list(ys), labels, fontsize="small")
    ax.set_xlabel("seconds to reach a node")
    ax.set_title(_title(report, "Alert delivery"))
    ax.legend(fontsize="small")
    return fig


def _bars(values: dict[str, float], title: str, unit: str, sort: bool = True) -> Figure | None:
    if not values:
        return None
    items = sorted(values.items(), key=lambda kv: kv[1]) if sort else list(values.items())
    fig, ax = _figure(max(3, 0.35 * len(items)))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set_xlabel(unit)
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize="small")
    return fig


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


#: Each section's charts: (file name, how it is drawn).
CHARTS: dict[str, list[tuple[str, Callable[[Report], Figure | None]]]] = {
    "escalations": [("escalations-per-day", escalations_per_day), ("outcomes", outcomes)],
    "questions": [("most-asked", questions)],
    "unanswered": [("unanswered", questions)],
    "offload": [("faq-offload", offload)],
    "nodes": [("nodes", nodes)],
    "alerts": [("alert-delivery", alert_delivery)],
}


def figures(section: str, report: Report) -> list[tuple[str, Figure]]:
    """The section's charts that have something to show, by name."""
    drawn = [(name, chart(report)) for name, chart in CHARTS[section]]
    return [(name, figure) for name, figure in drawn if figure is not None]


def draw(section: str, report: Report, folder: Path, suffix: str) -> list[Path]:
    """The section's charts written into `folder` as `<name>.<suffix>`; a chart with nothing
    to show is not written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures(section, report):
        path = folder / f"{name}.{suffix}"
        figure.tight_layout()
        figure.savefig(path)
        written.append(path)
    return written


def svg(figure: Figure) -> bytes:
    """`figure` as an SVG document (its text drawn as paths: nothing in it is markup a
    browser would run)."""
    out = io.BytesIO()
    figure.tight_layout()
    figure.savefig(out, format="svg")
    return out.getvalue()


def heartbeats(history: list[Report], name: str) -> Figure | None:
    """A node's recent heartbeats over time: battery (%) and the SMS it received."""
    if not history:
        return None
    rows = sorted(history, key=lambda h: h.get("measured_at") or h["received_at"])
    times = [datetime.fromtimestamp(h.get("measured_at") or h["received_at"], UTC) for h in rows]
    fig, ax = _figure(3)
    battery = [h["battery_percent"] for h in rows]
    ax.plot(times, [b if b is not None else float("nan") for b in battery], label="battery %")
    ax.set_ylim(0, 100)
    ax.set_ylabel("battery %")
    sms = ax.twinx()
    sms.plot(times, [h["sms_in"] for h in rows], color="tab:orange", label="SMS received")
    sms.set_ylabel("SMS received")
    ax.set_title(f"Heartbeats of {name} (UTC)")
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    fig.legend(fontsize="small", loc="upper left")
    return fig
