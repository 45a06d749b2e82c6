"""`bigevy dashboards`: bigEVY's Grafana dashboards (`bigevy/ops/dashboards.py`), pushed to a
Grafana through its HTTP API or written as JSON files for Grafana's file provisioning."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import niquests
import typer
from grafana_client import GrafanaApi
from grafana_client.client import GrafanaException
from rich.table import Table

from bigevy.cli.output import console
from bigevy.ops.dashboards import DASHBOARDS
from bigevy.ops.files import write_atomically

app = typer.Typer(
    help="Grafana dashboards for bigEVY: push them to a Grafana, or write their JSON.",
    no_args_is_help=True,
)


class GrafanaFailed(Exception):
    """Grafana refused a call, or did not answer; the message is the one line to print."""


def dashboard_json(dashboard: dict[str, Any]) -> str:
    """The file form: stable key order, so a regenerated file differs only where the code did."""
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


@app.command("write")
def write(
    directory: Annotated[Path, typer.Argument(help="Where to write <uid>.json files.")],
) -> None:
    """Write each dashboard's JSON model (refreshes monitoring/grafana/dashboards)."""
    for uid, build in DASHBOARDS.items():
        path = directory / f"{uid}.json"
        write_atomically(path, dashboard_json(build()).encode())
        console.print(f"wrote {path}")


@app.command("push")
def push(
    url: Annotated[str, typer.Option("--url", envvar="GRAFANA_URL", help="Grafana's base URL.")],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="GRAFANA_TOKEN",
            help="A Grafana service account token with the Editor role.",
        ),
    ],
    folder: Annotated[str, typer.Option("--folder", help="Folder title.")] = "bigEVY",
) -> None:
    """Create or update the dashboards in a Grafana folder (made if missing), over what is there."""
    grafana = GrafanaApi.from_url(url, credential=token)
    try:
        folder_uid = ensure_folder(grafana, folder)
        saved = [upsert(grafana, build(), folder_uid) for build in DASHBOARDS.values()]
    except GrafanaFailed as exc:
        console.print(f"[red]{exc}[/red]", soft_wrap=True, highlight=False)
        raise typer.Exit(1) from None
    table = Table("uid", "title", "url", "version", title=f"Grafana folder {folder}")
    for dashboard, reply in saved:
        table.add_row(
            reply["uid"], dashboard["title"], _public_url(url, reply["url"]), str(reply["version"])
        )
    console.print(table)


def ensure_folder(grafana: GrafanaApi, title: str) -> str:
    """The uid of the top-level folder titled `title`, created when there is none."""
    found = _call(grafana, grafana.search.search_dashboards, query=title, type_="dash-folder")
    for item in found:
        # The search matches substrings and nested folders too: only an exact top-level one.
        if item.get("title") == title and not item.get("folderUid"):
            return item["uid"]
    return _call(grafana, grafana.folder.create_folder, title)["uid"]


def upsert(
    grafana: GrafanaApi, dashboard: dict[str, Any], folder_uid: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Save `dashboard` by its uid, replacing whatever version Grafana holds (`overwrite`):
    the code is the source of truth, edits made in Grafana's UI are not kept."""
    body = {
        "dashboard": dashboard,
        "folderUid": folder_uid,
        "overwrite": True,
        "message": "bigevy dashboards push",
    }
    return dashboard, _call(grafana, grafana.dashboard.update_dashboard, body)


def _call(grafana: GrafanaApi, method: Any, *args: Any, **kwargs: Any) -> Any:
    """`method`'s reply; Grafana's errors, and no answer at all, as one `GrafanaFailed` line."""
    where = grafana.url
    try:
        return method(*args, **kwargs)
    except GrafanaException as exc:
        if not exc.status_code:  # a timeout or a broken connection: no reply
            raise GrafanaFailed(f"Grafana is not reachable at {where}: {exc.message}") from None
        raise GrafanaFailed(f"Grafana at {where}: {exc.status_code} {_reason(exc)}") from None
    except niquests.exceptions.RequestException as exc:
        raise GrafanaFailed(f"Grafana is not reachable at {where}: {_cause(exc)}") from None


def _cause(exc: Exception) -> str:
    """What went wrong under urllib3's retry wrapper ("Connection refused"), without the
    connection object's repr that urllib3 puts first."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return re.sub(r"^<[^>]*>: ", "", str(reason or exc))


def _reason(exc: GrafanaException) -> str:
    """Grafana's own message (`{"message": ...}`); a hint for the refusals operators meet."""
    reply = exc.response
    message = reply.get("message") if isinstance(reply, dict) else None
    message = message or exc.message
    if exc.status_code == 401:
        return f"{message}: check --token (a Grafana service account token)"
    if exc.status_code == 412 and isinstance(reply, dict) and reply.get("status"):
        return f"{message} ({reply['status']})"
    return message


def _public_url(base: str, path: str) -> str:
    """Grafana's reply `url` (a path, with any sub-path Grafana serves under) on its host,
    without credentials a URL may carry."""
    parts = urlsplit(base)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{path}"
