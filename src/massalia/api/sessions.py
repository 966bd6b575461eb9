"""Server-side cookie sessions: a random id in an HttpOnly cookie, the principal and CSRF token kept here.

The cookie holds nothing but an unguessable id (256 bits); the store keeps only its SHA-256, so a dump
of the store does not yield usable cookies. Sessions expire after the configured lifetime and end at
logout. In memory, per process (a restart signs everyone out).

Each session remembers the account's *session epoch* when it opened; every request re-checks the
account (``Governance.check_session``), so disabling it, changing its roles or revoking one of its
tokens ends its sessions on their very next request.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from massalia.governance import Principal

SESSION_COOKIE = "massalia_session"
CSRF_COOKIE = "massalia_csrf"


@dataclass(frozen=True)
class Session:
    """One signed-in browser session."""

    principal: Principal
    csrf_token: str
    expires_at: float
    epoch: int | None = None


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    """Create, look up and end sessions.

    Examples
    --------
    >>> from massalia.governance import Principal, Role
    >>> store = SessionStore(ttl=60)
    >>> sid, session = store.create(Principal("ana", frozenset({Role.RESEARCHER})))
    >>> store.get(sid).principal.subject
    'ana'
    >>> store.end(sid); store.get(sid) is None
    True
    """

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, principal: Principal, *, epoch: int | None = None) -> tuple[str, Session]:
        """Open a session for ``principal``, its account at session ``epoch``: the cookie value and the session."""
        session_id = secrets.token_urlsafe(32)
        session = Session(principal, secrets.token_urlsafe(32), self._clock() + self.ttl, epoch)
        with self._lock:
            now = self._clock()
            for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
                del self._sessions[key]
            self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The live session for a cookie value, or ``None`` (unknown or expired)."""
        key = _digest(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and session.expires_at <= self._clock():
                del self._sessions[key]
                return None
        return session

    def end(self, session_id: str) -> None:
        """End a session (logout); unknown ids are ignored."""
        with self._lock:
            self._sessions.pop(_digest(session_id), None)
