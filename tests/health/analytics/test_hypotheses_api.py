"""Hypothesis tests over HTTP: chart-ready JSON for a member, 403 for another project's owner, 422 for bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from analytics_world import AnalyticsWarehouse, client_of, project_of, serve_api

SEX = {"variable": "sex", "op": "="}


@pytest.fixture(scope="module")
def api(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with serve_api(analytics_warehouse, tmp_path_factory.mktemp("hypotheses-api")) as served_api:
        project = project_of(served_api.gov, served_api.users["rita"], served_api.users["dina"])
        yield {"app": served_api.app, "tokens": served_api.tokens, "project": project}


def _post(api: dict, who: str, variables: list[str]) -> tuple[int, dict]:
    client = client_of(api, who)
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
