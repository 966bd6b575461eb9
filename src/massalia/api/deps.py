"""What every route needs: the API context, the caller and the warehouse engine.

The principal is resolved here and nowhere else: ``Authorization: Bearer <token>`` (or the bare
``msl_…`` token as the whole header, as CKAN clients send their API key) →
``Governance.authenticate_token``; else the session cookie → the session store (with the CSRF checks
on unsafe methods); else :meth:`Principal.anonymous`. It reaches the routes as one
:class:`massalia.governance.Caller` (:func:`get_caller`: the principal, the app's governance, channel
``"api"``), which they hand to the guarded services. The API grants nothing itself: what the caller may
do is decided by the services, through ``Governance.authorize``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from massalia.api.errors import PRINCIPAL_KEY, ApiError
from massalia.api.ratelimit import FailureLimiter
from massalia.api.security import check_csrf_token, check_origin
from massalia.api.sessions import SESSION_COOKIE, SessionStore
from massalia.api.settings import ApiSettings
from massalia.api.warehouse import WarehouseKeeper
from massalia.config import Home, HomeNotInitializedError
from massalia.engine import Engine, WarehouseBusyError
from massalia.governance import AuthenticationError, Governance, Principal
from massalia.governance import Caller as ServiceCaller
from massalia.governance.credentials import TOKEN_PREFIX
from massalia.governance.store import read_once_per_request

API_CHANNEL = "api"
"""The channel the API's calls are recorded under in the audit trail."""
ACTION_KEY = "x-massalia-action"
"""OpenAPI extension naming the governance action a route is checked against (read by the rights matrix)."""


@dataclass
class ApiContext:
    """Everything the app holds for its lifetime (one per :func:`massalia.api.create_app`)."""

    home: Home
    settings: ApiSettings
    governance: Governance
    sessions: SessionStore
    login_limiter: FailureLimiter
    oidc: Any = None  # massalia.governance.oidc.OidcClient when MASSALIA_OIDC_ISSUER is set
    oidc_pending: dict[str, Any] = field(default_factory=dict)  # state -> (LoginState, browser binding digest)
    lock: threading.Lock = field(default_factory=threading.Lock)
    warehouses: WarehouseKeeper | None = None  # made from home and settings when not given

    def __post_init__(self) -> None:
        if self.warehouses is None:
            self.warehouses = WarehouseKeeper(self.home, self.settings.engine)


def action(name: str) -> dict[str, Any]:
    """Route keyword arguments declaring the governance action the route is checked against.

    Examples
    --------
    >>> action("health.cohort.count")
    {'openapi_extra': {'x-massalia-action': 'health.cohort.count'}}
    """
    return {"openapi_extra": {ACTION_KEY: name}}


def get_context(request: Request) -> ApiContext:
    """The app's :class:`ApiContext`."""
    context: ApiContext = request.app.state.massalia
    return context


Context = Annotated[ApiContext, Depends(get_context)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    if header.startswith(TOKEN_PREFIX) and " " not in header.strip():
        # CKAN clients (ckanapi, the CKAN CLI) send the bare token as the whole header: one of ours is accepted.
        return header.strip()
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthenticated",
            "Authorization must be 'Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return token.strip()


def get_principal(request: Request, context: Context) -> Principal:
    """Who is calling (bearer token, cookie session or anonymous), with CSRF checks for cookie sessions."""
    token = _bearer(request)
    if token is not None:
        try:
            principal = context.governance.authenticate_token(token)
        except AuthenticationError as error:
            raise ApiError(
                401, "unauthenticated", str(error) or "Invalid token.", headers={"WWW-Authenticate": "Bearer"}
            ) from None
        request.scope[PRINCIPAL_KEY] = principal
        return principal
    check_origin(request, context.settings.cors_origins)
    cookie = request.cookies.get(SESSION_COOKIE)
    session = context.sessions.get(cookie) if cookie else None
    if session is None:
        principal = Principal.anonymous()
    else:
        check_csrf_token(request, session.csrf_token)
        try:
            # The account as it stands now: a disabled account or a changed epoch ends the session here.
            principal = context.governance.check_session(session.principal, session.epoch)
        except AuthenticationError as error:
            if cookie:
                context.sessions.end(cookie)
            raise ApiError(401, "unauthenticated", str(error)) from None
    request.scope[PRINCIPAL_KEY] = principal
    return principal


CallingPrincipal = Annotated[Principal, Depends(get_principal)]


async def governance_reads_per_request() -> None:
    """Read a caller's facts and a project's scope once in this request (``read_once_per_request``).

    ``async``: it runs in the request's own task, whose context every thread of the request copies.
    """
    read_once_per_request()


def get_caller(
    principal: CallingPrincipal, context: Context, _reads: Annotated[None, Depends(governance_reads_per_request)]
) -> ServiceCaller:
    """The caller every guarded service takes: who calls, the app's governance, and the ``"api"`` channel."""
    return ServiceCaller(principal, context.governance, API_CHANNEL)


Caller = Annotated[ServiceCaller, Depends(get_caller)]


WAREHOUSE_BUSY_RETRY_S = 5


def get_warehouse(context: Context) -> Iterator[Engine]:
    """The warehouse engine, the request's own connection, closed after it.

    The connection is opened through the app's :class:`~massalia.api.warehouse.WarehouseKeeper`, which keeps
    the warehouse open between requests (cheap connections) and lets it go when idle or replaced. An embedded
    warehouse locked by another process (an ETL run from the command line) answers 503 with ``Retry-After``
    rather than an internal error.
    """
    keeper = context.warehouses
    if keeper is None:  # for the type checker: __post_init__ always sets it
        raise RuntimeError("the API context has no warehouse keeper")
    try:
        engine = keeper.connect()
    except WarehouseBusyError:
        raise ApiError(
            503, "unavailable", "The warehouse is busy (another process is writing to it); retry shortly.",
            headers={"Retry-After": str(WAREHOUSE_BUSY_RETRY_S)},
        ) from None  # fmt: skip
    except HomeNotInitializedError:
        # The server's home has no warehouse yet: say so rather than create an empty one.
        raise ApiError(503, "unavailable", "The warehouse is not initialized yet (massalia init).") from None
    try:
        yield engine
    finally:
        keeper.release(engine)


Warehouse = Annotated[Engine, Depends(get_warehouse)]
