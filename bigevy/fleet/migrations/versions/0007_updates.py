"""Artifacts and staged rollouts (replacing the unused rollouts table of 0001), maintenance
windows, the model version of each escalation, restores and scheduled backup runs.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("rollouts")
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("hardware", sa.JSON(), nullable=False),
        sa.Column("signed", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=32)),
        sa.UniqueConstraint("kind", "version", name="uq_artifact_kind_version"),
    )
    op.create_index("ix_artifacts_sha256", "artifacts", ["sha256"])
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column(
            "artifact_id", sa.String(length=32), sa.ForeignKey("artifacts.id"), nullable=False
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("phases", sa.JSON(), nullable=False),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("pause_above", sa.Float(), nullable=False),
        sa.Column("soak_s", sa.Float(), nullable=False),
        sa.Column("auto_rollback", sa.Boolean(), nullable=False),
        sa.Column("accepted_failures", sa.Integer(), nullable=False),
        sa.Column("phase_started_at", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=32)),
    )
    op.create_index("ix_rollouts_artifact_id", "rollouts", ["artifact_id"])
    op.create_index("ix_rollouts_state", "rollouts", ["state"])
    op.create_table(
        "rollout_nodes",
        sa.Column(
            "rollout_id", sa.String(length=32), sa.ForeignKey("rollouts.id"), primary_key=True
        ),
        sa.Column("node_id", sa.String(length=40), sa.ForeignKey("nodes.id"), primary_key=True),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("offered_at", sa.Float()),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )
    op.create_index("ix_rollout_nodes_node_status", "rollout_nodes", ["node_id", "status"])
    op.create_table(
        "rollout_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.String(length=32), sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
    )
    op.create_index("ix_rollout_events_rollout_id", "rollout_events", ["rollout_id"])
    op.create_table(
        "restores",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("backup_id", sa.String(length=64), nullable=False),
        sa.Column("backup_created_at", sa.Float(), nullable=False),
        sa.Column("restored_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "backup_runs",
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float()),
        sa.Column("backup_id", sa.String(length=64)),
        sa.Column("error", sa.String(length=500)),
    )
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("maintenance_window", sa.String(length=11)))
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("model_version", sa.String(length=64)))


def downgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("model_version")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("maintenance_window")
    op.drop_table("backup_runs")
    op.drop_table("restores")
    op.drop_table("rollout_events")
    op.drop_table("rollout_nodes")
    op.drop_table("rollouts")
    op.drop_table("artifacts")
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("regions", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
    )
