"""``Governance``: the one enforcement point for identities, projects, requests, rights and the audit trail.

Every interface (CLI, API, portal) and every guarded domain service calls :meth:`Governance.authorize`
before acting; decisions on actions marked ``audit: true`` in ``rights.yaml`` (allowed and denied) are
appended to the transparency log before anything is returned. Metadata lives in the SQLAlchemy
database at ``metadata_url``; the ledger in ``ledger_path``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pwd
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, SupportsIndex, SupportsInt, overload

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine as SAEngine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from massalia.governance import credentials, keys
from massalia.governance.model import (
    ACCESS_LEVELS,
    AccessDenied,
    AccessRequest,
    AuthenticationError,
    Grant,
    InvalidRequest,
    NotFound,
    Principal,
    Project,
    ProjectScope,
    Role,
    TokenInfo,
    UserInfo,
)
from massalia.governance.rights import Facts, Rights, decide, load_rights, scope_allows, validate_scopes
from massalia.governance.tables import MemberRow, ProjectRow, ProjectSecretRow, RequestRow, TokenRow, UserRow

DEFAULT_TOKEN_LIFETIME = dt.timedelta(days=90)
MAX_TOKEN_LIFETIME = dt.timedelta(days=366)
LEDGER_LOCK_WAIT_S = 10.0
RESERVED_AUDIT_KEYS = frozenset(
    {"time", "actor", "auth", "roles", "action", "decision", "denied_because", "grant", "project_id", "os_uid",
     "os_account"}
)  # fmt: skip
# An audit value whose canonical JSON is longer than this is recorded as its SHA-256 and length: the trail
# proves what was asked without storing (or letting an anonymous caller store) megabytes per entry.
AUDIT_VALUE_MAX_BYTES = 2048
# A network service audits decisions on unauthenticated calls at a bounded rate (a token bucket): a burst,
# then one entry per refill period; the entries skipped in between are counted in the next one written.
ANONYMOUS_AUDIT_BURST = 20
ANONYMOUS_AUDIT_REFILL_S = 10.0


MAX_ROW_ID = 2**63 - 1


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


def operator_account() -> tuple[int, str]:
    """The OS account running this process, from its real uid (not ``LOGNAME``/``USER``, which anyone sets).

    Examples
    --------
    >>> uid, name = operator_account()
    >>> uid == __import__("os").getuid()
    True
    """
    uid = os.getuid()
    try:
        return uid, pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (some containers): the number is the identity
        return uid, f"uid{uid}"


def bounded_audit_value(value: Any) -> Any:
    """``value`` itself if its canonical JSON is short, else ``{"sha256": …, "bytes": …}`` of that JSON.

    Examples
    --------
    >>> bounded_audit_value("short")
    'short'
    >>> sorted(bounded_audit_value("x" * 5000))
    ['bytes', 'sha256']
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    encoded = text.encode("utf-8")
    if len(encoded) <= AUDIT_VALUE_MAX_BYTES:
        return value
    return {"sha256": hashlib.sha256(encoded).hexdigest(), "bytes": len(encoded)}


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


def operator_principal() -> Principal:
    """The local operator of a home (whoever can read its files): roles ``admin`` + ``data_engineer``.

    The operator administers the platform but gets no raw counts and no patient-level data without a
    project (``rights.yaml`` grants those only through approved projects). Its name is the OS account of
    the process's real uid, and every decision on its actions is audited with that account (see
    :meth:`Governance.authorize`): holding the home's files is power, so the trail must say who used it.
    """
    return Principal(
        subject=f"operator:{operator_account()[1]}",
        roles=frozenset({Role.ADMIN, Role.DATA_ENGINEER}),
        auth="operator",
    )


class Governance:
    """The governance service over one metadata database and one ledger.

    Parameters
    ----------
    metadata_url
        SQLAlchemy URL of the metadata database (SQLite by default, PostgreSQL in production).
    ledger_path
        The transparency log directory (audit trail).
    key_path
        The master key file sealing project secrets (default: ``<ledger_path>/../keys/master.key``).
    rights
        The rights table (default: the packaged ``rights.yaml``, validated).
    clock
        Today's date and time in UTC (tests move it to check expiry).
    bound_anonymous_audit
        Audit decisions on anonymous calls at a bounded rate (:data:`ANONYMOUS_AUDIT_BURST` at once, then
        one per :data:`ANONYMOUS_AUDIT_REFILL_S` seconds). The API turns it on: there anyone can make
        such calls for free. Off, every decision on an audited action is written.

    Examples
    --------
    >>> from massalia.config import home  # doctest: +SKIP
    >>> gov = Governance.from_home(home())  # doctest: +SKIP
    >>> gov.authorize(Principal.anonymous(), "audit.verify").action  # doctest: +SKIP
    'audit.verify'
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

    @classmethod
    def from_home(cls, home: Any, *, bound_anonymous_audit: bool = False) -> Governance:
        """The governance service of a ``massalia.config.Home`` (its metadata database, ledger and key file)."""
        return cls(
            home.metadata_url, home.ledger, key_path=Path(home.root) / "keys" / "master.key",
            bound_anonymous_audit=bound_anonymous_audit,
        )  # fmt: skip

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> Governance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[Session]:
        with self._sessions() as session, session.begin():
            yield session

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

    def _refuse(self, actor: Principal, action: str, reason: str, **detail: Any) -> AccessDenied:
        """Audit a refusal decided here (separation of duties) rather than by the rights table; return the error."""
        self.audit(actor, action, decision="denied", denied_because=reason, **detail)
        return AccessDenied(action, reason)

    def _precheck(self, actor: Principal, action: str, project_id: int | None = None, **detail: Any) -> None:
        """Refuse (audited, by :meth:`authorize`) before any lookup when the rights table denies ``action`` anyway.

        Lookups come after, so nobody without the right learns from a 404 which users or projects exist;
        the audited decision itself is made by :meth:`authorize` once the separation-of-duties checks pass.
        """
        try:
            decide(self.rights, actor, action, self.facts(actor, project_id))
        except AccessDenied:
            self.authorize(actor, action, project_id=project_id, detail=detail)
            raise

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

    # -- users ----------------------------------------------------------------------------------------
    def create_user(
        self,
        username: str,
        password: str | None = None,
        roles: Iterable[Role | str] = (Role.RESEARCHER,),
        site: str | None = None,
        *,
        actor: Principal,
        email: str | None = None,
        display_name: str | None = None,
    ) -> Principal:
        """Create a local account (``user.create``). Without a password, the account can only use tokens.

        Raises
        ------
        InvalidRequest
            Bad username, password, role or site, or the username is taken.
        """
        check = credentials.check_username(username)
        role_text = _roles_text(roles)
        self.authorize(actor, "user.create", detail={"resource": {"username": check, "roles": role_text, "site": site}})
        if Role.CLINICIAN.value in role_text.split(",") and not site:
            raise InvalidRequest("a clinician needs a care site (site=...)")
        if site is not None and not credentials.USERNAME_PATTERN.match(site.replace("-", "_")):
            raise InvalidRequest(f"site {site!r} is not a care site code (lowercase letters, digits, '_')")
        hashed = credentials.hash_password(credentials.check_password(password, check)) if password else None
        row = UserRow(
            username=check, password_hash=hashed, roles=role_text, site=site, disabled=False, email=email,
            display_name=display_name, created_at=self._clock(), created_by=actor.subject,
        )  # fmt: skip
        try:
            with self._session() as session:
                session.add(row)
                session.flush()
                return self._principal(row, "password")
        except IntegrityError:
            raise InvalidRequest(f"username {check!r} is already taken") from None

    def list_users(self, *, actor: Principal) -> list[UserInfo]:
        """Every account (``user.list``), without password hashes."""
        self.authorize(actor, "user.list")
        with self._session() as session:
            rows = session.scalars(select(UserRow).order_by(UserRow.username)).all()
            return [
                UserInfo(r.id, r.username, _roles(r.roles), r.site, r.disabled, _utc(r.created_at),
                         r.email, r.display_name, r.oidc_issuer)
                for r in rows
            ]  # fmt: skip

    def set_disabled(self, username: str, disabled: bool, *, actor: Principal) -> None:
        """Disable (or re-enable) an account (``user.disable``, audited): its password, tokens and sessions stop.

        Disabling bumps the account's session epoch, so an open cookie session is refused on its next
        request (see :meth:`check_session`).
        """
        self._precheck(actor, "user.disable", resource={"username": username})
        with self._session() as session:
            self._user_row(session, username)
        if username == actor.subject:
            raise self._refuse(actor, "user.disable", "nobody disables or re-enables their own account",
                               resource={"username": username})  # fmt: skip
        self.authorize(actor, "user.disable", detail={"resource": {"username": username}, "disabled": bool(disabled)})
        with self._session() as session:
            row = self._user_row(session, username)
            row.disabled = bool(disabled)
            row.session_epoch += 1

    def set_roles(self, username: str, roles: Iterable[Role | str], *, actor: Principal) -> Principal:
        """Replace an account's roles (``user.set_roles``, audited); its open sessions end.

        Nobody changes their own roles (an admin could otherwise make themself a DPO and decide).

        Raises
        ------
        InvalidRequest
            An unknown role, no role, or a clinician without a site.
        """
        role_text = _roles_text(roles)
        self._precheck(actor, "user.set_roles", resource={"username": username})
        with self._session() as session:
            site = self._user_row(session, username).site
        if Role.CLINICIAN.value in role_text.split(",") and not site:
            raise InvalidRequest("a clinician needs a care site (site=...)")
        if username == actor.subject:
            raise self._refuse(actor, "user.set_roles", "nobody changes their own roles",
                               resource={"username": username}, new_roles=role_text)  # fmt: skip
        self.authorize(actor, "user.set_roles", detail={"resource": {"username": username}, "new_roles": role_text})
        with self._session() as session:
            row = self._user_row(session, username)
            if row.roles != role_text:
                row.roles = role_text
                row.session_epoch += 1
            return self._principal(row, "password")

    def session_epoch(self, principal: Principal) -> int | None:
        """The account's current session epoch (``None`` for principals without an account)."""
        if principal.user_id is None:
            return None
        with self._session() as session:
            row = session.get(UserRow, principal.user_id)
            return None if row is None else int(row.session_epoch)

    def check_session(self, principal: Principal, epoch: int | None) -> Principal:
        """The principal of a cookie session as the account stands now; refused if the session must end.

        Called on every request of a session: a disabled or deleted account, or an epoch older than the
        account's (disabled, roles changed, a token revoked since the session opened), ends it.

        Raises
        ------
        AuthenticationError
            The session is no longer valid.
        """
        if principal.user_id is None:
            return principal
        with self._session() as session:
            row = session.get(UserRow, principal.user_id)
            if row is None or row.username != principal.subject or row.disabled:
                raise AuthenticationError("session ended: the account is disabled or gone")
            if epoch is None or int(row.session_epoch) != int(epoch):
                raise AuthenticationError("session ended: the account's roles or credentials changed; sign in again")
            return self._principal(row, principal.auth, principal.scopes)

    def authenticate_password(self, username: str, password: str) -> Principal:
        """The principal of ``username`` if ``password`` matches and the account is enabled.

        A hash made with older argon2 parameters is replaced by a fresh one on success.

        Raises
        ------
        AuthenticationError
            Unknown user, wrong password or disabled account (the message does not say which).
        """
        with self._session() as session:
            row = session.scalar(select(UserRow).where(UserRow.username == str(username)))
            stored = row.password_hash if row is not None else None
            if not credentials.verify_password(stored, password) or row is None or row.disabled:
                raise AuthenticationError("wrong username or password, or account disabled")
            if stored is not None and credentials.needs_rehash(stored):  # verified above, so never None here
                row.password_hash = credentials.hash_password(password)
            return self._principal(row, "password")

    def upsert_oidc_user(
        self, issuer: str, subject: str, *, email: str | None, name: str | None, roles: Iterable[Role | str]
    ) -> Principal:
        """The local account of an OIDC identity (issuer + subject), created or updated from the provider's claims.

        The username is derived from the email's local part (or the subject), made valid and unique.
        Roles are replaced by those given (the caller maps the provider's groups to roles).
        """
        if not issuer or not subject:
            raise InvalidRequest("an OIDC identity needs an issuer and a subject")
        role_text = _roles_text(roles)
        with self._session() as session:
            row = session.scalar(select(UserRow).where(UserRow.oidc_issuer == issuer, UserRow.oidc_subject == subject))
            if row is None:
                row = UserRow(
                    username=self._free_username(session, (email or subject).split("@")[0]),
                    password_hash=None, roles=role_text, site=None, disabled=False, email=email, display_name=name,
                    oidc_issuer=issuer, oidc_subject=subject, created_at=self._clock(), created_by=f"oidc:{issuer}",
                )  # fmt: skip
                session.add(row)
                session.flush()
            else:
                if row.disabled:
                    raise AuthenticationError("account disabled")
                if row.roles != role_text:
                    row.session_epoch += 1  # the provider changed the roles: sessions opened before end
                row.email, row.display_name, row.roles = email, name, role_text
            return self._principal(row, "oidc")

    @staticmethod
    def _free_username(session: Session, wanted: str) -> str:
        base = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "-" for c in wanted.lower())
        base = base.strip("._-")[:56] or "user"
        if not base[0].isalpha():
            base = f"u{base}"[:56]
        candidate, n = base, 1
        while (
            len(candidate) < 2
            or candidate in credentials.RESERVED_USERNAMES
            or not credentials.USERNAME_PATTERN.match(candidate)
            or session.scalar(select(UserRow.id).where(UserRow.username == candidate)) is not None
        ):
            n += 1
            candidate = f"{base}{n}"
        return candidate

    # -- tokens ---------------------------------------------------------------------------------------
    def create_token(
        self,
        principal_or_username: Principal | str,
        scopes: Iterable[str] | None = None,
        expires_in: dt.timedelta = DEFAULT_TOKEN_LIFETIME,
        *,
        actor: Principal,
    ) -> str:
        """Create an API token for a user and return it (shown once: only its SHA-256 is stored).

        Users create tokens for themselves (``token.create``). A token for another user is an
        administrative act (``token.create_for_user``, admins only), always written to the audit trail
        with the account it was made for, since whoever holds it then acts under that account's name.
        ``scopes`` limit it to some actions (``health.cohort.count``, ``health.cohort.*``...); ``None`` means everything
        the user's roles allow. A token only mints narrower, shorter tokens: an actor authenticated by a
        scoped token gets scopes within its own (its own when none are asked), and a token made with a
        token expires no later than it (its lifetime is capped).

        Raises
        ------
        AccessDenied
            Not allowed to create tokens, or for that user.
        InvalidRequest
            Bad lifetime or scopes, wider scopes than the actor's token, an unknown or disabled user.
        """
        self.authorize(actor, "token.create")
        username = (
            principal_or_username.subject if isinstance(principal_or_username, Principal) else principal_or_username
        )
        token = credentials.new_token()
        now = self._clock()
        if username != actor.subject:
            # Authorized (and audited) before any input is validated or any account looked up.
            lifetime = expires_in.total_seconds() if isinstance(expires_in, dt.timedelta) else None
            self.authorize(
                actor, "token.create_for_user",
                detail={"administrative": True, "for_user": str(username)[:200],
                        "scopes": sorted(str(s)[:200] for s in scopes) if scopes is not None else None,
                        "lifetime_s": lifetime, "token_prefix": token[: credentials.TOKEN_SHOWN_PREFIX]},
            )  # fmt: skip
        if not isinstance(expires_in, dt.timedelta) or not dt.timedelta(0) < expires_in <= MAX_TOKEN_LIFETIME:
            raise InvalidRequest(f"token lifetime must be positive and at most {MAX_TOKEN_LIFETIME.days} days")
        scope_set = None
        if scopes is not None:
            try:
                scope_set = validate_scopes(self.rights, frozenset(scopes))
            except ValueError as error:
                raise InvalidRequest(str(error)) from None
            if not scope_set:
                raise InvalidRequest("a token needs at least one scope (or none given: all the roles allow)")
        scope_set = _narrower_scopes(actor, scope_set)
        expires_at = now + expires_in
        if actor.expires_at is not None:
            expires_at = min(expires_at, actor.expires_at)  # never outlives the token that made it
        with self._session() as session:
            user = self._user_row(session, username)
            if user.disabled:
                raise InvalidRequest(f"user {username!r} is disabled")
            session.add(
                TokenRow(
                    user_id=user.id, prefix=token[: credentials.TOKEN_SHOWN_PREFIX],
                    secret_sha256=credentials.token_digest(token),
                    scopes=json.dumps(sorted(scope_set)) if scope_set is not None else None,
                    created_at=now, created_by=actor.subject, expires_at=expires_at,
                )
            )  # fmt: skip
        return token

    def authenticate_token(self, token: str) -> Principal:
        """The principal a token stands for (its scopes attached); records its last use.

        Raises
        ------
        AuthenticationError
            Malformed, unknown, expired or revoked token, or disabled account.
        """
        if not credentials.looks_like_token(token):
            raise AuthenticationError("not a Massalia API token")
        now = self._clock()
        with self._session() as session:
            row = session.scalar(select(TokenRow).where(TokenRow.secret_sha256 == credentials.token_digest(token)))
            if row is None:
                raise AuthenticationError("unknown token")
            if row.revoked_at is not None:
                raise AuthenticationError("token revoked")
            if _utc(row.expires_at) <= now:
                raise AuthenticationError("token expired")
            user = session.get(UserRow, row.user_id)
            if user is None or user.disabled:
                raise AuthenticationError("account disabled")
            row.last_used_at = now
            scopes = frozenset(json.loads(row.scopes)) if row.scopes is not None else None
            principal = self._principal(user, "token", scopes)
            return Principal(**{**principal.__dict__, "expires_at": _utc(row.expires_at)})

    def list_tokens(self, *, actor: Principal) -> list[TokenInfo]:
        """Tokens of the actor (all tokens for admins), without secrets."""
        self.authorize(actor, "token.list")
        with self._session() as session:
            query = select(TokenRow, UserRow.username).join(UserRow, UserRow.id == TokenRow.user_id)
            if not actor.has_role(Role.ADMIN):
                query = query.where(UserRow.username == actor.subject)
            return [
                TokenInfo(
                    t.id, name, t.prefix, frozenset(json.loads(t.scopes)) if t.scopes is not None else None,
                    _utc(t.created_at), _utc(t.expires_at), _utc(t.revoked_at), _utc(t.last_used_at),
                )
                for t, name in session.execute(query.order_by(TokenRow.id)).all()
            ]  # fmt: skip

    def revoke_token(self, token_id: int, *, actor: Principal) -> None:
        """Revoke a token (one's own; admins any). Revoking twice is harmless."""
        self.authorize(actor, "token.revoke", detail={"resource": {"token_id": int(token_id)}})
        with self._session() as session:
            row = session.get(TokenRow, row_id(token_id, "token"))
            owner = session.get(UserRow, row.user_id) if row is not None else None
            if row is None or owner is None or (owner.username != actor.subject and not actor.has_role(Role.ADMIN)):
                raise NotFound(f"no token {token_id}")
            if row.revoked_at is None:
                row.revoked_at, row.revoked_by = self._clock(), actor.subject
                owner.session_epoch += 1  # a revocation (leak suspected) ends the owner's cookie sessions too

    # -- projects -------------------------------------------------------------------------------------
    def create_project(
        self,
        title: str,
        purpose: str,
        *,
        scope: ProjectScope,
        access_level: str,
        expires: dt.date,
        actor: Principal,
    ) -> Project:
        """Create a project (``project.create``); it starts ``draft`` (no data access until a DPO approves).

        The creator becomes its owner, and its first member when they have an account.
        """
        if not title or not title.strip() or len(title) > 200:
            raise InvalidRequest("project title must be 1 to 200 characters")
        if not purpose or len(purpose.strip()) < 10:
            raise InvalidRequest("project purpose must say why (at least 10 characters)")
        if access_level not in ACCESS_LEVELS:
            raise InvalidRequest(f"access level must be one of {', '.join(ACCESS_LEVELS)}, got {access_level!r}")
        if not isinstance(scope, ProjectScope):
            raise InvalidRequest("scope must be a ProjectScope")
        if not isinstance(expires, dt.date) or expires <= self._today():
            raise InvalidRequest(f"project expiry must be a date after today, got {expires!r}")
        self.authorize(actor, "project.create", detail={
            "resource": {"title": title.strip(), "scope": scope.to_json(), "access_level": access_level,
                         "expires": expires.isoformat()},
        })  # fmt: skip
        now = self._clock()
        with self._session() as session:
            row = ProjectRow(
                title=title.strip(), purpose=purpose.strip(), owner=actor.subject, scope=json.dumps(scope.to_json()),
                cohort_hash=scope.cohort_hash, access_level=access_level, expires=expires, status="draft",
                created_at=now,
            )  # fmt: skip
            session.add(row)
            session.flush()
            if actor.user_id is not None:
                session.add(MemberRow(project_id=row.id, user_id=actor.user_id, added_at=now, added_by=actor.subject))
                session.flush()
            return self._project(session, row)

    def add_member(self, project_id: int, username: str, *, actor: Principal) -> Project:
        """Add a user to a project (``project.add_member``, audited): its owner, a DPO or an admin.

        Nobody adds themself. A member added to a draft (or rejected, or revoked) project is active: a
        DPO decides the project's request with its members in view. A member added once a request is
        filed or approved starts ``pending``: no data access until a DPO approves them
        (:meth:`approve_member`).

        Raises
        ------
        AccessDenied
            Self-addition, or an actor who is neither the owner, a DPO nor an admin (both audited).
        """
        resource = {"project_id": int(project_id), "username": username}
        self._precheck(actor, "project.add_member", project_id, resource=resource)
        with self._session() as session:
            project = self._project_row(session, project_id)
            user = self._user_row(session, username)
            owner = project.owner
        if user.username == actor.subject or (actor.user_id is not None and user.id == actor.user_id):
            raise self._refuse(actor, "project.add_member", "nobody adds themself to a project",
                               project_id=project_id, resource=resource)  # fmt: skip
        if actor.subject != owner and not actor.has_role(Role.ADMIN, Role.DPO):
            raise self._refuse(actor, "project.add_member", "only the project's owner, a DPO or an admin adds members",
                               project_id=project_id, resource=resource)  # fmt: skip
        self.authorize(actor, "project.add_member", project_id=project_id, detail={"resource": resource})
        with self._session() as session:
            project = self._project_row(session, project_id)
            if session.get(MemberRow, (project_id, user.id)) is None:
                status = "active" if project.status in ("draft", "rejected", "revoked") else "pending"
                session.add(MemberRow(project_id=project_id, user_id=user.id, added_at=self._clock(),
                                      added_by=actor.subject, status=status))  # fmt: skip
                session.flush()
            return self._project(session, project)

    def approve_member(self, project_id: int, username: str, *, actor: Principal) -> Project:
        """Approve a pending member (``project.approve_member``: a DPO, audited); they then have data access.

        The deciding DPO may not be the member, the one who added them, nor a member of the project.

        Raises
        ------
        InvalidRequest
            The user is not a pending member of the project.
        AccessDenied
            Not a DPO, or a conflict of duties (audited).
        """
        resource = {"project_id": int(project_id), "username": username}
        self._precheck(actor, "project.approve_member", project_id, resource=resource)
        with self._session() as session:
            self._project_row(session, project_id)
            user = self._user_row(session, username)
            member = session.get(MemberRow, (project_id, user.id))
            if member is None or member.status != "pending":
                raise InvalidRequest(f"{username!r} is not a pending member of project {project_id}")
            conflict = None
            if username == actor.subject:
                conflict = "nobody approves their own membership"
            elif member.added_by == actor.subject:
                conflict = "nobody approves a member they added"
            elif self._is_member_row(session, project_id, actor):
                conflict = "a member of the project cannot approve its members"
        if conflict:
            raise self._refuse(actor, "project.approve_member", conflict, project_id=project_id, resource=resource)
        self.authorize(actor, "project.approve_member", project_id=project_id, detail={"resource": resource})
        with self._session() as session:
            member = session.get(MemberRow, (project_id, user.id))
            if member is None or member.status != "pending":
                raise InvalidRequest(f"{username!r} is not a pending member of project {project_id}")
            member.status, member.approved_by, member.approved_at = "active", actor.subject, self._clock()
            session.flush()
            return self._project(session, self._project_row(session, project_id))

    def remove_member(self, project_id: int, username: str, *, actor: Principal) -> Project:
        """Remove a member (``project.remove_member``, audited): the owner, a DPO, an admin, or the member leaving.

        The owner cannot be removed (the project would have nobody answerable for it). Data access
        ends at once: rights are evaluated against the membership table on every call.
        """
        resource = {"project_id": int(project_id), "username": username}
        self._precheck(actor, "project.remove_member", project_id, resource=resource)
        with self._session() as session:
            project = self._project_row(session, project_id)
            user = self._user_row(session, username)
            owner = project.owner
            if session.get(MemberRow, (project_id, user.id)) is None:
                raise NotFound(f"{username!r} is not a member of project {project_id}")
        if actor.subject not in (owner, username) and not actor.has_role(Role.ADMIN, Role.DPO):
            raise self._refuse(actor, "project.remove_member",
                               "only the owner, a DPO, an admin or the member themself removes a member",
                               project_id=project_id, resource=resource)  # fmt: skip
        if username == owner:
            raise InvalidRequest(f"{username!r} owns project {project_id} and cannot be removed from it")
        self.authorize(actor, "project.remove_member", project_id=project_id, detail={"resource": resource})
        with self._session() as session:
            row = session.get(MemberRow, (project_id, user.id))
            if row is not None:
                session.delete(row)
                session.flush()
            return self._project(session, self._project_row(session, project_id))

    def get_project(self, project_id: int, *, actor: Principal) -> Project:
        """A project (``project.read``: admins, DPOs, members).

        Authorized before the lookup: to a caller who may not read it, a missing project and another's
        project give the same refusal.
        """
        self.authorize(actor, "project.read", project_id=project_id)
        with self._session() as session:
            return self._project(session, self._project_row(session, project_id))

    def list_projects(self, *, actor: Principal) -> list[Project]:
        """Projects the actor may read: all for admins and DPOs, the actor's own for others."""
        self.authorize(actor, "project.list")
        with self._session() as session:
            query = select(ProjectRow).order_by(ProjectRow.id)
            if not actor.has_role(Role.ADMIN, Role.DPO):
                if actor.user_id is None:
                    return []
                query = query.join(MemberRow, MemberRow.project_id == ProjectRow.id).where(
                    MemberRow.user_id == actor.user_id
                )
            return [self._project(session, row) for row in session.scalars(query).all()]

    # -- access requests ------------------------------------------------------------------------------
    def file_request(self, project_id: int, *, actor: Principal, justification: str) -> AccessRequest:
        """File an access request for a project the actor is a member of (``request.file``, checked first)."""
        self.authorize(actor, "request.file", project_id=project_id, detail={"resource": {"project_id": project_id}})
        if not justification or len(justification.strip()) < 10:
            raise InvalidRequest("a request needs a justification (at least 10 characters)")
        with self._session() as session:
            project = self._project_row(session, project_id)
            pending = session.scalar(
                select(RequestRow.id).where(RequestRow.project_id == project_id, RequestRow.status == "pending")
            )
            if pending is not None:
                raise InvalidRequest(f"project {project_id} already has a pending request ({pending})")
            row = RequestRow(
                project_id=project_id, requested_by=actor.subject, justification=justification.strip(),
                filed_at=self._clock(), status="pending",
            )  # fmt: skip
            session.add(row)
            if project.status in ("draft", "rejected", "revoked"):
                project.status = "pending"
            session.flush()
            return self._request(row)

    def _decision_conflict(self, session: Session, actor: Principal, project_id: int, filed_by: str) -> str | None:
        """Why ``actor`` may not decide for the project (separation of duties), or ``None``."""
        project = self._project_row(session, project_id)
        if actor.subject == filed_by:
            return "nobody decides a request they filed"
        if actor.subject == project.owner:
            return "nobody decides for a project they own"
        if self._is_member_row(session, project_id, actor):
            return "nobody decides for a project they are a member of"
        return None

    def decide_request(self, request_id: int, approve: bool, reason: str, *, actor: Principal) -> AccessRequest:
        """Approve or reject a pending request (``request.decide``: DPOs only); the decision is final.

        Separation of duties: nobody decides a request they filed, or for a project they own or belong
        to (the refusal is audited). The decision is written to the transparency log (who, when, why)
        before it takes effect.
        """
        with self._session() as session:
            row = session.get(RequestRow, row_id(request_id, "request"))
            project_id = row.project_id if row is not None else None
            found = None if row is None else (row.status, row.decided_by)
            requested_by = row.requested_by if row is not None else None
        verdict = "approved" if approve else "rejected"
        detail = {"resource": {"request_id": int(request_id), "project_id": project_id}, "verdict": verdict,
                  "reason": str(reason or "").strip()}  # fmt: skip
        if found is None or found[0] != "pending":
            # Nothing about the request is revealed to a caller who may not decide: they get the same
            # (audited) refusal as for a pending one. A DPO learns it is missing or already decided.
            try:
                decide(self.rights, actor, "request.decide", self.facts(actor, project_id))
            except AccessDenied:
                self.authorize(actor, "request.decide", project_id=project_id, detail=detail)
                raise
            if found is None:
                raise NotFound(f"no access request {request_id}")
            raise InvalidRequest(f"request {request_id} was already {found[0]} by {found[1]}")
        if not reason or not reason.strip():
            raise InvalidRequest("a decision needs a reason")
        if project_id is None or requested_by is None:  # found is a pending request: both are known
            raise NotFound(f"no access request {request_id}")
        with self._session() as session:
            conflict = self._decision_conflict(session, actor, project_id, requested_by)
        if conflict:
            raise self._refuse(actor, "request.decide", conflict, project_id=project_id, resource=detail["resource"],
                               verdict=verdict)  # fmt: skip
        grant = self.authorize(actor, "request.decide", project_id=project_id, detail=detail)
        with self._session() as session:
            row = session.get(RequestRow, row_id(request_id, "request"))
            if row is None:
                raise NotFound(f"no access request {request_id}")
            if row.status != "pending":
                raise InvalidRequest(f"request {request_id} was already {row.status} by {row.decided_by}")
            now = self._clock()
            row.status, row.decided_by, row.decided_at, row.reason = verdict, actor.subject, now, reason.strip()
            row.ledger_index = grant.audit_index
            project = self._project_row(session, project_id)
            if approve:
                project.status, project.approved_at = "approved", now
            elif project.status != "approved":
                project.status = "rejected"
            session.flush()
            return self._request(row)

    def revoke_request(self, request_id: int, reason: str, *, actor: Principal) -> AccessRequest:
        """Revoke an approved request (``request.revoke``: a DPO, audited): the project loses data access at once.

        The same separation of duties as a decision applies. The project goes to ``revoked``; its
        members may file a new request. Only a DPO learns whether the request exists (checked first).
        """
        self._precheck(actor, "request.revoke", None, resource={"request_id": row_id(request_id, "request")})
        with self._session() as session:
            row = session.get(RequestRow, row_id(request_id, "request"))
            if row is None:
                raise NotFound(f"no access request {request_id}")
            if row.status != "approved":
                raise InvalidRequest(f"request {request_id} is {row.status}: only an approved request is revoked")
            project_id = row.project_id
            conflict = self._decision_conflict(session, actor, project_id, row.requested_by)
        if not reason or not reason.strip():
            raise InvalidRequest("a revocation needs a reason")
        resource = {"request_id": int(request_id), "project_id": project_id}
        self._precheck(actor, "request.revoke", project_id, resource=resource)
        if conflict:
            raise self._refuse(actor, "request.revoke", conflict, project_id=project_id, resource=resource)
        self.authorize(actor, "request.revoke", project_id=project_id,
                       detail={"resource": resource, "reason": reason.strip()})  # fmt: skip
        with self._session() as session:
            row = session.get(RequestRow, int(request_id))
            if row is None or row.status != "approved":
                raise InvalidRequest(f"request {request_id} is no longer approved")
            row.status, row.revoked_by, row.revoked_at = "revoked", actor.subject, self._clock()
            row.revoke_reason = reason.strip()
            project = self._project_row(session, project_id)
            project.status = "revoked"
            session.flush()
            return self._request(row)

    def list_requests(self, *, actor: Principal) -> list[AccessRequest]:
        """Requests the actor may see: all for DPOs and admins, those of the actor's projects for others."""
        self.authorize(actor, "request.list")
        with self._session() as session:
            query = select(RequestRow).order_by(RequestRow.id)
            if not actor.has_role(Role.ADMIN, Role.DPO):
                if actor.user_id is None:
                    return []
                query = query.join(MemberRow, MemberRow.project_id == RequestRow.project_id).where(
                    MemberRow.user_id == actor.user_id
                )
            return [self._request(row) for row in session.scalars(query).all()]

    def project_scope(self, project_id: int) -> ProjectScope:
        """A project's scope, for the domain services that enforce it (no rights check: server-side only)."""
        with self._session() as session:
            return ProjectScope.from_json(json.loads(self._project_row(session, int(project_id)).scope))

    # -- project secrets ------------------------------------------------------------------------------
    def project_key(self, project_id: int) -> bytes:
        """The project's 32-byte secret (keyed-hash pseudonyms, date shifts), created on first use.

        Server-side only: no API returns it. Stored encrypted under the master key file (see
        :mod:`massalia.governance.keys`).
        """
        master = keys.load_or_create_master_key(self.key_path)
        with self._session() as session:
            self._project_row(session, project_id)
            row = session.get(ProjectSecretRow, project_id)
            if row is None:
                secret = keys.new_project_secret()
                nonce, ciphertext = keys.seal(master, project_id, secret)
                session.add(ProjectSecretRow(project_id=project_id, nonce=nonce, ciphertext=ciphertext,
                                             created_at=self._clock()))  # fmt: skip
                try:
                    session.flush()
                except IntegrityError:  # created concurrently: use theirs
                    session.rollback()
                    return self.project_key(project_id)
                return secret
            return keys.unseal(master, project_id, row.nonce, row.ciphertext)

    # -- rights and audit -----------------------------------------------------------------------------
    def facts(self, principal: Principal, project_id: int | None = None, site: str | None = None) -> Facts:
        """What the rights conditions are evaluated against for ``principal`` and ``project_id``."""
        if project_id is None:
            return Facts(data_site=site)
        with self._session() as session:
            project = session.get(ProjectRow, row_id(project_id, "project"))
            if project is None:
                return Facts(project_id=int(project_id), data_site=site)
            member = False
            row = session.get(MemberRow, (project.id, principal.user_id)) if principal.user_id is not None else None
            # A pending member (added after the request was filed) is nobody's member until a DPO approves.
            if row is not None and row.status == "active":
                # A disabled account, or a principal whose id and name disagree, is nobody's member.
                user = session.get(UserRow, principal.user_id)
                member = user is not None and not user.disabled and user.username == principal.subject
            approved = project.status == "approved" and self._today() <= project.expires
            return Facts(project.id, bool(member), approved, project.access_level, site)

    def authorize(
        self,
        principal: Principal,
        action: str,
        *,
        project_id: int | None = None,
        site: str | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Grant:
        """Decide whether ``principal`` may do ``action``; the single rights check of the platform.

        For actions marked ``audit: true``, and for every action of the local operator (whose power comes
        from holding the files, so the trail must show each use), the decision (allowed or denied, with
        ``detail``) is appended to the transparency log before this returns; the grant then carries its
        index. Decisions on anonymous calls are audited at a bounded rate (see :meth:`_anonymous_quota`).

        Raises
        ------
        AccessDenied
            With the reason (no rule for the role, not a member, project not approved or expired...).
        """
        if not isinstance(principal, Principal):
            raise AccessDenied(str(action), "no principal")
        extra = dict(detail or {})
        clash = set(extra) & RESERVED_AUDIT_KEYS
        if clash:
            raise InvalidRequest(f"audit detail may not use the reserved key(s) {', '.join(sorted(clash))}")
        facts = self.facts(principal, project_id, site)
        audited = self.rights.audited(action) or principal.auth == "operator"
        if audited and principal.auth == "anonymous" and self._bound_anonymous_audit:
            skipped = self._anonymous_quota()
            audited = skipped is not None
            if skipped:
                extra["anonymous_entries_skipped"] = skipped
        try:
            grant = decide(self.rights, principal, action, facts)
        except AccessDenied as denied:
            if audited:
                self.audit(principal, action, decision="denied", denied_because=denied.reason, project_id=project_id,
                           **extra)  # fmt: skip
            raise
        if audited:
            flags = {"raw_counts": grant.raw_counts, "row_level": grant.row_level,
                     "pseudonymized": grant.pseudonymized, "site": grant.site}  # fmt: skip
            index = self.audit(principal, action, decision="allowed", project_id=project_id, grant=flags, **extra)
            grant = Grant(**{**grant.__dict__, "audit_index": index})
        return grant

    def verify_audit_log(self, *, actor: Principal) -> Any:
        """Recompute the whole audit log and check every hash and signed tree head (``audit.verify``).

        Returns the ledger's verification report (``.ok``, ``.summary()``).

        Raises
        ------
        NotFound
            There is no audit log yet.
        """
        from massalia.ledger import TransparencyLog

        # Whether a log exists is no secret (tree heads are public); checking first keeps the operator's
        # audited decision from creating the very log it was asked to verify.
        if not self.ledger_path.is_dir():
            raise NotFound(f"no audit log at {self.ledger_path}")
        self.authorize(actor, "audit.verify")
        with TransparencyLog(self.ledger_path, readonly=True) as log:
            return log.verify()

    def _anonymous_quota(self) -> int | None:
        """Take one anonymous audit entry from the bucket: ``None`` if empty, else how many were skipped.

        Unauthenticated calls cost nothing to make; without a bound they would grow the (append-only,
        never pruned) trail as fast as anyone can send requests.
        """
        with self._anonymous_lock:
            now = time.monotonic()
            refill = (now - self._anonymous_refilled) / ANONYMOUS_AUDIT_REFILL_S
            self._anonymous_budget = min(float(ANONYMOUS_AUDIT_BURST), self._anonymous_budget + refill)
            self._anonymous_refilled = now
            if self._anonymous_budget < 1.0:
                self._anonymous_skipped += 1
                return None
            self._anonymous_budget -= 1.0
            skipped, self._anonymous_skipped = self._anonymous_skipped, 0
            return skipped

    def audit(self, principal: Principal, action: str, **detail: Any) -> int:
        """Append a canonical JSON entry (who, how, when, what, ``detail``) to the ledger; return its index.

        The entry is durable and covered by a fresh signed tree head when this returns. Each ``detail``
        value is bounded (:func:`bounded_audit_value`); an operator's entry names the OS account and uid
        of the process (never an environment variable).
        """
        from massalia.ledger import LedgerLockedError, TransparencyLog

        clash = set(detail) & {"time", "actor", "auth", "roles", "action", "os_uid", "os_account"}
        if clash:
            raise InvalidRequest(f"audit detail may not use the reserved key(s) {', '.join(sorted(clash))}")
        entry = {
            "time": self._clock().isoformat(timespec="seconds"),
            "actor": principal.subject,
            "auth": principal.auth,
            "roles": sorted(role.value for role in principal.roles),
            "action": action,
            **{key: bounded_audit_value(value) for key, value in detail.items() if value is not None},
        }
        if principal.auth == "operator":
            entry["os_uid"], entry["os_account"] = operator_account()
        deadline = time.monotonic() + LEDGER_LOCK_WAIT_S
        while True:
            try:
                with TransparencyLog(self.ledger_path) as log:
                    written = log.append(entry)
                    log.tree_head()
                    return written.index
            except LedgerLockedError:
                # Another process (the API server, a CLI run) is writing: its append is short.
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def _scope_covers(held: frozenset[str], wanted: str) -> bool:
    """Whether a token holding ``held`` may hand out ``wanted`` (an action, ``area.*`` or ``*``)."""
    if wanted == "*":
        return "*" in held
    if wanted.endswith(".*"):
        return "*" in held or wanted in held
    return scope_allows(held, wanted)


def _narrower_scopes(actor: Principal, wanted: frozenset[str] | None) -> frozenset[str] | None:
    """The scopes of a token ``actor`` creates: within the actor's own scopes when it holds a scoped token.

    Raises
    ------
    InvalidRequest
        A scope the actor's own token does not cover.
    """
    if actor.scopes is None:
        return wanted
    if wanted is None:
        return actor.scopes  # "everything" from a scoped token means everything that token may do
    wider = sorted(scope for scope in wanted if not _scope_covers(actor.scopes, scope))
    if wider:
        raise InvalidRequest(
            f"a token only creates narrower tokens: {', '.join(wider)} is outside its scopes "
            f"({', '.join(sorted(actor.scopes))})"
        )
    return wanted


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
            cursor.close()

    return engine
