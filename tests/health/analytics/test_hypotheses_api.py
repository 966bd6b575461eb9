"""Hypothesis tests over HTTP: chart-ready JSON for a member, 403 for another project's owner, 422 for bad input."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator

import pytest
from analytics_world import AnalyticsWarehouse, project_of
from fastapi.testclient import TestClient

from massalia.api import ApiSettings, create_app
from massalia.config import Home
from massalia.governance import Governance, Role, operator_principal

SEX = {"variable": "sex", "op": "="}


@pytest.fixture(scope="module")
def api(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = Home(tmp_path_factory.mktemp("hypotheses-api")).ensure()
    shutil.copy(analytics_warehouse.path, home.warehouse)
    app = create_app(home, settings=ApiSettings())
    gov: Governance = app.state.massalia.governance
    operator = operator_principal()
    users = {name: gov.create_user(name, None, [role], actor=operator)
             for name, role in (("rita", Role.RESEARCHER), ("olga", Role.RESEARCHER), ("dina", Role.DPO))}  # fmt: skip
    tokens = {name: gov.create_token(name, None, dt.timedelta(days=1), actor=operator) for name in users}
    project = project_of(gov, users["rita"], users["dina"])
    try:
        yield {"app": app, "tokens": tokens, "project": project}
    finally:
        gov.close()


def _post(api: dict, who: str, variables: list[str]) -> tuple[int, dict]:
    client = TestClient(api["app"], raise_server_exceptions=False)
    client.headers["Authorization"] = f"Bearer {api['tokens'][who]}"
    body = {"project_id": api["project"], "variables": variables, "group_a": {"all": [{**SEX, "value": "female"}]},
            "group_b": {"all": [{**SEX, "value": "male"}]}}  # fmt: skip
    response = client.post("/api/v1/analyses/hypotheses", json=body)
    return response.status_code, response.json()


def test_a_member_gets_one_row_per_variable(api: dict) -> None:
    status, result = _post(api, "rita", ["age_at_diagnosis", "stage_group"])
    assert status == 200, result
    rows = {row["variable"]: row for row in result["comparisons"]}
    assert rows["age_at_diagnosis"]["effect"]["measure"] == "hedges_g"
    assert rows["stage_group"]["test"] == "chi_square" and 0 <= rows["stage_group"]["p_holm"] <= 1
    assert result["provenance"]["analysis"] == "hypotheses"


def test_attack_another_projects_owner_is_refused(api: dict) -> None:
    status, body = _post(api, "olga", ["age_at_diagnosis"])
    assert status == 403, body


def test_a_text_variable_is_a_422(api: dict) -> None:
    status, body = _post(api, "rita", ["care_site_code"])
    assert status == 422 and "care_site_code" in str(body), body
