"""The portal's pages: the core's own (sign-in, home, account) and those the domains contribute.

Every page is a :class:`massalia.plugins.PortalPage`. :func:`collect_pages` puts the core's and the domains'
in one :class:`~massalia.plugins.Registry` by name and one by address, so that a page named or placed twice
is refused when the app starts, and resolves each page's module to its ``/static/...`` address and the right
of its navigation entry to the roles that may hold it (a hint for the menu: the API decides what a page may
read).

Examples
--------
>>> from massalia.governance.rights import load_rights
>>> from massalia.plugins import Contributions
>>> [entry.page.path for entry in collect_pages(Contributions(), load_rights())]
['/', '/portal/signin', '/portal/account']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from massalia.governance.rights import Rights
from massalia.plugins import Contributions, PortalPage, Registry, RegistryError

CORE_DOMAIN = "portal"
"""The name the core's pages are registered under (``portal.home``...)."""

CORE_PAGES: tuple[PortalPage, ...] = (
    PortalPage("portal.home", "/", "Accueil", "Home", "js/pages/home.js", group="main"),
    PortalPage(
        "portal.signin", "/portal/signin", "Connexion", "Sign in", "js/pages/signin.js", group="main", nav=False
    ),
    PortalPage("portal.account", "/portal/account", "Mon compte", "My account", "js/pages/account.js", group="account"),
)
"""The core's pages: home (``/``), sign-in and the account page (roles, projects, privacy budget)."""

PUBLIC_PAGES = frozenset({"portal.signin"})
"""Pages an anonymous visitor may stay on; any other page sends them to sign-in first."""


@dataclass(frozen=True)
class PageEntry:
    """A page as the browser's shell sees it: where it lives, its module's address, who sees its entry."""

    page: PortalPage
    domain: str
    module_url: str
    roles: tuple[str, ...] | None
    """Roles for which the navigation entry is shown (``None``: every signed-in user)."""

    @property
    def asset(self) -> str:
        """The module's key in the asset index (its address without ``/static/``)."""
        return self.module_url.removeprefix("/static/")

    def as_json(self, static: str = "/static/") -> dict[str, Any]:
        """The entry as the shell's configuration lists it, its module under ``static`` (the versioned prefix)."""
        page = self.page
        return {
            "name": page.name, "path": page.path, "label": {"fr": page.label_fr, "en": page.label_en},
            "module": static + self.asset, "group": page.group, "nav": page.nav, "roles": self.roles,
            "public": page.name in PUBLIC_PAGES or page.public,
        }  # fmt: skip


def module_url(domain: str, module: str) -> str:
    """The address a page module is served at: the core's under ``/static/``, a domain's under its own folder.

    Examples
    --------
    >>> module_url("portal", "js/pages/home.js")
    '/static/js/pages/home.js'
    >>> module_url("health", "feasibility.js")
    '/static/domains/health/feasibility.js'
    """
    return f"/static/{module}" if domain == CORE_DOMAIN else f"/static/domains/{domain}/{module}"


def _roles(rights: Rights, page: PortalPage) -> tuple[str, ...] | None:
    if page.right is None:
        return None
    if page.right not in rights:
        raise RegistryError(f"portal page {page.name!r}: its right {page.right!r} is not an action of the rights")
    roles = {role.value for rule in rights.get(page.right).rules for role in rule.roles}
    return tuple(sorted(roles))


def collect_pages(contributions: Contributions, rights: Rights) -> list[PageEntry]:
    """The core's pages, then each domain's in load order; a name or address used twice is refused.

    Raises
    ------
    RegistryError
        Two pages with one name or one address, or a page whose right is not an action of ``rights``.
    """
    by_name: Registry[PageEntry] = Registry("portal page")
    by_path: Registry[str] = Registry("portal page address")
    contributed = [(CORE_DOMAIN, page) for page in CORE_PAGES]
    contributed += [(item.domain, item.item) for _, item in contributions.portal_pages.items()]
    for domain, page in contributed:
        if domain != CORE_DOMAIN and domain not in contributions.portal_assets:
            raise RegistryError(f"portal page {page.name!r}: domain {domain!r} registered no portal asset folder")
        entry = PageEntry(page, domain, module_url(domain, page.module), _roles(rights, page))
        by_path.register(page.path, page.name)
        by_name.register(page.name, entry)
    return [entry for _, entry in by_name.items()]
