"""The open-data catalog's tables in the platform metadata database, and their Alembic history.

Organizations and their members (producers, with a capacity: ``admin``, ``editor`` or ``member``), groups
(themes), datasets, resources, every publication of a dataset as an immutable version (the whole package
document and its SHA-256), and the registry of datastore tables (which warehouse table holds which resource).
The warehouse tables themselves live in the engine (:mod:`massalia.opendata.datastore`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from massalia.governance.schema import Migrations

VERSION_TABLE = "opendata_alembic_version"
MIGRATIONS = Migrations(Path(__file__).with_name("migrations"), VERSION_TABLE)
"""Open data's own Alembic history in the metadata database."""


class OpenDataBase(DeclarativeBase):
    """Declarative base of open data's metadata tables (apart from governance's and health's)."""


class OrganizationRow(OpenDataBase):
    """A producer: a public body or company publishing datasets."""

    __tablename__ = "opendata_organization"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class MemberRow(OpenDataBase):
    """A platform user's capacity in an organization (``admin`` and ``editor`` publish; ``member`` reads)."""

    __tablename__ = "opendata_member"

    organization_id: Mapped[str] = mapped_column(ForeignKey("opendata_organization.id"), primary_key=True)
    username: Mapped[str] = mapped_column(String(128), primary_key=True)
    capacity: Mapped[str] = mapped_column(String(16), nullable=False)


class GroupRow(OpenDataBase):
    """A theme datasets are filed under (CKAN's groups)."""

    __tablename__ = "opendata_group"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    title: Mapped[str] = mapped_column(String(500), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class DatasetRow(OpenDataBase):
    """A dataset's current state: its unique name, organization, state and metadata (JSON), newest version."""

    __tablename__ = "opendata_dataset"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("opendata_organization.id"), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    fields: Mapped[str] = mapped_column(Text, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    creator: Mapped[str] = mapped_column(String(128), nullable=False)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    modified: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ResourceRow(OpenDataBase):
    """A file or URL of a dataset: uploaded files are kept by content hash, so earlier versions stay readable."""

    __tablename__ = "opendata_resource"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("opendata_dataset.id"), nullable=False, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    fields: Mapped[str] = mapped_column(Text, nullable=False)
    url_type: Mapped[str | None] = mapped_column(String(16))
    sha256: Mapped[str | None] = mapped_column(String(64))
    size: Mapped[int | None] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(255))
    datastore_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    modified: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class VersionRow(OpenDataBase):
    """One publication of a dataset: the package document as published, its hash, who and when; never changed."""

    __tablename__ = "opendata_dataset_version"

    dataset_id: Mapped[str] = mapped_column(ForeignKey("opendata_dataset.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    published_by: Mapped[str] = mapped_column(String(128), nullable=False)
    published_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    operation: Mapped[str] = mapped_column(String(32), nullable=False)


class DatastoreRow(OpenDataBase):
    """Which warehouse table holds a resource's rows, its fields (JSON) and row count."""

    __tablename__ = "opendata_datastore"

    resource_id: Mapped[str] = mapped_column(ForeignKey("opendata_resource.id"), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    fields: Mapped[str] = mapped_column(Text, nullable=False)
    primary_key: Mapped[str] = mapped_column(Text, nullable=False, default="[]")
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    loaded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
