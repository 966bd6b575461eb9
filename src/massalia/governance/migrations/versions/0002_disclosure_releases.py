"""Disclosure control: stored noisy releases (one per normalized query) and per-user privacy charges.

Revision ID: 0002_disclosure_releases
Revises: 0001_governance_initial
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_disclosure_releases"
down_revision = "0001_governance_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the release store and the privacy-budget ledger."""
    op.create_table(
        "gov_disclosure_release",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("query_key", sa.String(64), nullable=False, unique=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("released", sa.Text, nullable=False),
        sa.Column("micro_epsilon", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "gov_disclosure_charge",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("subject", sa.String(128), nullable=False, index=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("gov_disclosure_release.id")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("micro_epsilon", sa.Integer, nullable=False),
        sa.Column("result_fingerprint", sa.String(64)),
        sa.Column("charged_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    """Drop the disclosure tables."""
    op.drop_table("gov_disclosure_charge")
    op.drop_table("gov_disclosure_release")
