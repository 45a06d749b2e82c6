"""The metadata database in a backup: SQLite through its online backup API (a consistent
copy while writers keep writing), PostgreSQL through `pg_dump` (one snapshot transaction)."""

from __future__ import annotations

import glob
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from bigevy.errors import Conflict, Unavailable
from bigevy.fleet.db import make_engine


def kind(url: str) -> str:
    return "sqlite" if make_url(url).get_backend_name() == "sqlite" else "postgresql"


def dump(url: str, dest: Path) -> None:
    """A consistent copy of the database at `url` in the file `dest`."""
    if kind(url) == "sqlite":
        source = sqlite3.connect(make_url(url).database or "", timeout=30)
        target = sqlite3.connect(dest)
        try:
            with target:
                source.backup(target)  # pages copied in steps; writers wait only per step
        finally:
            source.close()
            target.close()
        return
    _run(
        [_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
         f"--file={dest}", _libpq(url)]
    )  # fmt: skip


def load(url: str, source: Path) -> None:
    """The dump `source` into the empty database at `url`, all of it or nothing."""
    if kind(url) == "sqlite":
        database = Path(make_url(url).database or "")
        database.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, database)
        return
    _run(
        [_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction",
         "--exit-on-error", f"--dbname={_libpq(url)}", str(source)]
    )  # fmt: skip


def is_empty(url: str) -> bool:
    """No bigEVY tables in it (a SQLite file that does not exist is empty)."""
    if kind(url) == "sqlite" and not Path(make_url(url).database or "").exists():
        return True
    engine = make_engine(url)
    try:
        return not inspect(engine).get_table_names()
    finally:
        engine.dispose()


def clear(url: str) -> None:
    """Drop every table (a forced restore over a used database)."""
    if kind(url) == "sqlite":
        Path(make_url(url).database or "").unlink(missing_ok=True)
        return
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        engine.dispose()


def _libpq(url: str) -> str:
    """SQLAlchemy's URL as libpq reads it (no `+psycopg` driver suffix)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise Unavailable(f"{name} is not installed: PostgreSQL's client tools are needed")
    return found


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        # pg tools print the URL's password nowhere, but the command holds it: not logged.
        raise Conflict(f"{Path(command[0]).name} failed: {done.stderr.strip()[-500:]}")
