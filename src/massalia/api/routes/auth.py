"""Sign-in and identity: password login (cookie session), logout, whoami, API tokens, OpenID Connect."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, action
from massalia.api.errors import ApiError
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, paginate
from massalia.api.sessions import CSRF_COOKIE, SESSION_COOKIE
from massalia.governance import AuthenticationError, Principal, TokenInfo

router = APIRouter(prefix="/auth", tags=["auth"])


class LoginBody(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class Identity(BaseModel):
    """Who the caller is."""

    subject: str
    roles: list[str]
    auth: str
    site: str | None = None
    scopes: list[str] | None = None


class LoginResult(Identity):
    """A signed-in session: send ``csrf_token`` back in ``X-CSRF-Token`` on every unsafe request."""

    csrf_token: str


class TokenBody(BaseModel):
    """A new API token's scopes (``null``: all the roles allow) and lifetime."""

    scopes: list[str] | None = Field(default=None, max_length=100)
    expires_in_days: int = Field(default=30, ge=1, le=366)


class TokenResult(BaseModel):
    """The new token, shown once."""

    token: str
    expires_in_days: int


def identity(principal: Principal) -> dict[str, Any]:
    """The JSON identity of a principal."""
    return {
        "subject": principal.subject,
        "roles": sorted(role.value for role in principal.roles),
        "auth": principal.auth,
        "site": principal.site,
        "scopes": sorted(principal.scopes) if principal.scopes is not None else None,
    }


def client_address(request: Request) -> str:
    """The client's address as the server sees it (put a trusted proxy's ``--forwarded-allow-ips`` in uvicorn)."""
    return request.client.host if request.client else "unknown"


def _open_session(context: Context, response: Response, principal: Principal) -> dict[str, Any]:
    session_id, session = context.sessions.create(principal, epoch=context.governance.session_epoch(principal))
    secure = context.settings.https
    max_age = int(context.settings.session_ttl)
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=max_age, httponly=True, secure=secure, samesite="strict", path="/"
    )
    # Readable by the page's own script (double submit); useless to another site, which cannot read it.
    response.set_cookie(
        CSRF_COOKIE, session.csrf_token, max_age=max_age, httponly=False, secure=secure, samesite="strict", path="/"
    )
    return {**identity(principal), "csrf_token": session.csrf_token}


@router.post("/login", response_model=LoginResult, **action("auth.login"))
def login(body: LoginBody, request: Request, response: Response, context: Context, caller: Caller) -> dict[str, Any]:
    """Sign in with a username and password; opens a cookie session.

    Failed attempts are limited per account and client address, per account, and per address, each
    with its own bound (``429`` with ``Retry-After``): guessing one account from one address stops it
    for that address only, so neither its owner elsewhere nor other accounts behind that address are
    locked out.
    """
    del caller  # resolved for its Origin check: a login from another site is refused
    name, address = body.username.lower(), client_address(request)
    keys = (f"pair:{name}|{address}", f"user:{name}", f"ip:{address}")
    wait = context.login_limiter.retry_after(*keys)
    if wait:
        raise ApiError(
            429, "rate_limited", f"Too many failed logins; try again in {wait} s.", headers={"Retry-After": str(wait)}
        )
    try:
        principal = context.governance.authenticate_password(body.username, body.password)
    except AuthenticationError:
        context.login_limiter.fail(*keys)
        raise ApiError(401, "unauthenticated", "Wrong username or password, or account disabled.") from None
    for key in keys[:2]:  # the address keeps its count: one good login must not hide a spray
        context.login_limiter.clear(key)
    return _open_session(context, response, principal)


@router.post("/logout", status_code=204, **action("auth.logout"))
def logout(request: Request, context: Context, caller: Caller) -> Response:
    """End the cookie session (a no-op for bearer tokens and anonymous callers)."""
    del caller  # resolved so the CSRF token is checked before the session ends
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        context.sessions.end(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.get("/whoami", response_model=Identity, **action("auth.whoami"))
def whoami(caller: Caller) -> dict[str, Any]:
    """The caller's identity (``anonymous`` with role ``public`` when not signed in)."""
    return identity(caller.principal)


@router.post("/tokens", response_model=TokenResult, status_code=201, **action("token.create"))
def create_token(body: TokenBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Create an API token for oneself; use it as ``Authorization: Bearer <token>``. Shown once."""
    token = context.governance.create_token(
        caller.principal, body.scopes, dt.timedelta(days=body.expires_in_days), actor=caller.principal
    )
    return {"token": token, "expires_in_days": body.expires_in_days}


def token_json(t: TokenInfo) -> dict[str, Any]:
    """A token as listed (its prefix, never its secret)."""
    return {
        "id": t.id, "username": t.username, "prefix": t.prefix,
        "scopes": sorted(t.scopes) if t.scopes is not None else None,
        "created_at": t.created_at.isoformat(), "expires_at": t.expires_at.isoformat(),
        "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
    }  # fmt: skip


@router.get("/tokens", response_model=Page, **action("token.list"))
def list_tokens(context: Context, caller: Caller, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> Page:
    """One's own tokens (admins: all), without their secrets, a page at a time."""
    return paginate(context.governance.list_tokens(actor=caller.principal), limit, cursor, render=token_json)


@router.delete("/tokens/{token_id}", status_code=204, **action("token.revoke"))
def revoke_token(token_id: int, context: Context, caller: Caller) -> Response:
    """Revoke one of one's tokens (admins: any)."""
    context.governance.revoke_token(token_id, actor=caller.principal)
    return Response(status_code=204)


OIDC_BINDING_COOKIE = "massalia_oidc_binding"
OIDC_PATH = "/api/v1/auth/oidc"


def _binding_digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@router.get("/oidc/login", status_code=302, response_class=RedirectResponse, **action("auth.login"))
def oidc_login(context: Context) -> RedirectResponse:
    """Start an OpenID Connect login: redirect to the institution's identity provider (404 if not configured).

    The login state stays server-side, bound to this browser by a random cookie: a callback brought by
    another browser (login CSRF: an attacker's own code and state) is refused.
    """
    if context.oidc is None:
        raise ApiError(404, "not_found", "OpenID Connect is not configured (set MASSALIA_OIDC_ISSUER).")
    url, state = context.oidc.begin_login()
    binding = secrets.token_urlsafe(32)
    with context.lock:
        context.oidc_pending[state.state] = (state, _binding_digest(binding))
        if len(context.oidc_pending) > 10_000:  # abandoned logins: keep the newest
            for key in list(context.oidc_pending)[:5_000]:
                del context.oidc_pending[key]
    response = RedirectResponse(url, status_code=302)
    # Lax, not Strict: the provider's redirect back is a cross-site top-level navigation.
    response.set_cookie(
        OIDC_BINDING_COOKIE, binding, max_age=context.oidc.settings.login_timeout_s, httponly=True,
        secure=context.settings.https, samesite="lax", path=OIDC_PATH,
    )  # fmt: skip
    return response


@router.get("/oidc/callback", response_model=LoginResult, **action("auth.login"))
def oidc_callback(request: Request, response: Response, context: Context) -> Any:
    """The provider's redirect back: check the browser binding, state, nonce and PKCE, validate the ID token.

    A browser (``Accept: text/html``) is sent on to the portal's home page, signed in (303); other clients get
    the sign-in result as JSON.
    """
    from massalia.governance.oidc import sign_in

    if context.oidc is None:
        raise ApiError(404, "not_found", "OpenID Connect is not configured (set MASSALIA_OIDC_ISSUER).")
    params = dict(request.query_params)
    binding = request.cookies.get(OIDC_BINDING_COOKIE, "")
    with context.lock:
        pending = context.oidc_pending.get(params.get("state", ""))
        bound = pending is not None and hmac.compare_digest(pending[1], _binding_digest(binding))
        if bound:
            del context.oidc_pending[params["state"]]  # single use
    if not bound or pending is None:
        raise ApiError(401, "unauthenticated", "Unknown or used OIDC login state, or a login started elsewhere.")
    identity_ = context.oidc.complete_login(params, pending[0])
    principal = sign_in(context.governance, context.oidc, identity_)
    if "text/html" in request.headers.get("accept", ""):
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(OIDC_BINDING_COOKIE, path=OIDC_PATH)
        _open_session(context, response, principal)
        return response
    response.delete_cookie(OIDC_BINDING_COOKIE, path=OIDC_PATH)
    return _open_session(context, response, principal)
