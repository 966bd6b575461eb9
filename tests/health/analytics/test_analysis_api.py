"""The analyses over HTTP: an approved member gets chart-ready JSON; anyone else a 403 saying what is needed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from analytics_world import AnalyticsWarehouse, client_of, project_of, serve_api


@pytest.fixture(scope="module")
def api(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with serve_api(analytics_warehouse, tmp_path_factory.mktemp("analytics-api")) as served_api:
        project = project_of(served_api.gov, served_api.users["rita"], served_api.users["dina"])
        yield {"app": served_api.app, "tokens": served_api.tokens, "project": project}


def test_survival_and_compare_for_an_approved_member(api: dict, tmp_path: Path) -> None:
    client = client_of(api, "rita")
    body = {"project_id": api["project"], "endpoint": "pfs", "group_by": "stage_group", "covariates": ["stage_group"]}
    response = client.post("/api/v1/analyses/survival", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["analysis"] == "survival" and result["provenance"]["filter_hash"]
    assert result["km"]["groups"]["IV"]["curve"][0] == {"time": 0.0, "estimate": 1.0, "lower": 1.0, "upper": 1.0,
                                                         "at_risk": result["km"]["groups"]["IV"]["n"]}  # fmt: skip
    compare = {"project_id": api["project"], "filters": {"all": [{"variable": "primary_site", "op": "=",
                                                                  "value": "lung"}]},
               "treated": {"all": [{"variable": "received_immunotherapy", "op": "=", "value": True}]},
               "comparator": {"all": [{"variable": "received_immunotherapy", "op": "=", "value": False}]},
               "covariates": ["stage_group", "age_at_diagnosis", "ecog_at_diagnosis", "sex"]}  # fmt: skip
    response = client.post("/api/v1/analyses/compare", json=compare)
    assert response.status_code == 200, response.text
    assert {"naive", "matched", "ipw"} <= set(response.json()["hazard_ratios"])
    assert response.json()["balance"][0]["covariate"].startswith("stage_group")


def test_a_caller_without_an_approved_project_gets_a_clear_403(api: dict) -> None:
    response = client_of(api, "olga").post("/api/v1/analyses/survival", json={"project_id": api["project"]})
    assert response.status_code == 403
    assert "approved members of an approved, unexpired project" in response.json()["error"]["message"]


def test_pathways_and_conformance_for_an_approved_member(api: dict, tmp_path: Path) -> None:
    client = client_of(api, "rita")
    response = client.post("/api/v1/analyses/pathways", json={"project_id": api["project"], "max_steps": 3})
    assert response.status_code == 200, response.text
    sankey = response.json()["sankey"]
    assert sankey["nodes"][0] == {"id": "0:diagnosis", "label": "diagnosis", "step": 0} and sankey["links"]
    body = {"project_id": api["project"], "rules": ["er_positive_breast_endocrine"]}
    response = client.post("/api/v1/analyses/conformance", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["rules"][0]["overall"]["rate"] is not None


def test_pathways_and_conformance_refuse_others_and_name_bad_rules(api: dict) -> None:
    for path in ("pathways", "conformance"):
        response = client_of(api, "olga").post(f"/api/v1/analyses/{path}", json={"project_id": api["project"]})
        assert response.status_code == 403
    bad = "version: 1\nclasses: {a: {procedures: [surgery]}}\nrules: [{id: x, title: xyz}]"
    response = client_of(api, "rita").post("/api/v1/analyses/conformance",
                                         json={"project_id": api["project"], "rules_yaml": bad})  # fmt: skip
    assert response.status_code == 422
    assert "rules_yaml: rules[0].guideline: Field required" in response.text
    too_many = {"project_id": api["project"], "max_steps": 9}
    assert client_of(api, "rita").post("/api/v1/analyses/pathways", json=too_many).status_code == 422
