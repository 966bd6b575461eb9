"""Risk prediction over HTTP and the command line: an approved member trains, lists and scores; others get 403."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from analytics_world import AnalyticsWarehouse, client_of, project_of, serve_api
from typer.testing import CliRunner

from massalia.cli.main import app as cli_app


@pytest.fixture(scope="module")
def api(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with serve_api(analytics_warehouse, tmp_path_factory.mktemp("prediction-api")) as served_api:
        project = project_of(served_api.gov, served_api.users["rita"], served_api.users["dina"])
        yield {"app": served_api.app, "tokens": served_api.tokens, "project": project, "home": served_api.home}


@pytest.fixture(scope="module")
def trained(api: dict) -> dict:
    body = {"project_id": api["project"], "outcome": "hospitalization", "algorithms": ["lasso_logistic"],
            "bootstrap": 100}  # fmt: skip
    response = client_of(api, "rita").post("/api/v1/analyses/prediction", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_train_list_and_score_for_an_approved_member(api: dict, trained: dict) -> None:
    (model,) = trained["models"]
    assert model["card"]["metrics"]["test"]["auc"]["auc"] > 0.6
    client = client_of(api, "rita")
    listed = client.get("/api/v1/analyses/prediction/models", params={"project_id": api["project"]})
    assert listed.status_code == 200 and [m["model_id"] for m in listed.json()["models"]] == [model["model_id"]]
    scored = client.post(f"/api/v1/analyses/prediction/{model['model_id']}/score", json={"project_id": api["project"]})
    assert scored.status_code == 200, scored.text
    assert "persons" not in scored.json() and scored.json()["risk_histogram"][0]["risk_from"] == 0.0


def test_attack_another_projects_member_gets_403(api: dict, trained: dict) -> None:
    olga = client_of(api, "olga")
    model_id = trained["models"][0]["model_id"]
    assert olga.get("/api/v1/analyses/prediction/models", params={"project_id": api["project"]}).status_code == 403
    response = olga.post(f"/api/v1/analyses/prediction/{model_id}/score", json={"project_id": api["project"]})
    assert response.status_code == 403
    train = olga.post("/api/v1/analyses/prediction", json={"project_id": api["project"]})
    assert train.status_code == 403 and "approved members" in train.json()["error"]["message"]


def test_attack_row_level_risks_refused_under_an_aggregate_project(api: dict, trained: dict) -> None:
    model_id = trained["models"][0]["model_id"]
    body = {"project_id": api["project"], "persons": ["P1-abc"]}
    response = client_of(api, "rita").post(f"/api/v1/analyses/prediction/{model_id}/score", json=body)
    assert response.status_code == 403 and "pseudonymized" in response.json()["error"]["message"]


@pytest.mark.parametrize("bad", ["..%2F..%2Fetc", "ABCDEF0123456789", "0123"])
def test_attack_model_id_must_be_an_id(api: dict, bad: str) -> None:
    response = client_of(api, "rita").post(
        f"/api/v1/analyses/prediction/{bad}/score", json={"project_id": api["project"]}
    )
    assert response.status_code in (404, 422)
    assert response.status_code != 200


def test_cli_lists_and_scores_with_a_token(api: dict, trained: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASSALIA_TOKEN", api["tokens"]["rita"])
    home = str(api["home"].root)
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["analysis", "models", "--project", str(api["project"]), "--home", home, "--json"])
    assert listed.exit_code == 0, listed.output
    model_id = trained["models"][0]["model_id"]
    assert json.loads(listed.output)["models"][0]["model_id"] == model_id
    scored = runner.invoke(cli_app, ["analysis", "predict-score", model_id, "--project", str(api["project"]),
                                     "--home", home])  # fmt: skip
    assert scored.exit_code == 0 and "mean risk" in scored.output, scored.output
    monkeypatch.setenv("MASSALIA_TOKEN", api["tokens"]["olga"])
    refused = runner.invoke(cli_app, ["analysis", "predict-score", model_id, "--project", str(api["project"]),
                                      "--home", home])  # fmt: skip
    assert refused.exit_code == 3
