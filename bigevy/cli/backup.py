"""`bigevy backup`: bigEVY's state saved while it runs, and brought back onto an empty data dir.

Run on the server's host (like `bigevy db`): it reads and writes the data dir, the metadata
database and the backup location itself. `BIGEVY_BACKUP_PASSPHRASE` seals and opens the
signing key in each backup.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from bigevy.cli.output import ago, console
from bigevy.config import Settings

if TYPE_CHECKING:
    from bigevy.backups.service import Backups, Report

app = typer.Typer(help="Backups of bigEVY's state, and restoring one.", no_args_is_help=True)
LocationOption = Annotated[
    str | None,
    typer.Option("--to", "--from", help="A directory or s3://bucket/prefix (default: settings)."),
]


def _backups() -> Backups:
    from bigevy.backups.service import Backups  # LanceDB: only when a command runs

    return Backups(Settings())


@contextmanager
def _progress() -> Iterator[Report]:
    """A bar of bytes copied, named by the step it is in."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def report(step: str, copied: int) -> None:
            if step:
                bar.update(task, description=step)
            bar.advance(task, copied)

        yield report


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


@app.command("create")
def backup_create(to: LocationOption = None) -> None:
    """A consistent backup now, while bigEVY keeps serving and writing."""
    with _progress() as report:
        backup = _backups().create(to, report)
    console.print(
        f"backup {backup.id}: {backup.documents} documents (revision "
        f"{backup.knowledge_revision}), {backup.nodes} nodes, {backup.files} files, "
        f"{_mb(backup.bytes)} at {backup.location}",
        highlight=False,
    )


@app.command("list")
def backup_list(location: LocationOption = None) -> None:
    """Complete backups, newest first."""
    table = Table("id", "made", "documents", "revision", "nodes", "size", "schema")
    for b in _backups().list(location):
        table.add_row(
            b.id,
            ago(b.created_at),
            str(b.documents),
            str(b.knowledge_revision),
            str(b.nodes),
            _mb(b.bytes),
            b.schema_revision or "-",
        )
    console.print(table)


@app.command("verify")
def backup_verify(backup_id: str, location: LocationOption = None) -> None:
    """Check every file against the manifest, and the passphrase against the sealed keys."""
    with _progress() as report:
        problems = _backups().verify(backup_id, location, report)
    for problem in problems:
        console.print(f"[red]✗[/red] {problem}", highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print(f"backup {backup_id}: every file checks out, and the passphrase opens it")


@app.command("prune")
def backup_prune(
    location: LocationOption = None,
    keep_daily: Annotated[int | None, typer.Option(min=0, help="Days to keep one of.")] = None,
    keep_weekly: Annotated[int | None, typer.Option(min=0, help="Weeks before those.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Say what would go; delete nothing.")] = False,
) -> None:
    """Keep the newest backup of each of the last N days and M weeks; delete the rest."""
    gone = _backups().prune(location, keep_daily, keep_weekly, dry_run)
    verb = "would delete" if dry_run else "deleted"
    console.print(f"{verb} {len(gone)} backup(s): {', '.join(b.id for b in gone) or '-'}")


@app.command("restore")
def backup_restore(
    backup_id: str,
    location: LocationOption = None,
    force: Annotated[
        bool, typer.Option(help="Over a data dir that is not empty (it is kept beside).")
    ] = False,
) -> None:
    """Bring a backup back as this host's data dir (bigEVY stopped). Nodes keep syncing with
    deltas and keep their keys; alerts and rollouts go on."""
    with _progress() as report:
        backup = _backups().restore(backup_id, location, force, report)
    console.print(
        f"restored {backup.id} into {Settings().data_dir}: {backup.documents} documents, "
        f"{backup.nodes} nodes; start bigEVY with `bigevy up`",
        highlight=False,
    )
