"""indexes on the audit log's exception id and time: the metrics (services/metrics) read what
was done about the exceptions resolved in a period, and the retries of a period, without
scanning the whole log

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_entry_exception_id", "audit_entry", ["exception_id"])
    op.create_index("ix_audit_entry_at", "audit_entry", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_entry_at", table_name="audit_entry")
    op.drop_index("ix_audit_entry_exception_id", table_name="audit_entry")
