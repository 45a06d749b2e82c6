"""What analytics reads: an escalation's outcome, answer mode, category and (redacted)
question; the SMS a node answered from its FAQ entries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 08:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: escalations recorded before this revision read as `unknown`.
    op.add_column("escalations", sa.Column("outcome", sa.String(length=24), nullable=True))
    op.add_column("escalations", sa.Column("answer_mode", sa.String(length=16), nullable=True))
    op.add_column("escalations", sa.Column("category", sa.String(length=32), nullable=True))
    op.add_column("escalations", sa.Column("question", sa.Text(), nullable=True))
    op.create_index("ix_escalations_region_time", "escalations", ["region", "received_at"])
    op.add_column("heartbeats", sa.Column("faq_answers", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("heartbeats") as batch:
        batch.drop_column("faq_answers")
    op.drop_index("ix_escalations_region_time", table_name="escalations")
    with op.batch_alter_table("escalations") as batch:
        for column in ("question", "category", "answer_mode", "outcome"):
            batch.drop_column(column)
