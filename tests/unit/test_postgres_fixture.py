"""The database fixtures themselves: a fresh database per test, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    func,
    insert,
    inspect,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from tests.support.postgres import database_url, find_pg_bin, postgres_url

FIXTURES = (database_url, postgres_url)  # pytest finds fixtures in the module namespace

metadata = MetaData()
nodes = Table(
    "nodes",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("region", String(32), nullable=False),
)


class Boom(Exception):
    pass


def test_fresh_database_transactions_and_rollback(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert inspect(engine).get_table_names() == []  # fresh and empty, every test
        metadata.create_all(engine)

        with engine.begin() as conn:
            conn.execute(
                insert(nodes),
                [
                    {"name": "lil-1", "region": "north"},
                    {"name": "lil-2", "region": "south"},
                    {"name": "lil-é", "region": "north"},  # UTF8 survives the round trip
                ],
            )

        # A failed transaction leaves nothing behind.
        with pytest.raises(Boom), engine.begin() as conn:
            conn.execute(insert(nodes), [{"name": "ghost", "region": "west"}])
            assert conn.execute(select(func.count()).select_from(nodes)).scalar_one() == 4
            raise Boom
        # A constraint violation mid-transaction rolls back the rows before it too.
        with pytest.raises(IntegrityError, match=r"(?i)unique"), engine.begin() as conn:
            conn.execute(insert(nodes), [{"name": "lil-3", "region": "east"}])
            conn.execute(insert(nodes), [{"name": "lil-1", "region": "east"}])

        with engine.connect() as conn:
            rows = conn.execute(select(nodes.c.name, nodes.c.region).order_by(nodes.c.id)).all()
            by_region = dict(
                conn.execute(select(nodes.c.region, func.count()).group_by(nodes.c.region)).all()
            )
        assert [tuple(r) for r in rows] == [
            ("lil-1", "north"),
            ("lil-2", "south"),
            ("lil-é", "north"),
        ]
        assert by_region == {"north": 2, "south": 1}
    finally:
        engine.dispose()


def test_backend_is_the_real_thing(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                assert "PostgreSQL" in conn.execute(text("SELECT version()")).scalar_one()
                assert (
                    conn.execute(text("SELECT current_database()")).scalar_one().startswith("test_")
                )
            else:
                assert engine.dialect.name == "sqlite"
                assert conn.execute(text("SELECT sqlite_version()")).scalar_one()
    finally:
        engine.dispose()


def test_postgres_url_is_the_shared_bigevy_database(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://")
    assert postgres_url.endswith("/bigevy")
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == "bigevy"
            settings = {
                name: conn.execute(text(f"SHOW {name}")).scalar_one()
                for name in ("fsync", "synchronous_commit", "full_page_writes", "server_encoding")
            }
        assert settings == {
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "server_encoding": "UTF8",
        }
    finally:
        engine.dispose()


def test_find_pg_bin_finds_initdb_and_pg_ctl() -> None:
    bindir = find_pg_bin()
    assert bindir is not None, "install `postgresql` (see .ci/run)"
    assert (bindir / "initdb").exists()
    assert (bindir / "pg_ctl").exists()
