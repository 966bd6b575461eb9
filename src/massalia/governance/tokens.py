"""API tokens: created narrower than their creator, checked, listed and revoked."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

from sqlalchemy import select

from massalia.governance import credentials
from massalia.governance.authorization import Authorization
from massalia.governance.model import (
    AuthenticationError,
    InvalidRequest,
    NotFound,
    Principal,
    Role,
    TokenInfo,
)
from massalia.governance.rights import scope_allows, validate_scopes
from massalia.governance.store import _utc, row_id
from massalia.governance.tables import TokenRow, UserRow

DEFAULT_TOKEN_LIFETIME = dt.timedelta(days=90)
MAX_TOKEN_LIFETIME = dt.timedelta(days=366)


class Tokens(Authorization):
    """The API tokens of the users (a part of ``Governance``)."""

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
