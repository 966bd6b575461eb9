"""Similar patients and patient groups over HTTP: chart-ready JSON for members, 403/404/422 for the attacks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from analytics_world import AnalyticsWarehouse, client_of, project_of, serve_api
from test_similar import pseudonymized_project

from massalia.governance.pseudonym import pseudonymize


@pytest.fixture(scope="module")
def api(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with serve_api(analytics_warehouse, tmp_path_factory.mktemp("similar-api")) as served_api:
        pseudo = pseudonymized_project(served_api.gov, served_api.users["rita"], served_api.users["dina"])
        aggregate = project_of(served_api.gov, served_api.users["rita"], served_api.users["dina"])
        theirs = pseudonymized_project(served_api.gov, served_api.users["olga"], served_api.users["dina"])
        yield {
            "app": served_api.app,
            "gov": served_api.gov,
            "tokens": served_api.tokens,
            "pseudo": pseudo,
            "aggregate": aggregate,
            "theirs": theirs,
        }


def _pseudonym(api: dict, project: int, person_id: int) -> str:
    return str(pseudonymize([person_id], key=api["gov"].project_key(project), project=project)[0].as_py())


PERSON = 17  # a person of the generated warehouse (ids start at 1)


def test_similar_under_a_pseudonymized_project(api: dict) -> None:
    body = {"project_id": api["pseudo"], "index_pseudonym": _pseudonym(api, api["pseudo"], PERSON), "k": 12}
    response = client_of(api, "rita").post("/api/v1/analyses/similar", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert len(result["listed"]) == 12 and all(row["pseudonym"].startswith(f"p{api['pseudo']}-")
                                               for row in result["listed"])  # fmt: skip
    assert result["km"]["curve"][0]["time"] == 0.0 and result["provenance"]["analysis"] == "similar"


def test_similar_attacks_over_http(api: dict) -> None:
    rita = client_of(api, "rita")
    as_id = rita.post("/api/v1/analyses/similar", json={"project_id": api["pseudo"], "index_pseudonym": PERSON})
    assert as_id.status_code == 422
    foreign = {"project_id": api["theirs"], "index_pseudonym": _pseudonym(api, api["pseudo"], PERSON)}
    response = client_of(api, "olga").post("/api/v1/analyses/similar", json=foreign)
    assert response.status_code == 404, response.text
    borrowed = {"project_id": api["pseudo"], "index_pseudonym": _pseudonym(api, api["pseudo"], PERSON)}
    assert client_of(api, "olga").post("/api/v1/analyses/similar", json=borrowed).status_code == 403
    aggregate = {"project_id": api["aggregate"], "index_pseudonym": _pseudonym(api, api["aggregate"], PERSON)}
    assert rita.post("/api/v1/analyses/similar", json=aggregate).status_code == 403
    profile = {"project_id": api["aggregate"], "index_profile": {"primary_site": "lung"}, "k": 20}
    response = rita.post("/api/v1/analyses/similar", json=profile)
    assert response.status_code == 200 and "listed" not in response.json()


def test_groups_over_http(api: dict) -> None:
    body = {"project_id": api["aggregate"], "variables": ["stage_group", "age_at_diagnosis", "sex"], "max_groups": 3}
    response = client_of(api, "rita").post("/api/v1/analyses/groups", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["k"] in (2, 3)
    assert client_of(api, "olga").post("/api/v1/analyses/groups", json=body).status_code == 403
