"""The open-data domain's entry module: what open data contributes when the API or the command line is created.

Open data is a domain plug-in like health (:mod:`massalia.plugins`): listed in
:data:`massalia.plugins.BUILTIN_DOMAINS`, it registers nothing on import. This is the one module of
``massalia.opendata`` that imports its routers and command group (an ``ignore_imports`` entry of the
import-linter layers contract says so).

Examples
--------
>>> from massalia.plugins import load_domains
>>> contributions = load_domains(builtins=("massalia.opendata.plugin",))
>>> sorted(contributions.cli_groups)
['opendata']
>>> contributions.rights.get("opendata").name
'rights.yaml'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from massalia.api.routes.opendata import action, certification, publishing
from massalia.cli.opendata import opendata_app
from massalia.plugins import Contributions, PortalPage

RIGHTS_FILE = Path(__file__).with_name("rights.yaml")
"""Open data's actions (``opendata.<area>.<verb>``), merged with the core's at start-up."""

PORTAL_ASSETS = Path(__file__).with_name("portal")
"""Open data's portal pages (ES modules), stylesheet and message catalogues, served at ``/static/domains/opendata/``."""

PORTAL_PAGES: tuple[PortalPage, ...] = (
    PortalPage(
        "opendata.catalog",
        "/portal/opendata/catalog",
        "Données ouvertes",
        "Open data",
        "catalog.js",
        right="opendata.catalog.read",
        group="opendata",
        public=True,
    ),
    PortalPage(
        "opendata.dataset",
        "/portal/opendata/dataset",
        "Jeu de données",
        "Dataset",
        "dataset.js",
        right="opendata.catalog.read",
        group="opendata",
        nav=False,
        public=True,
    ),
    PortalPage(
        "opendata.publish",
        "/portal/opendata/publish",
        "Publier des données",
        "Publish data",
        "publish.js",
        right="opendata.dataset.publish",
        group="opendata",
    ),
)
"""The public catalog (search and facets), a dataset's page (anonymous allowed) and the producers' publishing page."""


@dataclass(frozen=True)
class OpenDataDomain:
    """The open-data catalog, its CKAN-compatible Action API and its datastore."""

    name: str = "opendata"

    def contribute(self, contributions: Contributions) -> None:
        """Register open data's router, command group and rights."""
        contributions.add_router(action.router)
        contributions.add_router(publishing.router)
        contributions.add_router(certification.router)
        contributions.add_cli_group("opendata", opendata_app)
        contributions.add_rights(RIGHTS_FILE)
        contributions.add_portal_assets(PORTAL_ASSETS)
        for page in PORTAL_PAGES:
            contributions.add_portal_page(page)


DOMAIN = OpenDataDomain()
