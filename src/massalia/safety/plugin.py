"""The public-safety domain's entry module: what safety contributes when the API or the command line is created.

Like health, safety is a plug-in listed in :data:`massalia.plugins.BUILTIN_DOMAINS`; nothing is registered at
import. This is the one module of ``massalia.safety`` allowed to import the interfaces (its routers and its
command group), by an ``ignore_imports`` entry of the import-linter layers contract.

Examples
--------
>>> from massalia.plugins import load_domains
>>> contributions = load_domains(builtins=("massalia.safety.plugin",))
>>> sorted(contributions.cli_groups)
['safety']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from massalia.api.routes.safety import alarms, incidents, live, pages
from massalia.api.routes.safety import search as search_routes
from massalia.api.routes.safety import views as view_routes
from massalia.cli.safety import safety_app
from massalia.plugins import Contributions, PortalPage

RIGHTS_FILE = Path(__file__).with_name("rights.yaml")
"""Safety's actions (``safety.<area>.<verb>``), merged with the core's at start-up."""

PORTAL_ASSETS = Path(__file__).with_name("portal")
"""Safety's portal pages (ES modules), stylesheet and message catalogues, served at ``/static/domains/safety/``."""

PORTAL_PAGES: tuple[PortalPage, ...] = (
    PortalPage("safety.search", "/portal/safety/search", "Recherche main courante", "Incident search", "search.js",
               right="safety.search.read", group="safety"),
    PortalPage("safety.dashboard", "/portal/safety/dashboard", "Sécurité publique : tableau de bord",
               "Public safety dashboard", "dashboard.js", right="safety.stats.read", group="safety"),
    PortalPage("safety.incidents", "/portal/safety/incidents", "Incidents", "Incidents", "incidents.js",
               right="safety.incident.list", group="safety"),
    PortalPage("safety.situation", "/portal/safety/situation", "Situation en direct", "Live situation", "situation.js",
               right="safety.live.read", group="safety"),
)  # fmt: skip
"""Search, the dashboard (statistics, bias notes, offline map, timeline brushing the map), the incident list and
detail (history, merged sources), the live situation."""


@dataclass(frozen=True)
class SafetyDomain:
    """The unified incident log: catalogue, incidents, statistics, map and timeline aggregates."""

    name: str = "safety"

    def contribute(self, contributions: Contributions) -> None:
        """Register safety's router, command group and rights."""
        contributions.add_router(incidents.router)
        contributions.add_router(search_routes.router)
        contributions.add_router(pages.router)
        contributions.add_router(view_routes.router)
        contributions.add_router(alarms.router)
        contributions.add_router(live.router)
        contributions.add_cli_group("safety", safety_app)
        contributions.add_rights(RIGHTS_FILE)
        contributions.add_portal_assets(PORTAL_ASSETS)
        for page in PORTAL_PAGES:
            contributions.add_portal_page(page)


DOMAIN = SafetyDomain()
