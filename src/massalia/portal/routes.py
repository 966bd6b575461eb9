"""The portal's routes on the app: the HTML shell at ``/`` and ``/portal/...``, the assets at ``/static/...``.

They declare the public actions :data:`PORTAL_ACTIONS` (``x-massalia-action``, like ``meta.health``): they
serve the same documents to everyone, read no data and decide no right, so no rule of ``rights.yaml`` guards
them; the rights matrix lists them with their expected statuses, and the OpenAPI document leaves them out
(they are not part of the JSON API).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from massalia import __version__
from massalia.api.deps import action, get_context
from massalia.api.errors import ApiError
from massalia.governance.rights import Rights
from massalia.plugins import Contributions, RegistryError
from massalia.portal.assets import STATIC_DIR, AssetIndex
from massalia.portal.pages import PageEntry, collect_pages
from massalia.portal.shell import render_shell

PORTAL_ACTIONS = ("portal.page", "portal.asset")
"""The public actions the portal's routes declare (open to every caller, like ``meta.health``)."""

MAX_PAGE_PATH = 256

router = APIRouter(include_in_schema=False, tags=["portal"])


@dataclass(frozen=True)
class Portal:
    """What the portal serves for one app: its pages by address and its asset index."""

    pages: tuple[PageEntry, ...]
    assets: AssetIndex
    api_prefix: str

    def page_at(self, path: str) -> PageEntry | None:
        """The page served at ``path``, or ``None``."""
        return next((entry for entry in self.pages if entry.page.path == path), None)

    def config(self, page: PageEntry | None, *, oidc: bool) -> dict[str, Any]:
        """The shell's configuration: every page, the current one, whether OpenID Connect sign-in is offered."""
        return {
            "api": self.api_prefix, "version": __version__, "oidc": oidc, "default_lang": "fr",
            "page": page.page.name if page else None, "pages": [entry.as_json() for entry in self.pages],
        }  # fmt: skip


def _portal(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def _shell(request: Request, path: str) -> HTMLResponse:
    portal = _portal(request)
    page = portal.page_at(path) if len(path) <= MAX_PAGE_PATH else None
    config = portal.config(page, oidc=get_context(request).oidc is not None)
    # An unknown address still gets the shell (its banner and a "page not found" message), with a 404 status.
    return HTMLResponse(render_shell(config, title="Massalia"), status_code=200 if page else 404)


@router.get("/", response_class=HTMLResponse, **action("portal.page"))
def home_page(request: Request) -> HTMLResponse:
    """The portal's home page (the HTML shell; its module loads in the browser)."""
    return _shell(request, "/")


@router.get("/portal/{page:path}", response_class=HTMLResponse, **action("portal.page"))
def portal_page(page: str, request: Request) -> HTMLResponse:
    """A portal page by its address (the HTML shell; 404 for an address no page has)."""
    return _shell(request, f"/portal/{page}")


@router.get("/static/{asset:path}", **action("portal.asset"))
def static_asset(asset: str, request: Request) -> Response:
    """A static file of the portal (scripts, styles, catalogues, vendored libraries), revalidated by ETag."""
    found = _portal(request).assets.get(asset)
    if found is None:
        raise ApiError(404, "not_found", "No such portal asset.")
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=304, headers=headers)
    body = found.body
    if found.gzipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        body, headers["Content-Encoding"] = found.gzipped, "gzip"
    return Response(body, media_type=found.content_type, headers=headers)


def mount_portal(app: FastAPI, contributions: Contributions, rights: Rights, *, api_prefix: str) -> Portal:
    """Collect the pages, index the assets and add the portal's routes to ``app``.

    Raises
    ------
    RegistryError
        A page named or placed twice, a right that is not an action, or a page whose module is not among
        its domain's assets.
    """
    pages = collect_pages(contributions, rights)
    assets = AssetIndex.build(STATIC_DIR, dict(contributions.portal_assets.items()))
    for entry in pages:
        if entry.module_url.removeprefix("/static/") not in assets:
            raise RegistryError(f"portal page {entry.page.name!r}: its module {entry.module_url} is not an asset")
    portal = Portal(tuple(pages), assets, api_prefix)
    app.state.portal = portal
    app.include_router(router)
    return portal
