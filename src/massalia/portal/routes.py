"""The portal's routes on the app: the HTML shell at ``/`` and ``/portal/...``, the assets at ``/static/...``.

The shell links every asset under ``/static/v/<build hash>/...`` (:attr:`Portal.static`), answered with
``Cache-Control: public, max-age=31536000, immutable``: the hash changes with any asset, so a browser never keeps a
stale one, and it loads a page's ES modules from its cache without asking, instead of revalidating each level of
the import chain one round trip after the other. A hash other than the running build's is a 404 (a stale shell
reloads; nothing is served under a name that could later mean other bytes). The plain ``/static/...`` still
serves, revalidated by ``ETag`` (``no-cache``), for old links and tools.

They declare the public actions :data:`PORTAL_ACTIONS` (``x-massalia-action``, like ``meta.health``): they
serve the same documents to everyone, read no data and decide no right, so no rule of ``rights.yaml`` guards
them; the rights matrix lists them with their expected statuses, and the OpenAPI document leaves them out
(they are not part of the JSON API).

The portal sits under the API in the layers (the app factory mounts it): the API hands it its way of
declaring a route's action and whether OpenID Connect is configured, so the portal imports no API module.
A missing asset is a Starlette ``HTTPException``, which the API's handlers answer in their one error shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException

from massalia import __version__
from massalia.governance.rights import Rights
from massalia.plugins import Contributions, RegistryError
from massalia.portal.assets import STATIC_DIR, VERSION_CHARS, AssetIndex
from massalia.portal.pages import PageEntry, collect_pages
from massalia.portal.shell import render_shell

PORTAL_ACTIONS = ("portal.page", "portal.asset")
"""The public actions the portal's routes declare (open to every caller, like ``meta.health``)."""

MAX_PAGE_PATH = 256
IMMUTABLE = "public, max-age=31536000, immutable"
"""How long a versioned asset is kept: a year, never revalidated (its address changes with its bytes)."""
ENTRY_MODULE = "js/app.js"
"""The shell's module; it and the page's module are preloaded with their static imports (``modulepreload``)."""

ActionDeclaration = Callable[[str], dict[str, Any]]
"""How the API declares a route's action: route keyword arguments (``massalia.api.deps.action``)."""


@dataclass(frozen=True)
class Portal:
    """What the portal serves for one app: its pages, its asset index, where the API is, whether OIDC is on."""

    pages: tuple[PageEntry, ...]
    assets: AssetIndex
    api_prefix: str
    oidc: bool = False
    preloads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per page name: the modules its shell preloads (the entry's and the page's static import graphs)."""

    def page_at(self, path: str) -> PageEntry | None:
        """The page served at ``path``, or ``None``."""
        return next((entry for entry in self.pages if entry.page.path == path), None)

    @property
    def static(self) -> str:
        """Where the shell links the assets: ``/static/v/<build hash>/`` (kept for good by browsers)."""
        return f"/static/v/{self.assets.version}/"

    def config(self, page: PageEntry | None) -> dict[str, Any]:
        """The shell's configuration: every page, the current one, whether OpenID Connect sign-in is offered."""
        return {
            "api": self.api_prefix, "version": __version__, "oidc": self.oidc, "default_lang": "fr",
            "static": self.static, "page": page.page.name if page else None,
            "pages": [entry.as_json(self.static) for entry in self.pages],
        }  # fmt: skip

    def shell(self, path: str) -> HTMLResponse:
        """The HTML shell for ``path``; an address no page has still gets it (with "not found"), as a 404."""
        page = self.page_at(path) if len(path) <= MAX_PAGE_PATH else None
        # The page's module and its imports too: they would otherwise be asked for only after the sign-in check,
        # one import level after the other.
        preload = self.preloads.get(page.page.name, ()) if page else self.assets.static_imports(ENTRY_MODULE)
        document = render_shell(self.config(page), title="Massalia", static=self.static, preload=preload)
        return HTMLResponse(document, status_code=200 if page else 404)

    def asset(self, name: str, request: Request, *, version: str | None = None) -> Response:
        """A static file, gzip-compressed when the browser accepts it, ``304`` when its ``ETag`` still matches.

        With ``version`` (a versioned address), only the running build's hash serves, as ``immutable``; the
        plain address is revalidated (``no-cache``).
        """
        if version is not None and (len(version) != VERSION_CHARS or version != self.assets.version):
            raise HTTPException(404, "No such portal asset version (the portal was updated: reload the page).")
        found = self.assets.get(name)
        if found is None:
            raise HTTPException(404, "No such portal asset.")
        caching = "no-cache" if version is None else IMMUTABLE
        headers = {"ETag": found.etag, "Cache-Control": caching, "Vary": "Accept-Encoding"}
        if request.headers.get("if-none-match") == found.etag:
            return Response(status_code=304, headers=headers)
        body = found.body
        if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
            body, headers["Content-Encoding"] = found.gzipped, "gzip"
        return Response(body, media_type=found.content_type, headers=headers)


def portal_router(portal: Portal, action: ActionDeclaration) -> APIRouter:
    """The portal's four routes over ``portal``, each declaring its public action with ``action``."""
    router = APIRouter(include_in_schema=False, tags=["portal"])

    @router.get("/", response_class=HTMLResponse, **action("portal.page"))
    def home_page() -> HTMLResponse:
        """The portal's home page (the HTML shell; its module loads in the browser)."""
        return portal.shell("/")

    @router.get("/portal/{page:path}", response_class=HTMLResponse, **action("portal.page"))
    def portal_page(page: str) -> HTMLResponse:
        """A portal page by its address (the HTML shell; 404 for an address no page has)."""
        return portal.shell(f"/portal/{page}")

    # Before the plain route, which would take ``v/<hash>/...`` for an asset's name (and answer 404).
    @router.get("/static/v/{version}/{asset:path}", **action("portal.asset"))
    def versioned_asset(version: str, asset: str, request: Request) -> Response:
        """A static file under the running build's hash, kept for good by browsers (``immutable``)."""
        return portal.asset(asset, request, version=version)

    @router.get("/static/{asset:path}", **action("portal.asset"))
    def static_asset(asset: str, request: Request) -> Response:
        """A static file of the portal (scripts, styles, catalogues, vendored libraries), revalidated by ETag."""
        return portal.asset(asset, request)

    return router


def mount_portal(
    app: FastAPI, contributions: Contributions, rights: Rights, *, api_prefix: str, action: ActionDeclaration,
    oidc: bool = False,
) -> Portal:  # fmt: skip
    """Collect the pages, index the assets and add the portal's routes to ``app`` (kept as ``app.state.portal``).

    Parameters
    ----------
    app
        The HTTP app (its error handlers answer the portal's errors too).
    contributions, rights
        The loaded domains (their pages and asset folders) and the merged rights (the pages' rights).
    api_prefix
        Where the JSON API is mounted (``/api/v1``), which the pages call.
    action
        Declares a route's governance action (``massalia.api.deps.action``).
    oidc
        Whether OpenID Connect is configured (the sign-in page then offers it).

    Raises
    ------
    RegistryError
        A page named or placed twice, a right that is not an action, or a page whose module is not among
        its domain's assets.
    """
    pages = collect_pages(contributions, rights)
    assets = AssetIndex.build(STATIC_DIR, dict(contributions.portal_assets.items()))
    for entry in pages:
        if entry.asset not in assets:
            raise RegistryError(f"portal page {entry.page.name!r}: its module {entry.module_url} is not an asset")
    core = assets.static_imports(ENTRY_MODULE)
    preloads = {
        entry.page.name: tuple(dict.fromkeys([*core, entry.asset, *assets.static_imports(entry.asset)]))
        for entry in pages
    }
    portal = Portal(tuple(pages), assets, api_prefix, oidc, preloads)
    app.state.portal = portal
    app.include_router(portal_router(portal, action))
    return portal
