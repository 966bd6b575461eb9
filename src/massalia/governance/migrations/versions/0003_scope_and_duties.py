"""Separation of duties and sessions: member approval, request revocation, per-user session epoch.

Revision ID: 0003_scope_and_duties
Revises: 0001_governance_initial
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_scope_and_duties"
down_revision = "0002_disclosure_releases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the member status, the request revocation and the session epoch columns."""
    # batch mode: SQLite cannot ALTER a table to add constrained columns in place.
    with op.batch_alter_table("gov_user") as batch:
        batch.add_column(sa.Column("session_epoch", sa.Integer, nullable=False, server_default="0"))
    with op.batch_alter_table("gov_project_member") as batch:
        # Existing members keep their access: they were added before member approval existed.
        batch.add_column(sa.Column("status", sa.String(16), nullable=False, server_default="active"))
        batch.add_column(sa.Column("approved_by", sa.String(128)))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True)))
    with op.batch_alter_table("gov_access_request") as batch:
        batch.add_column(sa.Column("revoked_by", sa.String(64)))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True)))
        batch.add_column(sa.Column("revoke_reason", sa.Text))


def downgrade() -> None:
    """Drop the columns added by :func:`upgrade`."""
    with op.batch_alter_table("gov_access_request") as batch:
        batch.drop_column("revoke_reason")
        batch.drop_column("revoked_at")
        batch.drop_column("revoked_by")
    with op.batch_alter_table("gov_project_member") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("approved_by")
        batch.drop_column("status")
    with op.batch_alter_table("gov_user") as batch:
        batch.drop_column("session_epoch")
