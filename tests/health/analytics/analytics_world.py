"""The analytics tests' world: a governance with researchers and approved projects over the generated warehouse."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from massalia.api import ApiSettings, create_app
from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance, Principal, ProjectScope, Role, operator_principal


@dataclass
class AnalyticsWarehouse:
    path: Path
    truth: dict[str, Any]


@dataclass
class World:
    gov: Governance
    engine: DuckDBEngine
    rita: Principal  # researcher, member of the approved project `study`
    olga: Principal  # researcher, owner of another approved project, not a member of `study`
    nora: Principal  # researcher, owner of a project that was never approved
    study: int
    north: int  # rita's approved project scoped to the chu_nord site
    other: int
    draft: int


def project_of(
    gov: Governance, owner: Principal, dpo: Principal, *, approve: bool = True, sites: tuple[str, ...] = ()
) -> int:
    scope = ProjectScope(sites=sites)
    project = gov.create_project(
        "Outcomes study", "survival and treatment effectiveness", scope=scope, access_level="aggregate",
        expires=dt.date.today() + dt.timedelta(days=365), actor=owner,
    )  # fmt: skip
    if approve:
        request = gov.file_request(project.id, actor=owner, justification="protocol approved by the board")
        gov.decide_request(request.id, True, "proportionate", actor=dpo)
    return project.id


def scoped_project(world: World, scope: ProjectScope) -> int:
    """An approved project of rita's with ``scope`` (a DPO of its own decides it)."""
    project = world.gov.create_project("Pathways", "care pathways by site and period", scope=scope,
                                       access_level="aggregate", expires=dt.date.today() + dt.timedelta(days=30),
                                       actor=world.rita)  # fmt: skip
    dpo = world.gov.create_user(f"dpo{project.id}", None, [Role.DPO], actor=operator_principal())
    request = world.gov.file_request(project.id, actor=world.rita, justification="protocol approved by the board")
    world.gov.decide_request(request.id, True, "proportionate", actor=dpo)
    return project.id


@dataclass
class Served:
    """The API over a copy of the generated warehouse, with researchers rita and olga and the DPO dina."""

    app: FastAPI
    gov: Governance
    home: Home
    users: dict[str, Principal]
    tokens: dict[str, str]


@contextmanager
def serve_api(warehouse: AnalyticsWarehouse, root: Path) -> Iterator[Served]:
    """Serve a home in ``root`` holding a copy of ``warehouse``; its governance closes on exit."""
    home = Home(root).ensure()
    shutil.copy(warehouse.path, home.warehouse)
    home.mark_initialized("duckdb")
    app = create_app(home, settings=ApiSettings())
    gov: Governance = app.state.massalia.governance
    operator = operator_principal()
    users = {name: gov.create_user(name, None, [role], actor=operator)
             for name, role in (("rita", Role.RESEARCHER), ("olga", Role.RESEARCHER), ("dina", Role.DPO))}  # fmt: skip
    tokens = {name: gov.create_token(name, None, dt.timedelta(days=1), actor=operator) for name in users}
    try:
        yield Served(app, gov, home, users, tokens)
    finally:
        gov.close()


def client_of(api: dict[str, Any], who: str) -> TestClient:
    """A client of the served ``api`` (its "app" and "tokens") carrying ``who``'s token; server errors as responses."""
    client = TestClient(api["app"], raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {api['tokens'][who]}"
    return client
