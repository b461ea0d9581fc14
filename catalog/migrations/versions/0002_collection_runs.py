"""collection runs (归集 attempts)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collection_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source_kind", sa.String(length=16), nullable=False),
        sa.Column("source_name", sa.String(length=512), nullable=True),
        sa.Column("file_format", sa.String(length=16), nullable=True),
        sa.Column("row_count", sa.BigInteger(), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("delivered_by_id", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], name=op.f("fk_collection_runs_dataset_id_datasets"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["delivered_by_id"], ["users.id"],
                                name=op.f("fk_collection_runs_delivered_by_id_users")),
        sa.ForeignKeyConstraint(["version_id"], ["dataset_versions.id"],
                                name=op.f("fk_collection_runs_version_id_dataset_versions")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection_runs")),
    )
    with op.batch_alter_table("collection_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_collection_runs_dataset_id"), ["dataset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("collection_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_collection_runs_dataset_id"))
    op.drop_table("collection_runs")
