"""The API test world: a temporary MASSALIA_HOME holding a copy of the shared demo warehouse,
one user per role (password and bearer token), and two approved pseudonymized projects: ``own`` (every
role user is a member) and ``other`` (only its owner, a second researcher, is)."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from massalia.api import ApiSettings, create_app
from massalia.config import Home
from massalia.governance import Governance, ProjectScope, Role, operator_principal
from massalia.health.cohorts import import_circe

PASSWORD = "correct horse battery staple"  # noqa: S105 (a test account of a throwaway home)
LOGIN_ROLES = ("researcher", "dpo")  # accounts with a password (argon2 costs ~0.4 s a hash); others use tokens
ROLE_USERS: dict[str, tuple[str, str | None]] = {
    "admin": ("alice.admin", None),
    "data_engineer": ("eve.engineer", None),
    "dpo": ("dora.dpo", None),
    "researcher": ("rita.researcher", None),
    "clinician": ("carl.clinician", "chu_nord"),
    "public": ("paul.public", None),
}
OTHER_OWNER = "oscar.researcher"
DECIDER = "denise.dpo"

SCOPE_VARIABLES = ("sex", "primary_site", "stage_group", "diagnosis_date")
OVARY = 4181351  # "Malignant tumor of ovary": fewer than 10 persons in the 600-patient demo warehouse


def circe_cohort(concept_id: int = OVARY, *, women_only: bool = True) -> dict[str, Any]:
    """An ATLAS/Circe cohort: first diagnosis of ``concept_id`` (with descendants), optionally women only."""
    rules = []
    if women_only:
        rules.append({
            "name": "women",
            "expression": {"Type": "ALL", "DemographicCriteriaList": [{"Gender": [{"CONCEPT_ID": 8532}]}]},
        })  # fmt: skip
    return {
        "ConceptSets": [
            {"id": 0, "name": "cancer", "expression": {
                "items": [{"concept": {"CONCEPT_ID": concept_id}, "includeDescendants": True}]}},
        ],
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
            "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "First"},
        },
        "InclusionRules": rules,
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
    }  # fmt: skip


def massalia_json(circe: dict[str, Any]) -> dict[str, Any]:
    """The Massalia JSON of a Circe definition."""
    definition: dict[str, Any] = import_circe(circe).model_dump(mode="json", exclude_none=True)
    return definition


@dataclass
class ApiWorld:
    """The app, its governance, its users and projects."""

    home: Home
    app: FastAPI
    gov: Governance
    tokens: dict[str, str] = field(default_factory=dict)
    usernames: dict[str, str] = field(default_factory=dict)
    own_project: int = 0
    other_project: int = 0
    cohort: dict[str, Any] = field(default_factory=dict)
    extra_apps: list[FastAPI] = field(default_factory=list)

    def client(self, role: str | None = None, **kwargs: Any) -> TestClient:
        """A client calling as ``role`` (bearer token), or anonymously when ``role`` is None."""
        client = TestClient(self.app, raise_server_exceptions=False, **kwargs)
        if role is not None:
            client.headers["Authorization"] = f"Bearer {self.tokens[role]}"
        return client

    def principal(self, role: str) -> Any:
        """The principal of a role's user (as its bearer token gives)."""
        return self.gov.authenticate_token(self.tokens[role])

    def app_with(self, settings: ApiSettings) -> FastAPI:
        """Another app over the same home (same users and projects) with other settings."""
        app = create_app(self.home, settings=settings)
        self.extra_apps.append(app)
        return app

    def close(self) -> None:
        """Close every governance service opened for this world."""
        for app in [self.app, *self.extra_apps]:
            app.state.massalia.governance.close()


def make_home(root: Path, warehouse: Path | None) -> Home:
    """A home under ``root`` with a copy of ``warehouse`` (the shared demo warehouse) when given."""
    home = Home(root).ensure()
    if warehouse is not None:
        shutil.copy(warehouse, home.warehouse)
    return home


def build_world(root: Path, warehouse: Path | None, settings: ApiSettings | None = None) -> ApiWorld:
    """Users for every role, two approved pseudonymized projects scoped to :func:`circe_cohort`."""
    home = make_home(root, warehouse)
    app = create_app(home, settings=settings or ApiSettings())
    gov: Governance = app.state.massalia.governance
    operator = operator_principal()
    world = ApiWorld(home=home, app=app, gov=gov)
    for role, (username, site) in ROLE_USERS.items():
        password = PASSWORD if role in LOGIN_ROLES else None
        gov.create_user(username, password, roles=[Role(role)], site=site, actor=operator)
        world.usernames[role] = username
        world.tokens[role] = gov.create_token(username, None, dt.timedelta(days=1), actor=operator)
    gov.create_user(OTHER_OWNER, None, roles=[Role.RESEARCHER], actor=operator)
    world.tokens["other_owner"] = gov.create_token(OTHER_OWNER, None, dt.timedelta(days=1), actor=operator)
    # Separation of duties: the role-matrix DPO is a member of the own project, so another DPO, a member
    # of no project, decides the requests.
    gov.create_user(DECIDER, None, roles=[Role.DPO], actor=operator)
    world.tokens["decider"] = gov.create_token(DECIDER, None, dt.timedelta(days=1), actor=operator)
    cohort = massalia_json(circe_cohort())
    world.cohort = cohort
    definition_hash = import_circe(circe_cohort()).definition_hash()
    expires = dt.date.today() + dt.timedelta(days=365)
    dpo = world.principal("decider")

    def project(owner: str, members: list[str]) -> int:
        actor = world.principal(owner)
        scope = ProjectScope(cohort=cohort, cohort_hash=definition_hash, variables=SCOPE_VARIABLES)
        created = gov.create_project(
            f"Ovarian cancer outcomes ({owner})", "Survival of ovarian cancer patients by treatment line.",
            scope=scope, access_level="pseudonymized", expires=expires, actor=actor,
        )  # fmt: skip
        for member in members:
            gov.add_member(created.id, member, actor=operator)
        request = gov.file_request(created.id, actor=actor, justification="Approved protocol ONCO-2026-01.")
        gov.decide_request(request.id, True, "Protocol and DPIA reviewed.", actor=dpo)
        return created.id

    world.own_project = project("researcher", [world.usernames[r] for r in ROLE_USERS if r != "researcher"])
    world.other_project = project("other_owner", [])
    return world
