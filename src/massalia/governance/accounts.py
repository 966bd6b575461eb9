"""User accounts: creation, roles, disabling, sessions, password and OIDC sign-in."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from massalia.governance import credentials
from massalia.governance.authorization import Authorization
from massalia.governance.model import (
    AuthenticationError,
    InvalidRequest,
    Principal,
    Role,
    UserInfo,
)
from massalia.governance.store import _roles, _roles_text, _utc
from massalia.governance.tables import UserRow


class Accounts(Authorization):
    """The users of the platform (a part of ``Governance``)."""

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
