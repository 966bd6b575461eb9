"""A small open-data world: a home, its governance, a platform admin, two producers of two organizations."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from massalia.config import Home
from massalia.governance import Caller, Governance, Principal, load_rights, operator_principal
from massalia.opendata.catalog import Catalog
from massalia.plugins import load_domains


@dataclass
class OpenDataWorld:
    """The home, its governance and catalog, and a caller per kind of user."""

    home: Home
    gov: Governance
    catalog: Catalog
    callers: dict[str, Caller]

    def caller(self, name: str) -> Caller:
        return self.callers[name]


def make_world(root: Path) -> OpenDataWorld:
    """A home with open data's rights merged, an admin, a producer of ``region-sud``, one of ``ville-nice``,
    a researcher who produces nothing, and the anonymous visitor."""
    home = Home(root).ensure()
    home.mark_initialized("duckdb")
    rights = load_rights(domains=load_domains(builtins=("massalia.opendata.plugin",)))
    gov = Governance(home.metadata_url, home.ledger, key_path=root / "keys" / "master.key", rights=rights)
    operator = operator_principal()
    principals: dict[str, Principal] = {}
    for name, roles in (
        ("admin", ["admin"]),
        ("alice", ["researcher"]),
        ("bob", ["researcher"]),
        ("carol", ["researcher"]),
    ):
        user = gov.create_user(f"od-{name}", None, roles, actor=operator)
        principals[name] = user
    callers = {name: Caller(principal, gov, "test") for name, principal in principals.items()}
    callers["anonymous"] = Caller(Principal.anonymous(), gov, "test")
    catalog = Catalog.for_home(home)
    admin = callers["admin"]
    catalog.organization_create(
        admin, {"name": "region-sud", "title": "Région Sud", "users": [{"name": "od-alice", "capacity": "editor"}]}
    )
    catalog.organization_create(
        admin, {"name": "ville-nice", "title": "Ville de Nice", "users": [{"name": "od-bob", "capacity": "admin"}]}
    )
    catalog.group_create(admin, {"name": "mobilite", "title": "Mobilité"})
    return OpenDataWorld(home, gov, catalog, callers)


def copy_world(template: OpenDataWorld, root: Path) -> OpenDataWorld:
    """A fresh copy of a world made once (its metadata, keys and ledger), with its own governance."""
    shutil.copytree(template.home.root, root)
    home = Home(root).ensure()
    gov = Governance(home.metadata_url, home.ledger, key_path=root / "keys" / "master.key", rights=template.gov.rights)
    callers = {name: Caller(caller.principal, gov, "test") for name, caller in template.callers.items()}
    return OpenDataWorld(home, gov, Catalog.for_home(home), callers)
