"""`bigevy db`: the metadata database, on the server itself."""

from __future__ import annotations

import typer

from bigevy.cli.output import console
from bigevy.config import Settings

app = typer.Typer(help="The metadata database.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade() -> None:
    """Apply the metadata database's migrations (bigevy up does this too)."""
    from bigevy.fleet.db import current_revision, make_engine, upgrade

    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.metadata_url)
    before = current_revision(engine)
    upgrade(engine)
    console.print(f"metadata database at revision {current_revision(engine)} (was {before})")
