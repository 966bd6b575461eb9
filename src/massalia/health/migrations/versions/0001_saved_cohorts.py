"""Saved cohort definitions of a project, and their immutable versions.

Revision ID: 0001_saved_cohorts
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_saved_cohorts"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the saved definitions and their versions."""
    op.create_table(
        "health_saved_cohort",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, nullable=False, index=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("latest_version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "health_saved_cohort_version",
        sa.Column("cohort_id", sa.Integer, sa.ForeignKey("health_saved_cohort.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the tables created by :func:`upgrade`."""
    op.drop_table("health_saved_cohort_version")
    op.drop_table("health_saved_cohort")
