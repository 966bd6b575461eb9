"""The open-data catalog: organizations, members, groups, datasets, resources, versions, datastore tables.

Revision ID: 0001_opendata_catalog
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_opendata_catalog"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the catalog's tables."""
    op.create_table(
        "opendata_organization",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("state", sa.String(16), nullable=False, server_default="active"),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "opendata_member",
        sa.Column("organization_id", sa.String(36), sa.ForeignKey("opendata_organization.id"), primary_key=True),
        sa.Column("username", sa.String(128), primary_key=True),
        sa.Column("capacity", sa.String(16), nullable=False),
    )
    op.create_table(
        "opendata_group",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("title", sa.String(500), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "opendata_dataset",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column(
            "organization_id", sa.String(36), sa.ForeignKey("opendata_organization.id"), nullable=False, index=True
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("creator", sa.String(128), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "opendata_resource",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("opendata_dataset.id"), nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("url_type", sa.String(16)),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size", sa.Integer),
        sa.Column("filename", sa.String(255)),
        sa.Column("datastore_active", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "opendata_dataset_version",
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("opendata_dataset.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("published_by", sa.String(128), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
    )
    op.create_table(
        "opendata_datastore",
        sa.Column("resource_id", sa.String(36), sa.ForeignKey("opendata_resource.id"), primary_key=True),
        sa.Column("table_name", sa.String(63), nullable=False, unique=True),
        sa.Column("fields", sa.Text, nullable=False),
        sa.Column("primary_key", sa.Text, nullable=False, server_default="[]"),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the tables created by :func:`upgrade`."""
    for table in (
        "opendata_datastore",
        "opendata_dataset_version",
        "opendata_resource",
        "opendata_dataset",
        "opendata_group",
        "opendata_member",
        "opendata_organization",
    ):
        op.drop_table(table)
