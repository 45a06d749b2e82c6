"""Alerts are named by their origin as well as CAP's (sender, identifier).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 02:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: How 0002's unnamed unique constraint is named: by PostgreSQL, and (for batch mode's copy of
#: the table) on SQLite through the naming convention below.
POSTGRES_NAME = "alerts_sender_identifier_key"
NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("alerts", naming_convention=NAMING) as batch:
        # Alerts from before were posted by operators or connectors alike; operator is the
        # origin that can still update or cancel them.
        batch.add_column(
            sa.Column("origin", sa.String(length=120), nullable=False, server_default="operator")
        )
        batch.drop_constraint(
            POSTGRES_NAME if postgres else "uq_alerts_sender_identifier", type_="unique"
        )
        batch.create_unique_constraint(
            "uq_alert_origin_identity", ["origin", "sender", "identifier"]
        )


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_constraint("uq_alert_origin_identity", type_="unique")
        batch.create_unique_constraint(POSTGRES_NAME, ["sender", "identifier"])
        batch.drop_column("origin")
