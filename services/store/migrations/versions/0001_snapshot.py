"""snapshot records, per-system refresh state, exceptions with history

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot_record",
        sa.Column("system", sa.String(), primary_key=True),
        sa.Column("kind", sa.String(), primary_key=True),
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("customer_id", sa.String(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_snapshot_record_customer_id", "snapshot_record", ["customer_id"])
    op.create_table(
        "system_state",
        sa.Column("system", sa.String(), primary_key=True),
        sa.Column("source", sa.String(), nullable=False, server_default=""),
        sa.Column("refreshed_at", sa.DateTime(), nullable=True),
        sa.Column("full_refreshed_at", sa.DateTime(), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("record_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "sync_exception",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("customer_id", sa.String(), nullable=True),
        sa.Column("object_id", sa.String(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_sync_exception_rule", "sync_exception", ["rule"])
    op.create_index("ix_sync_exception_customer_id", "sync_exception", ["customer_id"])
    op.create_index("ix_sync_exception_closed_at", "sync_exception", ["closed_at"])


def downgrade() -> None:
    op.drop_table("sync_exception")
    op.drop_table("system_state")
    op.drop_table("snapshot_record")
