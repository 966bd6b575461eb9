"""Rights matrix: every route of the app × every kind of caller × own/other project, against a table.

The cases are generated from the app's own route table (``massalia.api.route_table``), so a route added
without an entry in ``rights_matrix.yaml`` fails here; each entry's action must be the route's declared
action and an action of ``rights.yaml``. Each call is made with inputs valid for the route, so the status
says what the rights (not the validation) decided.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_world import OVARY, PASSWORD, ROLE_USERS, ApiWorld, build_world, circe_cohort

from massalia.api import create_app, route_table
from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, ProjectScope, load_rights, operator_principal

MATRIX = yaml.safe_load((Path(__file__).parent / "rights_matrix.yaml").read_text(encoding="utf-8"))
CALLERS = ("anonymous", *ROLE_USERS)


def _app_routes() -> list[tuple[str, str, str | None]]:
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(Home(Path(folder)))
        try:
            return [(r.method, r.path, r.action) for r in route_table(app)]
        finally:
            app.state.massalia.governance.close()


ROUTES = _app_routes()


def test_every_route_has_a_rule_and_its_declared_action() -> None:
    rights = load_rights()
    keys = {f"{method} {path}" for method, path, _ in ROUTES}
    missing = sorted(keys - set(MATRIX["routes"]))
    assert not missing, f"routes without an entry in rights_matrix.yaml: {missing}"
    stale = sorted(set(MATRIX["routes"]) - keys)
    assert not stale, f"rights_matrix.yaml entries for routes that do not exist: {stale}"
    for method, path, declared in ROUTES:
        entry = MATRIX["routes"][f"{method} {path}"]
        if declared is None:  # only FastAPI's own OpenAPI document route carries no action
            assert path.endswith("/openapi.json"), f"{method} {path} declares no x-massalia-action"
            continue
        assert entry["action"] == declared, f"{method} {path}: table says {entry['action']}, app says {declared}"
        assert declared in rights or declared in MATRIX["open_actions"], f"{declared} is not in rights.yaml"


def expected(method: str, path: str, caller: str, relation: str) -> int:
    entry = MATRIX["routes"][f"{method} {path}"]
    value = entry.get("status", {}).get(caller, entry["default"])
    if isinstance(value, list):
        return int(value[0] if relation == "own" else value[1])
    return int(value)


def has_relation(method: str, path: str) -> bool:
    entry = MATRIX["routes"][f"{method} {path}"]
    return "{project_id}" in path or any(isinstance(v, list) for v in entry.get("status", {}).values())


CASES = [
    pytest.param(method, path, caller, relation, id=f"{method} {path} {caller} {relation}")
    for method, path, _ in ROUTES
    if f"{method} {path}" in MATRIX["routes"]
    for caller, relation in itertools.product(CALLERS, ("own", "other"))
    if relation == "own" or has_relation(method, path)
]


# -- the world these calls run in -----------------------------------------------------------------
class Matrix:
    """The API world plus what some routes need to exist before they are called."""

    def __init__(self, world: ApiWorld) -> None:
        self.world = world
        self.counter = itertools.count(1)
        gov = world.gov
        from massalia.health.cohorts import CohortDefinition
        from massalia.health.quality import run_quality

        self.definition = CohortDefinition.model_validate(world.cohort)
        with DuckDBEngine(world.home.warehouse) as engine:  # the mart is built, cohort 1 generated (api_warehouse)
            run_quality(engine, out_dir=world.home.reports, checks=["isRequired"])
            rows = engine.query(
                "SELECT p.person_id FROM person p JOIN care_site cs ON cs.care_site_id = p.care_site_id "
                "WHERE cs.care_site_source_value = 'chu_nord' ORDER BY p.person_id LIMIT 1"
            ).to_pylist()
            cohort_people = engine.query(
                "SELECT DISTINCT subject_id FROM cohort WHERE cohort_definition_id = 1 ORDER BY 1"
            ).column("subject_id")
        self.chu_nord_person = int(rows[0]["person_id"])
        from massalia.governance.pseudonym import pseudonymize

        self.pseudonym = pseudonymize(
            cohort_people.cast("int64"), key=gov.project_key(world.own_project), project=world.own_project
        )[0].as_py()
        self.extract = self._existing_extract()
        from massalia.health import saved_cohorts
        from massalia.pipelines.lineage import LineageStore

        researcher = world.principal("researcher")
        saved = saved_cohorts.save_definition(Caller(researcher, gov), world.home.metadata_url, world.own_project,
                                              "Matrix cohort", self.definition)  # fmt: skip
        saved_cohorts.share_definition(
            Caller(researcher, gov), world.home.metadata_url, world.own_project, saved.id, True
        )
        self.saved_cohort = saved.id
        lineage = LineageStore(world.home.metadata_url)
        try:
            self.etl_run = lineage.start_run("omop", engine="duckdb")
            lineage.finish_run(self.etl_run, "success", outputs={"person": 3})
        finally:
            lineage.close()

    def _existing_extract(self) -> tuple[str, str] | None:
        """A real extract of the own project, for the download route (built by the service, as the researcher)."""
        from massalia.health import research

        out = self.world.home.root / "extracts" / f"project-{self.world.own_project}" / "matrix"
        try:
            with DuckDBEngine(self.world.home.warehouse) as engine:
                research.create_extract(Caller(self.world.principal("researcher"), self.world.gov), engine,
                                        self.world.own_project, out_dir=out, cohort_definition_id=1,
                                        on_low_k="generalize")  # fmt: skip
        except ImportError:
            return None
        name = sorted(p.name for p in out.iterdir() if p.is_file())[0]
        return "matrix", name

    def project(self, caller: str, relation: str) -> int:
        return self.world.own_project if relation == "own" else self.world.other_project

    def fresh_project(self, caller: str, relation: str) -> int:
        """A new draft project (same cohort scope) of which ``caller`` is a member only when ``own``."""
        gov, operator = self.world.gov, operator_principal()
        scope = ProjectScope(cohort=self.world.cohort, cohort_hash=self.definition.definition_hash())
        project = gov.create_project(
            f"Matrix {next(self.counter)}", "A project made for one rights-matrix call.", scope=scope,
            access_level="pseudonymized", expires=dt.date.today() + dt.timedelta(days=30), actor=operator,
        )  # fmt: skip
        if relation == "own" and caller != "anonymous":
            gov.add_member(project.id, self.world.usernames[caller], actor=operator)
        return project.id

    def fresh_user(self) -> str:
        name = f"matrix.user{next(self.counter)}"
        self.world.gov.create_user(name, None, roles=["researcher"], actor=operator_principal())
        return name


Request = dict[str, Any]


def _cohort_body(m: Matrix, caller: str, relation: str, **extra: Any) -> Request:
    return {"json": {"definition": m.world.cohort, "project_id": m.project(caller, relation), **extra}}


def _explain(m: Matrix, caller: str, relation: str) -> Request:
    pseudonymized = relation == "own" and caller in ("researcher", "admin", "data_engineer")
    person = m.pseudonym if pseudonymized else m.chu_nord_person
    return _cohort_body(m, caller, relation, person=person, purpose="Checking why this patient is included.")


def _patient_view(m: Matrix, caller: str, relation: str) -> Request:
    pseudonymized = relation == "own" and caller in ("researcher", "admin", "data_engineer")
    person = m.pseudonym if pseudonymized else m.chu_nord_person
    return {"json": {"person": person, "purpose": "Follow-up of a patient of the site.",
                     "project_id": m.project(caller, relation)}}  # fmt: skip


def _document_search(m: Matrix, caller: str, relation: str) -> Request:
    """A notes search under the own or the other project; the notes index is built once, by an admin."""
    from massalia.health.documents.search import NOTES_INDEX, index_notes
    from massalia.text import TantivyIndex

    if not TantivyIndex.exists(m.world.home.indexes, NOTES_INDEX):
        with DuckDBEngine(m.world.home.warehouse) as engine:
            index_notes(Caller(m.world.principal("admin"), m.world.gov), engine, m.world.home.indexes)
    return {"json": {"query": "sein", "project_id": m.project(caller, relation)}}


def _revoke(m: Matrix, caller: str, relation: str) -> Request:
    owner = m.world.usernames.get(caller, m.world.usernames["researcher"])
    m.world.gov.create_token(owner, None, dt.timedelta(days=1), actor=operator_principal())
    newest = max(t.id for t in m.world.gov.list_tokens(actor=operator_principal()) if t.username == owner)
    return {"path": {"token_id": newest}}


def _decision(m: Matrix, caller: str, relation: str) -> Request:
    project = m.fresh_project("researcher", "own")
    request = m.world.gov.file_request(project, actor=m.world.principal("researcher"),
                                       justification="Needed for the rights matrix.")  # fmt: skip
    return {"path": {"request_id": request.id}, "json": {"approve": True, "reason": "Reviewed."}}


def _revocation(m: Matrix, caller: str, relation: str) -> Request:
    project = m.fresh_project("researcher", "own")
    request = m.world.gov.file_request(project, actor=m.world.principal("researcher"),
                                       justification="Needed for the rights matrix.")  # fmt: skip
    m.world.gov.decide_request(request.id, True, "Reviewed.", actor=m.world.principal("decider"))
    return {"path": {"request_id": request.id}, "json": {"reason": "The protocol was withdrawn."}}


def _pending_member(m: Matrix, caller: str, relation: str) -> Request:
    """A fresh user added by the operator to the (approved) project: pending until a DPO approves."""
    project, name = m.project(caller, relation), m.fresh_user()
    m.world.gov.add_member(project, name, actor=operator_principal())
    return {"path": {"project_id": project, "username": name}}


def _download(m: Matrix, caller: str, relation: str) -> Request:
    if m.extract is None:
        pytest.fail("no extract builder (massalia.health.extracts) to make a file to download")
    extract_id, name = m.extract
    return {"path": {"project_id": m.project(caller, relation), "extract_id": extract_id, "name": name}}


SPECS: dict[str, Callable[[Matrix, str, str], Request]] = {
    "POST /api/v1/auth/login": lambda m, c, r: {
        "json": {"username": m.world.usernames["researcher"], "password": PASSWORD}},
    "POST /api/v1/auth/tokens": lambda m, c, r: {"json": {"expires_in_days": 1}},
    "DELETE /api/v1/auth/tokens/{token_id}": _revoke,
    "POST /api/v1/users": lambda m, c, r: {"json": {"username": f"made.by{next(m.counter)}", "roles": ["researcher"]}},
    "POST /api/v1/projects": lambda m, c, r: {"json": {
        "title": "Matrix project", "purpose": "Created by the rights matrix.", "expires": "2099-12-31"}},
    "GET /api/v1/projects/{project_id}": lambda m, c, r: {"path": {"project_id": m.project(c, r)}},
    "POST /api/v1/projects/{project_id}/members": lambda m, c, r: {
        "path": {"project_id": m.project(c, r)}, "json": {"username": m.fresh_user()}},
    "POST /api/v1/projects/{project_id}/requests": lambda m, c, r: {
        "path": {"project_id": m.fresh_project(c, r)}, "json": {"justification": "Needed for the study."}},
    "POST /api/v1/requests/{request_id}/decision": _decision,
    "POST /api/v1/requests/{request_id}/revocation": _revocation,
    "POST /api/v1/projects/{project_id}/members/{username}/approval": _pending_member,
    "DELETE /api/v1/projects/{project_id}/members/{username}": _pending_member,
    "POST /api/v1/users/{username}/disable": lambda m, c, r: {"path": {"username": m.fresh_user()}},
    "POST /api/v1/users/{username}/enable": lambda m, c, r: {"path": {"username": m.fresh_user()}},
    "PUT /api/v1/users/{username}/roles": lambda m, c, r: {
        "path": {"username": m.fresh_user()}, "json": {"roles": ["researcher", "dpo"]}},
    "POST /api/v1/cohorts/import": lambda m, c, r: {"json": {"definition": m.world.cohort}},
    "POST /api/v1/cohorts/validate": lambda m, c, r: {"json": {"definition": m.world.cohort}},
    "POST /api/v1/cohorts/sql": lambda m, c, r: {"json": {"definition": m.world.cohort, "dialect": "postgres"}},
    "POST /api/v1/cohorts/count": _cohort_body,
    "POST /api/v1/cohorts/attrition": _cohort_body,
    "POST /api/v1/cohorts/breakdowns": lambda m, c, r: _cohort_body(m, c, r, cohort_id=1),
    "POST /api/v1/cohorts/explain": _explain,
    "POST /api/v1/cohorts/generate": lambda m, c, r: _cohort_body(m, c, r, cohort_id=2),
    "POST /api/v1/patients/view": _patient_view,
    "POST /api/v1/patients/timeline": _patient_view,
    "POST /api/v1/patients/findings": _patient_view,
    "POST /api/v1/documents/search": _document_search,
    "POST /api/v1/patients/notes/deidentified": _patient_view,
    "POST /api/v1/mart/count": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r)}},
    "POST /api/v1/mart/dashboard": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "panels": ["demographics"], "project_id": m.project(c, r)}},
    "POST /api/v1/mart/breakdown": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "by": "sex", "project_id": m.project(c, r)}},
    "POST /api/v1/analyses/survival": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r)}},
    "POST /api/v1/analyses/compare": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r),
        "treated": {"all": [{"variable": "stage_group", "op": "=", "value": "IV"}]},
        "comparator": {"all": [{"variable": "stage_group", "op": "!=", "value": "IV"}]}}},
    "POST /api/v1/analyses/prediction": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r)}},
    "POST /api/v1/analyses/prediction/{model_id}/score": lambda m, c, r: {
        "path": {"model_id": "0123456789abcdef"}, "json": {"filters": {"cohort_definition_id": 1},
                                                          "project_id": m.project(c, r)}},
    "GET /api/v1/analyses/prediction/models": lambda m, c, r: {"params": {"project_id": m.project(c, r)}},
    "POST /api/v1/analyses/pathways": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r)}},
    "POST /api/v1/analyses/conformance": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r)}},
    "POST /api/v1/analyses/similar": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r), "index_profile": {"stage_group": "IV"},
        "k": 10}},
    "POST /api/v1/analyses/groups": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r)}},
    "POST /api/v1/analyses/hypotheses": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r), "variables": ["age_at_diagnosis"],
        "group_a": {"all": [{"variable": "sex", "op": "=", "value": "female"}]},
        "group_b": {"all": [{"variable": "sex", "op": "=", "value": "male"}]}}},
    "POST /api/v1/analyses/control-arm": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r),
        "trial": {"all": [{"variable": "stage_group", "op": "=", "value": "IV"}]}}},
    "POST /api/v1/analyses/patterns": lambda m, c, r: {"json": {
        "filters": {"cohort_definition_id": 1}, "project_id": m.project(c, r), "sequences": False,
        "variables": ["sex", "stage_group"]}},
    "POST /api/v1/projects/{project_id}/extracts": lambda m, c, r: {
        "path": {"project_id": m.project(c, r)}, "json": {"cohort_id": 1, "format": "csv", "on_low_k": "generalize"}},
    "GET /api/v1/projects/{project_id}/extracts": lambda m, c, r: {"path": {"project_id": m.project(c, r)}},
    "GET /api/v1/projects/{project_id}/extracts/{extract_id}/files/{name}": _download,
    "POST /api/v1/projects/{project_id}/cohorts": lambda m, c, r: {
        "path": {"project_id": m.project(c, r)}, "json": {"name": "Saved by the matrix", "definition": m.world.cohort}},
    "GET /api/v1/projects/{project_id}/cohorts": lambda m, c, r: {"path": {"project_id": m.project(c, r)}},
    "GET /api/v1/projects/{project_id}/cohorts/{cohort_id}": lambda m, c, r: {
        "path": {"project_id": m.project(c, r), "cohort_id": m.saved_cohort}},
    "POST /api/v1/projects/{project_id}/cohorts/{cohort_id}/versions": lambda m, c, r: {
        "path": {"project_id": m.project(c, r), "cohort_id": m.saved_cohort},
        "json": {"definition": circe_cohort(OVARY + next(m.counter))}},  # a new definition: a new version
    "PUT /api/v1/projects/{project_id}/cohorts/{cohort_id}/sharing": lambda m, c, r: {
        "path": {"project_id": m.project(c, r), "cohort_id": m.saved_cohort}, "json": {"shared": True}},
    "GET /api/v1/vocabulary/concepts/{concept_id}": lambda m, c, r: {"path": {"concept_id": 4181351}},
    "GET /api/v1/etl/runs/{run_id}": lambda m, c, r: {"path": {"run_id": m.etl_run}},
    "GET /api/v1/etl/runs/{run_id}/rejects": lambda m, c, r: {"path": {"run_id": m.etl_run}},
    "GET /api/v1/audit/entries/{index}/proof": lambda m, c, r: {"path": {"index": 0}},
    "GET /api/v1/audit/consistency": lambda m, c, r: {"params": {"old_size": 1}},
    "GET /api/v1/safety/incidents/{incident_id}": lambda m, c, r: {"path": {"incident_id": 1}},
    "POST /api/v1/safety/search": lambda m, c, r: {"json": {"query": "tapage"}},
    "POST /api/v1/safety/search/index": lambda m, c, r: {"json": {}},
    "POST /api/v1/safety/saved-searches": lambda m, c, r: {"json": {"name": "Nuits", "query": "tapage"}},
    "DELETE /api/v1/safety/saved-searches/{search_id}": lambda m, c, r: {"path": {"search_id": 1}},
    "POST /api/v1/safety/notifications/read": lambda m, c, r: {"json": {"notification_ids": [1]}},
    "POST /api/v1/safety/views": lambda m, c, r: {"json": {"name": "Centre"}},
    "GET /api/v1/safety/views/{view_id}": lambda m, c, r: {"path": {"view_id": 1}},
    "DELETE /api/v1/safety/views/{view_id}": lambda m, c, r: {"path": {"view_id": 1}},
    "POST /api/v1/safety/live/{source}/events": lambda m, c, r: {"path": {"source": "csu"}, "json": {}},
    "GET /api/v1/safety/live/stream": lambda m, c, r: {"params": {"max_seconds": 1}},
    "POST /api/v1/safety/alarms/rules": lambda m, c, r: {"json": {"rules": "{version: 0, rules: []}"}},
    "GET /api/v1/safety/alarms/{alarm_id}": lambda m, c, r: {"path": {"alarm_id": 1}},
    "POST /api/v1/safety/alarms/{alarm_id}/decision": lambda m, c, r: {
        "path": {"alarm_id": 1}, "json": {"decision": "acknowledge"}},
    "GET /api/v1/safety/alarms/{alarm_id}/cap": lambda m, c, r: {"path": {"alarm_id": 1}},
    "GET /api/v1/safety/alarms/{alarm_id}/ngsi-ld": lambda m, c, r: {"path": {"alarm_id": 1}},
    "GET /portal/{page:path}": lambda m, c, r: {"path": {"page": "account"}},
    "GET /static/{asset:path}": lambda m, c, r: {"path": {"asset": "js/app.js"}},
    "GET /static/v/{version}/{asset:path}": lambda m, c, r: {
        "path": {"version": m.world.app.state.portal.assets.version, "asset": "js/app.js"}},
    "GET /api/v1/opendata/dataset/{dataset_id}/resource/{resource_id}/download/{filename}": lambda m, c, r: {
        "path": {"dataset_id": "no-such-dataset", "resource_id": "none", "filename": "x.csv"}},
    "GET /api/v1/opendata/resource/{resource_id}/badge.svg": lambda m, c, r: {"path": {"resource_id": "none"}},
    "GET /api/v1/opendata/dataset/{dataset_id}.ttl": lambda m, c, r: {"path": {"dataset_id": "no-such-dataset"}},
    "GET /api/v1/opendata/dataset/{dataset_id}.rdf": lambda m, c, r: {"path": {"dataset_id": "no-such-dataset"}},
    "GET /api/v1/opendata/dataset/{dataset_id}.xml": lambda m, c, r: {"path": {"dataset_id": "no-such-dataset"}},
    "GET /api/v1/opendata/dataset/{dataset_id}.jsonld": lambda m, c, r: {"path": {"dataset_id": "no-such-dataset"}},
    "GET /api/v1/opendata/certification/proof/{resource_id}": lambda m, c, r: {
        "path": {"resource_id": "00000000-0000-4000-8000-000000000000"}},
}  # fmt: skip
CKAN_ACTIONS = re.compile(r"^/api/v1/opendata/api/(3/)?action/")
"""Open data's CKAN-compatible Action API answers errors in CKAN's envelope, as CKAN clients expect."""


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory, api_warehouse: Path) -> Iterator[Matrix]:
    world = build_world(tmp_path_factory.mktemp("matrix-home"), api_warehouse)
    try:
        yield Matrix(world)
    finally:
        world.close()


@pytest.mark.parametrize(("method", "path", "caller", "relation"), CASES)
def test_rights_matrix(matrix: Matrix, method: str, path: str, caller: str, relation: str) -> None:
    spec = SPECS.get(f"{method} {path}", lambda m, c, r: {})(matrix, caller, relation)
    url = re.sub(r"\{(\w+):\w+\}", r"{\1}", path).format(**spec.get("path", {}))  # {page:path}: a converter
    client = matrix.world.client(None if caller == "anonymous" else caller)
    response = client.request(method, url, json=spec.get("json"), params=spec.get("params"))
    want = expected(method, path, caller, relation)
    assert response.status_code == want, f"{caller} ({relation}) {method} {url}: {response.text[:500]}"
    if response.status_code >= 400 and CKAN_ACTIONS.match(path):
        assert response.json()["success"] is False and "__type" in response.json()["error"]
    elif response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message", "details", "request_id"}
