"""An unbuilt research mart is a state the client cannot fix by changing the request: 409, as docs/api.md says."""

from __future__ import annotations

import datetime as dt

from api_world import ApiWorld

from massalia.governance import ProjectScope

API = "/api/v1"


def test_a_count_on_an_unbuilt_mart_is_a_conflict(empty_world: ApiWorld) -> None:
    empty_world.home.mark_initialized("duckdb")  # a home that was made (a never-initialized one answers 503)
    answer = empty_world.client("admin").post(f"{API}/mart/count", json={"filters": {}})
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "conflict" and "massalia mart build" in error["message"]


def test_an_extract_of_an_unbuilt_mart_is_a_conflict(empty_world: ApiWorld) -> None:
    # An approved pseudonymized project without a cohort scope: the extract reads the mart, not yet built.
    empty_world.home.mark_initialized("duckdb")
    gov, researcher = empty_world.gov, empty_world.principal("researcher")
    project = gov.create_project(
        "Mart not built", "Describe the cohort before the mart exists.", scope=ProjectScope(variables=("sex",)),
        access_level="pseudonymized", expires=dt.date.today() + dt.timedelta(days=30), actor=researcher,
    )  # fmt: skip
    request = gov.file_request(project.id, actor=researcher, justification="Protocol ONCO-2026-02 approved.")
    gov.decide_request(request.id, True, "Reviewed.", actor=empty_world.principal("decider"))
    answer = empty_world.client("researcher").post(f"{API}/projects/{project.id}/extracts", json={})
    assert answer.status_code == 409, answer.text
    error = answer.json()["error"]
    assert error["code"] == "conflict" and "massalia mart build" in error["message"]
