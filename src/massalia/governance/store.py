"""The governance service's store: its metadata database, its settings, and the rows it reads back.

:class:`GovernanceStore` is the base of the governance service's parts (:mod:`~massalia.governance.auditing`,
:mod:`~massalia.governance.authorization`, :mod:`~massalia.governance.accounts`, :mod:`~massalia.governance.tokens`,
:mod:`~massalia.governance.projects`, :mod:`~massalia.governance.access_requests`), which
:class:`massalia.governance.service.Governance` puts together.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Self, SupportsIndex, SupportsInt, TypeVar, overload

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.orm import Session, sessionmaker

from massalia.governance.model import (
    AccessRequest,
    InvalidRequest,
    NotFound,
    Principal,
    Project,
    ProjectScope,
    Role,
)
from massalia.governance.rights import Rights, load_rights
from massalia.governance.tables import MemberRow, ProjectRow, RequestRow, UserRow

# A network service audits decisions on unauthenticated calls at a bounded rate (a token bucket): a burst,
# then one entry per refill period; the entries skipped in between are counted in the next one written.
ANONYMOUS_AUDIT_BURST = 20
ANONYMOUS_AUDIT_REFILL_S = 10.0

MAX_ROW_ID = 2**63 - 1

T = TypeVar("T")

_REQUEST_READS: ContextVar[dict[tuple[Any, ...], Any] | None] = ContextVar("massalia_governance_reads", default=None)


def read_once_per_request() -> None:
    """From now on in this context (one API request), read each caller's facts and each project's scope once.

    A guarded service checks a caller several times in one call (may it name the project, the decision itself,
    the project's scope for the rows): each check read the same rows of the metadata database again. Inside a
    request they are read once and handed along (:meth:`GovernanceStore._read_once`); any other access to the
    metadata (a write above all: a member added, a request decided) forgets them, so a request that changes
    governance reads the changed rows. Outside (the CLI, the Python API) nothing is remembered. The decisions
    are the same: a request is decided on the rows as they were when it first read them, as if it had run a few
    milliseconds earlier; the next request reads them again.

    The API calls it from an ``async`` dependency, so that the context of the request's task (copied into
    each thread the request runs in) carries the memo and no other request's context does.
    """
    _REQUEST_READS.set({})


def row_id(value: object, what: str) -> int:
    """``value`` as a metadata row id, refused (``InvalidRequest``) unless an integer from 1 to 2**63-1.

    Examples
    --------
    >>> row_id(7, "project")
    7
    """
    try:
        # Booleans and floats are refused (True is not project 1, 2.9 is not 2); the rest is what int() takes.
        number = (
            int(value)
            if isinstance(value, str | bytes | SupportsInt | SupportsIndex) and not isinstance(value, bool | float)
            else None
        )
    except (TypeError, ValueError):
        number = None
    if number is None or not 1 <= number <= MAX_ROW_ID:
        raise InvalidRequest(f"{what} id must be an integer from 1 to {MAX_ROW_ID}, got {str(value)[:30]}")
    return number


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@overload
def _utc(value: dt.datetime) -> dt.datetime: ...
@overload
def _utc(value: dt.datetime | None) -> dt.datetime | None: ...
def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Datetimes read back from SQLite are naive; they were written in UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _roles(text: str) -> frozenset[Role]:
    return frozenset(Role(part) for part in text.split(",") if part)


def _roles_text(roles: Iterable[Role | str]) -> str:
    try:
        parsed = sorted({Role(role) for role in roles})
    except ValueError as error:
        raise InvalidRequest(f"{error}; roles are {', '.join(r.value for r in Role)}") from None
    if not parsed:
        raise InvalidRequest("a user needs at least one role")
    return ",".join(role.value for role in parsed)


class GovernanceStore:
    """The metadata database, ledger path, key path, rights and clock shared by every part of the service.

    Parameters are :class:`~massalia.governance.service.Governance`'s.
    """

    def __init__(
        self,
        metadata_url: str,
        ledger_path: Path,
        *,
        key_path: Path | None = None,
        rights: Rights | None = None,
        clock: Any = None,
        bound_anonymous_audit: bool = False,
    ) -> None:
        # Imported here, not at the top, to keep CLI start-up fast: alembic costs about 0.1 s and only a
        # command that opens the governance database needs it (there is no import cycle to dodge).
        from massalia.governance.schema import upgrade

        self.metadata_url = metadata_url
        self.ledger_path = Path(ledger_path)
        self.key_path = Path(key_path) if key_path else self.ledger_path.parent / "keys" / "master.key"
        self.rights = rights or load_rights()
        self._clock = clock or _now
        self._engine = _make_engine(metadata_url)
        upgrade(self._engine)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._bound_anonymous_audit = bound_anonymous_audit
        self._anonymous_lock = threading.Lock()
        self._anonymous_budget = float(ANONYMOUS_AUDIT_BURST)
        self._anonymous_refilled = time.monotonic()
        self._anonymous_skipped = 0
        # The transparency log shared by the audits under way in this process (see AuditTrail.audit).
        self._audit_log_lock = threading.Lock()
        self._audit_log: Any = None
        self._audit_log_users = 0

    @classmethod
    def from_home(cls, home: Any, *, bound_anonymous_audit: bool = False) -> Self:
        """The governance service of a ``massalia.config.Home`` (its metadata database, ledger and key file)."""
        return cls(
            home.metadata_url, home.ledger, key_path=Path(home.root) / "keys" / "master.key",
            bound_anonymous_audit=bound_anonymous_audit,
        )  # fmt: skip

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[Session]:
        remembered = _REQUEST_READS.get()
        if remembered:
            remembered.clear()  # any other read or write of the metadata: read the facts again after it
        with self._sessions() as session, session.begin():
            yield session

    def _read_once(self, key: tuple[Any, ...], read: Callable[[Session], T]) -> T:
        """``read`` in a session of its own, once per request for ``key`` (see :func:`read_once_per_request`)."""
        remembered = _REQUEST_READS.get()
        full_key = (id(self), *key)
        if remembered is not None and full_key in remembered:
            found: T = remembered[full_key]
            return found
        with self._sessions() as session, session.begin():
            value = read(session)
        if remembered is not None:
            remembered[full_key] = value
        return value

    def _today(self) -> dt.date:
        today: dt.date = self._clock().date()
        return today

    def _user_row(self, session: Session, username: str) -> UserRow:
        row = session.scalar(select(UserRow).where(UserRow.username == username))
        if row is None:
            raise NotFound(f"no user {username!r}")
        return row

    def _project_row(self, session: Session, project_id: int) -> ProjectRow:
        row = session.get(ProjectRow, row_id(project_id, "project"))
        if row is None:
            raise NotFound(f"no project {project_id}")
        return row

    @staticmethod
    def _principal(row: UserRow, auth: str, scopes: frozenset[str] | None = None) -> Principal:
        return Principal(row.username, _roles(row.roles), row.id, row.site, auth, scopes)

    def _members(self, session: Session, project_id: int, status: str = "active") -> tuple[str, ...]:
        names = session.scalars(
            select(UserRow.username)
            .join(MemberRow, MemberRow.user_id == UserRow.id)
            .where(MemberRow.project_id == project_id, MemberRow.status == status)
        )
        return tuple(sorted(names))

    @staticmethod
    def _is_member_row(session: Session, project_id: int, actor: Principal) -> bool:
        """Whether ``actor`` has a membership row (active or pending) in the project."""
        if actor.user_id is None:
            return False
        return session.get(MemberRow, (project_id, actor.user_id)) is not None

    def _project(self, session: Session, row: ProjectRow) -> Project:
        return Project(
            id=row.id,
            title=row.title,
            purpose=row.purpose,
            owner=row.owner,
            members=self._members(session, row.id),
            scope=ProjectScope.from_json(json.loads(row.scope)),
            access_level=row.access_level,
            expires=row.expires,
            status=row.status,
            created_at=_utc(row.created_at),
            approved_at=_utc(row.approved_at),
            pending_members=self._members(session, row.id, "pending"),
        )

    @staticmethod
    def _request(row: RequestRow) -> AccessRequest:
        return AccessRequest(
            id=row.id,
            project_id=row.project_id,
            requested_by=row.requested_by,
            justification=row.justification,
            filed_at=_utc(row.filed_at),
            status=row.status,
            decided_by=row.decided_by,
            decided_at=_utc(row.decided_at),
            reason=row.reason,
            revoked_by=row.revoked_by,
            revoked_at=_utc(row.revoked_at),
            revoke_reason=row.revoke_reason,
        )


def _make_engine(metadata_url: str) -> SAEngine:
    engine = create_engine(metadata_url)
    if engine.dialect.name == "sqlite":
        url_path = engine.url.database
        if url_path and url_path != ":memory:":
            Path(url_path).parent.mkdir(parents=True, exist_ok=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: Any, _record: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA busy_timeout = 5000")
            # Write-ahead log with a full sync on every commit: a commit is as durable as in the default rollback
            # journal (a privacy-budget charge survives a power cut) for one fsync instead of three (measured
            # 3.8 ms against 14.8 ms a commit here), and readers no longer wait for a writer. The -wal and -shm
            # files beside the database are private like it (the home's umask, massalia.config).
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.close()

    return engine
