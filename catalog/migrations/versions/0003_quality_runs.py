"""quality runs and per-rule results

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quality_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("executor", sa.String(length=16), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("overall_score", sa.Float(), nullable=True),
        sa.Column("failing_keys_path", sa.String(length=1024), nullable=True),
        sa.Column("gx_result", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_quality_runs_dataset_id_datasets"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["version_id"], ["dataset_versions.id"],
                                name=op.f("fk_quality_runs_version_id_dataset_versions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_runs")),
    )
    with op.batch_alter_table("quality_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quality_runs_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quality_runs_version_id"), ["version_id"], unique=False)
    op.create_table(
        "quality_rule_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("dimension", sa.String(length=8), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("element_identifier", sa.String(length=32), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("evaluated", sa.BigInteger(), nullable=False),
        sa.Column("failing", sa.BigInteger(), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("sample_keys", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["quality_runs.id"], name=op.f("fk_quality_rule_results_run_id_quality_runs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_rule_results")),
    )
    with op.batch_alter_table("quality_rule_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quality_rule_results_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_table("quality_rule_results")
    op.drop_table("quality_runs")
