"""Alembic's entry point: migrations run against the URL `bigevy.fleet.db` configured."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from bigevy.fleet.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "bigevy.fleet.db.upgrade sets sqlalchemy.url"

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite
        )
        with context.begin_transaction():
            context.run_migrations()
