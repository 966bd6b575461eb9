"""The application factory: one FastAPI app over a ``MASSALIA_HOME``, its governance and its warehouse."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts
from starlette.middleware.cors import CORSMiddleware

from massalia import __version__
from massalia.api.deps import ACTION_KEY, ApiContext, action
from massalia.api.errors import ERROR_RESPONSES, RequestIdMiddleware, install_error_handlers
from massalia.api.ratelimit import FailureLimiter
from massalia.api.routes import audit, auth, privacy, projects, users
from massalia.api.security import CSRF_HEADER, BodySizeLimitMiddleware, SecurityHeadersMiddleware
from massalia.api.sessions import SessionStore
from massalia.api.settings import ApiSettings
from massalia.config import Home
from massalia.config import home as default_home
from massalia.governance import Governance, disclosure
from massalia.governance.rights import Rights, load_rights
from massalia.plugins import Contributions, RegistryError, configured_domains, load_domains
from massalia.portal import mount_portal

API_PREFIX = "/api/v1"

DESCRIPTION = """Massalia's HTTP API: research projects and access requests, cohorts, the research mart,
pseudonymized extracts, patient views, data quality and the audit trail. Authenticate with a cookie session
(`POST /api/v1/auth/login`, then send the returned `csrf_token` in `X-CSRF-Token` on unsafe methods) or
with an API token (`Authorization: Bearer <token>`). Every data access is decided by the governance
layer and written to the transparency log. Errors share one shape:
`{"error": {"code", "message", "details": [{"loc", "msg"}], "request_id"}}`."""


@dataclass(frozen=True)
class RouteInfo:
    """One HTTP route: method, path template and the governance action it is checked against."""

    method: str
    path: str
    action: str | None
    summary: str


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every route of ``app`` (included routers flattened), with its declared action (``x-massalia-action``).

    The rights-matrix test builds its cases from this table, so a new route without a rule fails it.
    """
    table: list[RouteInfo] = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        extra = getattr(route, "openapi_extra", None) or {}
        summary = (getattr(route, "description", "") or "").strip().split("\n")[0]
        for method in sorted(getattr(route, "methods", None) or ()):
            if method != "HEAD":
                table.append(RouteInfo(method, str(context.path), extra.get(ACTION_KEY), summary))
    return table


def _oidc_client() -> Any:
    from massalia.governance.oidc import OidcClient, settings_from_env

    settings = settings_from_env(os.environ)
    return OidcClient(settings) if settings is not None else None


ACCOUNT_FAILURE_FACTOR = 4
"""An account, whatever the address, may fail this many times the (account, address) bound."""
ADDRESS_FAILURE_FACTOR = 10
"""An address, whatever the account, may fail this many times the (account, address) bound."""


def login_limiter(max_failures: int, window: float, **options: Any) -> FailureLimiter:
    """The login limiter: ``max_failures`` per account and address, looser bounds per account and per address.

    Examples
    --------
    >>> login_limiter(5, 60.0).limit("ip:10.0.0.1")
    50
    """
    limits = {"user:": ACCOUNT_FAILURE_FACTOR * max_failures, "ip:": ADDRESS_FAILURE_FACTOR * max_failures}
    return FailureLimiter(max_failures, window, limits=limits, **options)


def check_domain_routes(contributions: Contributions, rights: Rights) -> None:
    """Refuse a domain route that declares no action of that domain's rights (``x-massalia-action``).

    Every route of a domain must name the action its guarded service checks, one of the domain's own
    (``<domain>.<area>.<verb>``) declared in the merged rights: a third-party route without one, or borrowing
    a core or another domain's action, stops the app from starting instead of serving unannounced data.

    Raises
    ------
    RegistryError
        Naming the domain, the route and what it declared.
    """
    for contributed in contributions.routers:
        for route in getattr(contributed.item, "routes", ()):
            declared = (getattr(route, "openapi_extra", None) or {}).get(ACTION_KEY)
            methods = ",".join(sorted(getattr(route, "methods", None) or ()))
            where = f"domain {contributed.domain!r}, route {methods} {getattr(route, 'path', '?')}"
            if not isinstance(declared, str) or not declared.startswith(f"{contributed.domain}."):
                raise RegistryError(
                    f"{where}: declares the action {declared!r}; a domain's route declares one of its own actions "
                    f"('{contributed.domain}.<area>.<verb>', with massalia.api.deps.action)"
                )
            if declared not in rights:
                raise RegistryError(f"{where}: its action {declared!r} is not in the domain's rights file")


def _mount_routers(api: APIRouter, contributions: Contributions) -> None:
    """The core's routers, then every domain's, in the order the domains were loaded."""
    for module in (auth, users, projects):
        api.include_router(module.router)
    for contributed in contributions.routers:
        api.include_router(contributed.item)
    for module in (audit, privacy):
        api.include_router(module.router)


def create_app(
    home: Home | None = None, *, settings: ApiSettings | None = None, domains: Iterable[str] = ()
) -> FastAPI:
    """Build the API app for ``home`` (default: the active ``MASSALIA_HOME``).

    The domains are loaded here (built-ins, installed entry points, ``MASSALIA_DOMAINS``, then ``domains``):
    their routers are mounted under the API prefix and their rights merged with the core's, and their portal
    pages added to the portal's (:mod:`massalia.portal`, served at ``/`` and ``/portal/...``).

    Parameters
    ----------
    home
        The data folder: warehouse, metadata database, ledger, reports.
    settings
        Network behaviour (CORS, TLS, sessions, login throttling); default :meth:`ApiSettings.from_env`.
    domains
        More domain entry modules (a deployment's own, a test's).

    Examples
    --------
    >>> from fastapi.testclient import TestClient  # doctest: +SKIP
    >>> client = TestClient(create_app(home("/tmp/massalia")))  # doctest: +SKIP
    >>> client.get("/api/v1/auth/whoami").json()["subject"]  # doctest: +SKIP
    'anonymous'
    """
    data = (home or default_home()).ensure()
    config = settings or ApiSettings.from_env()
    contributions = load_domains([*configured_domains(), *domains])
    rights = load_rights(domains=contributions)
    check_domain_routes(contributions, rights)
    context = ApiContext(
        home=data,
        settings=config,
        # Anonymous calls are free to make: their audit entries are rate-bounded (issue 10, section 5).
        governance=Governance(
            data.metadata_url,
            data.ledger,
            key_path=Path(data.root) / "keys" / "master.key",
            rights=rights,
            bound_anonymous_audit=True,
        ),
        sessions=SessionStore(config.session_ttl),
        login_limiter=login_limiter(config.login_max_failures, config.login_window),
        oidc=_oidc_client(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The first noisy count would otherwise wait for OpenDP's native library to load.
        threading.Thread(target=disclosure.prepare, name="massalia-warm-up", daemon=True).start()
        yield
        if context.warehouses is not None:
            context.warehouses.close()
        context.governance.close()
        if context.oidc is not None:
            context.oidc.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Massalia API",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # the stock docs pages load scripts from a CDN: refused (no third party, CSP 'self')
        redoc_url=None,
    )
    app.state.massalia = context
    app.state.domains = contributions
    install_error_handlers(app)

    api = APIRouter(prefix=API_PREFIX, responses=ERROR_RESPONSES)

    @api.get("/health", tags=["meta"], **action("meta.health"))
    def health() -> dict[str, str]:
        """Liveness: the API answers (no data, no authentication)."""
        return {"status": "ok", "version": __version__}

    _mount_routers(api, contributions)
    app.include_router(api)
    # The web portal: its HTML shell at / and /portal/..., its assets at /static/ (pages call the API above).
    mount_portal(app, contributions, rights, api_prefix=API_PREFIX, action=action, oidc=context.oidc is not None)

    # Middleware runs outermost last-added: security headers → request id / 500 → body limit → CORS → routes.
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", CSRF_HEADER],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, https=config.https)

    return app
