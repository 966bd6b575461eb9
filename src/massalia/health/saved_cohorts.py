"""Saved cohort definitions of a project: save, list, read, new immutable versions, share with its members.

A researcher building a cohort in the portal saves it under a project; each change is a new **version**,
never an edit: a version keeps its definition (Massalia JSON) and that definition's hash, the one a
project's scope and a generated cohort are compared with, so a count or an extract can always name the
exact definition it ran. A saved definition is its author's until they **share** it: then every member of
the project may read it and add versions. Nobody outside the project sees it, whatever they know of its id.

The rights are health's (``rights.yaml``): ``health.definition.save`` (save, new version, share) and
``health.definition.read`` (list, read), both for members of the project named in the call, both audited:
every decision is written to the transparency log before the metadata database is touched. A definition
holds no personal data, but who saved, shared or read which cohort definition of a project is the project's
own trail.

The tables (``health_saved_cohort``, ``health_saved_cohort_version``) live in the platform metadata database
beside governance's, with health's own Alembic history (version table ``health_alembic_version``).

Examples
--------
>>> saved = save_definition(caller, home.metadata_url, 3, "Ovary, women", definition)  # doctest: +SKIP
>>> saved.latest_version, saved.versions[0].definition_hash == definition.definition_hash()  # doctest: +SKIP
(1, True)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, create_engine, func, or_, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from massalia.governance import AccessDenied, Caller, InvalidRequest, NotFound, Principal
from massalia.governance.schema import Migrations
from massalia.governance.store import row_id
from massalia.health.cohorts.definition import CohortDefinition

VERSION_TABLE = "health_alembic_version"
MIGRATIONS = Migrations(Path(__file__).with_name("migrations"), VERSION_TABLE)
"""Health's own Alembic history in the metadata database."""

SAVE, READ = "health.definition.save", "health.definition.read"
MAX_NAME = 200
MAX_NOTE = 2000
MAX_PAGE = 500
SORTS: tuple[str, ...] = ("updated_at", "created_at", "name", "id")


class HealthBase(DeclarativeBase):
    """Declarative base of health's metadata tables (apart from governance's)."""


class SavedCohortRow(HealthBase):
    """A saved definition: its project, name, owner, whether it is shared, and its newest version."""

    __tablename__ = "health_saved_cohort"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME), nullable=False)
    owner: Mapped[str] = mapped_column(String(128), nullable=False)
    shared: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    latest_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SavedVersionRow(HealthBase):
    """One immutable version: the definition as saved, its hash, who saved it, when and why."""

    __tablename__ = "health_saved_cohort_version"

    cohort_id: Mapped[int] = mapped_column(ForeignKey("health_saved_cohort.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[str] = mapped_column(Text, nullable=False)
    definition_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), nullable=False)


@dataclass(frozen=True)
class SavedVersion:
    """A version as read back (``definition`` only when it was asked for)."""

    version: int
    definition_hash: str
    created_by: str
    created_at: dt.datetime
    note: str | None
    definition: dict[str, Any] | None = None


@dataclass(frozen=True)
class SavedCohort:
    """A saved definition as read back, with its versions (newest last) when they were asked for."""

    id: int
    project_id: int
    name: str
    owner: str
    shared: bool
    latest_version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    versions: tuple[SavedVersion, ...] = ()


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite gives naive UTC back


def _saved(row: SavedCohortRow, versions: tuple[SavedVersion, ...] = ()) -> SavedCohort:
    return SavedCohort(row.id, row.project_id, row.name, row.owner, row.shared, row.latest_version,
                       _utc(row.created_at), _utc(row.updated_at), versions)  # fmt: skip


def _version(row: SavedVersionRow, *, with_definition: bool) -> SavedVersion:
    definition = json.loads(row.definition) if with_definition else None
    return SavedVersion(row.version, row.definition_hash, row.created_by, _utc(row.created_at), row.note, definition)


@contextmanager
def _session(metadata_url: str) -> Iterator[Session]:
    """A transaction on the metadata database, health's tables brought to their newest migration first."""
    engine = create_engine(metadata_url)
    try:
        MIGRATIONS.upgrade(engine)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    finally:
        engine.dispose()


def _text(value: str | None, name: str, bound: int, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > bound:
        raise InvalidRequest(f"{name} must be 1 to {bound} characters")
    if not value.replace("\n", " ").isprintable():
        raise InvalidRequest(f"{name} must be printable text")
    return value.strip()


def _audit_detail(channel: str | None, **resource: Any) -> dict[str, Any]:
    return {"resource": resource, **({"channel": channel} if channel else {})}


def _visible(session: Session, principal: Principal, project_id: int, cohort_id: int) -> SavedCohortRow:
    """The saved definition if the caller may see it (theirs, or shared); otherwise ``NotFound``, as if absent."""
    row = session.get(SavedCohortRow, row_id(cohort_id, "saved cohort"))
    if row is None or row.project_id != project_id or not (row.shared or row.owner == principal.subject):
        raise NotFound(f"No saved cohort {cohort_id} in project {project_id}.")
    return row


def _add_version(
    session: Session, row: SavedCohortRow, definition: CohortDefinition, principal: Principal, note: str | None
) -> None:
    now = dt.datetime.now(dt.UTC)
    version = row.latest_version + 1
    row.latest_version, row.updated_at = version, now
    session.add(SavedVersionRow(cohort_id=row.id, version=version, definition=definition.to_json(),
                                definition_hash=definition.definition_hash(), note=note,
                                created_by=principal.subject, created_at=now))  # fmt: skip


def save_definition(
    caller: Caller,
    metadata_url: str,
    project_id: int,
    name: str,
    definition: CohortDefinition,
    *,
    note: str | None = None,
) -> SavedCohort:
    """Save ``definition`` as version 1 of a new saved cohort of the project, private to its author.

    Checked and audited first (``health.definition.save``: members of the project).
    """
    principal = caller.principal
    project_id = row_id(project_id, "project")
    name_text, note_text = _text(name, "name", MAX_NAME, required=True), _text(note, "note", MAX_NOTE)
    caller.authorize(SAVE, project_id=project_id,
                  detail=_audit_detail(caller.channel, operation="save", name=name_text,
                                       definition_hash=definition.definition_hash()))  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    with _session(metadata_url) as session:
        row = SavedCohortRow(project_id=project_id, name=name_text, owner=principal.subject, shared=False,
                             latest_version=0, created_at=now, updated_at=now)  # fmt: skip
        session.add(row)
        session.flush()
        _add_version(session, row, definition, principal, note_text)
        return _saved(row, tuple(_versions(session, row.id, with_definition=False)))


def add_version(
    caller: Caller,
    metadata_url: str,
    project_id: int,
    cohort_id: int,
    definition: CohortDefinition,
    *,
    note: str | None = None,
) -> tuple[SavedCohort, bool]:
    """A new version of a saved cohort (its author's, or one shared with the project); earlier ones never change.

    Returns the saved cohort and whether a version was added: a definition identical to the newest version
    (same hash) adds none.
    """
    principal = caller.principal
    project_id, cohort_id = row_id(project_id, "project"), row_id(cohort_id, "saved cohort")
    note_text = _text(note, "note", MAX_NOTE)
    caller.authorize(SAVE, project_id=project_id,
                  detail=_audit_detail(caller.channel, operation="version", saved_cohort_id=cohort_id,
                                       definition_hash=definition.definition_hash()))  # fmt: skip
    with _session(metadata_url) as session:
        row = _visible(session, principal, project_id, cohort_id)
        newest = session.get(SavedVersionRow, (row.id, row.latest_version))
        added = newest is None or newest.definition_hash != definition.definition_hash()
        if added:
            _add_version(session, row, definition, principal, note_text)
        return _saved(row, tuple(_versions(session, row.id, with_definition=False))), added


def share_definition(
    caller: Caller,
    metadata_url: str,
    project_id: int,
    cohort_id: int,
    shared: bool,
) -> SavedCohort:
    """Share a saved cohort with the project's members, or take it back (its author only)."""
    gov, principal = caller.governance, caller.principal
    project_id, cohort_id = row_id(project_id, "project"), row_id(cohort_id, "saved cohort")
    caller.authorize(SAVE, project_id=project_id,
                  detail=_audit_detail(caller.channel, operation="share", saved_cohort_id=cohort_id,
                                       shared=bool(shared)))  # fmt: skip
    with _session(metadata_url) as session:
        row = _visible(session, principal, project_id, cohort_id)
        if row.owner != principal.subject:
            reason = "only the author of a saved cohort shares it or takes it back"
            gov.audit(principal, SAVE, decision="denied", denied_because=reason, project_id=project_id,
                      **_audit_detail(caller.channel, operation="share", saved_cohort_id=cohort_id))  # fmt: skip
            raise AccessDenied(SAVE, reason)
        row.shared, row.updated_at = bool(shared), dt.datetime.now(dt.UTC)
        return _saved(row)


def _versions(session: Session, cohort_id: int, *, with_definition: bool) -> list[SavedVersion]:
    rows = session.scalars(
        select(SavedVersionRow).where(SavedVersionRow.cohort_id == cohort_id).order_by(SavedVersionRow.version)
    )
    return [_version(row, with_definition=with_definition) for row in rows]


def list_definitions(
    caller: Caller,
    metadata_url: str,
    project_id: int,
    *,
    sort: str = "updated_at",
    descending: bool = True,
    offset: int = 0,
    limit: int = 50,
) -> tuple[list[SavedCohort], int]:
    """One page of the project's saved cohorts the caller sees (theirs and the shared ones), and how many."""
    principal = caller.principal
    project_id = row_id(project_id, "project")
    if sort not in SORTS:
        raise InvalidRequest(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= 10**6:
        raise InvalidRequest(f"limit must be 1 to {MAX_PAGE} and offset 0 to 1000000")
    caller.authorize(READ, project_id=project_id, detail=_audit_detail(caller.channel, operation="list"))
    visible = (SavedCohortRow.project_id == project_id) & or_(
        SavedCohortRow.shared.is_(True), SavedCohortRow.owner == principal.subject
    )
    column = getattr(SavedCohortRow, sort)
    order = [column.desc(), SavedCohortRow.id.desc()] if descending else [column.asc(), SavedCohortRow.id.asc()]
    with _session(metadata_url) as session:
        total = int(session.scalar(select(func.count(SavedCohortRow.id)).where(visible)) or 0)
        rows = session.scalars(select(SavedCohortRow).where(visible).order_by(*order).offset(offset).limit(limit))
        return [_saved(row) for row in rows], total


def get_definition(
    caller: Caller,
    metadata_url: str,
    project_id: int,
    cohort_id: int,
    *,
    version: int | None = None,
) -> tuple[SavedCohort, SavedVersion]:
    """A saved cohort with its versions' history, and one version's definition (default: the newest)."""
    principal = caller.principal
    project_id, cohort_id = row_id(project_id, "project"), row_id(cohort_id, "saved cohort")
    if version is not None:
        version = row_id(version, "version")
    caller.authorize(READ, project_id=project_id,
                  detail=_audit_detail(caller.channel, operation="read", saved_cohort_id=cohort_id,
                                       version=version))  # fmt: skip
    with _session(metadata_url) as session:
        row = _visible(session, principal, project_id, cohort_id)
        chosen = session.get(SavedVersionRow, (row.id, version or row.latest_version))
        if chosen is None:
            raise NotFound(f"No version {version} of saved cohort {cohort_id}.")
        history = tuple(_versions(session, row.id, with_definition=False))
        return _saved(row, history), _version(chosen, with_definition=True)
