"""The research portal: the web pages people use in a browser, served by the HTTP app itself.

An interface like :mod:`massalia.api` and :mod:`massalia.cli`, under the API in the layers: the app factory
mounts it (:func:`mount_portal`), serving an HTML shell at ``/`` and ``/portal/...`` and the static assets (ES modules,
styles, message catalogues, vendored libraries) at ``/static/...``. Pages reach data only through the JSON
API (``/api/v1/...``), from the browser, with the session cookie and the ``X-CSRF-Token`` header: the portal
itself reads no data and decides no right. Domains contribute pages and navigation entries
(:meth:`massalia.plugins.Contributions.add_portal_page`); the core contributes sign-in, home and account
(:data:`CORE_PAGES`). See ``docs/portal.md``.
"""

from massalia.portal.assets import AssetIndex
from massalia.portal.pages import CORE_PAGES, PageEntry, collect_pages
from massalia.portal.routes import PORTAL_ACTIONS, Portal, mount_portal, portal_router

__all__ = [
    "CORE_PAGES",
    "PORTAL_ACTIONS",
    "AssetIndex",
    "PageEntry",
    "Portal",
    "collect_pages",
    "mount_portal",
    "portal_router",
]
