"""``POST /api/v1/patients/view`` on the shared API world: who sees which patient's records, how, and the audit."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from api_world import ApiWorld

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance.pseudonym import pseudonymize
from massalia.health.research import PROJECT_DATE_SHIFT_DAYS
from massalia.ledger import TransparencyLog

URL = "/api/v1/patients/view"
PURPOSE = "Follow-up consultation of the patient."


def site_person(world: ApiWorld, site: str, among_cohort: bool = False) -> int:
    """The smallest person id of a care site (optionally among the persons of generated cohort 1)."""
    members = "SELECT subject_id FROM cohort WHERE cohort_definition_id = 1"
    cohort = f" AND p.person_id IN ({members})" if among_cohort else ""
    with DuckDBEngine(world.home.warehouse) as engine:
        rows = engine.query(
            "SELECT MIN(p.person_id) AS person_id FROM person p JOIN care_site cs ON cs.care_site_id = p.care_site_id"
            f" WHERE cs.care_site_source_value = '{site}'{cohort}"
        ).to_pylist()
    assert rows and rows[0]["person_id"] is not None, f"no person of {site} in the demo warehouse"
    return int(rows[0]["person_id"])


def ledger_entries(world: ApiWorld) -> list[dict[str, Any]]:
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return [log.get(i).entry for i in range(log.size)]


def ledger_size(world: ApiWorld) -> int:
    if not world.home.ledger.exists():
        return 0
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return log.size


def assert_error(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details", "request_id"} and error["code"] == code


@pytest.fixture(scope="module")
def nord(api_world: ApiWorld) -> int:
    """A chu_nord person of the project cohort (so it also has a pseudonym in the own project)."""
    return site_person(api_world, "chu_nord", among_cohort=True)


def test_a_clinician_sees_identified_records_of_their_own_site(api_world: ApiWorld, nord: int) -> None:
    before = ledger_size(api_world)
    response = api_world.client("clinician").post(URL, json={"person": nord, "purpose": PURPOSE})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["person"] == nord and body["pseudonymized"] is False
    tables = body["tables"]
    assert [row["person_id"] for row in tables["person"]["rows"]] == [nord]
    conditions = tables["condition_occurrence"]
    assert conditions["rows"] and "condition_occurrence_id" in conditions["columns"]
    assert all(row["person_id"] == nord for row in conditions["rows"])
    dt.date.fromisoformat(conditions["rows"][0]["condition_start_date"])  # dates come as ISO strings
    assert ledger_size(api_world) == before + 1
    entry = ledger_entries(api_world)[-1]
    assert entry["action"] == "health.patient.view" and entry["decision"] == "allowed"
    assert entry["actor"] == api_world.usernames["clinician"] and entry["resource"]["person_id"] == nord
    assert entry["purpose"] == PURPOSE and entry["channel"] == "api" and body["audit_index"] == before


def test_a_clinician_is_refused_another_site_s_patient(api_world: ApiWorld) -> None:
    sud = site_person(api_world, "clcc_sud")
    before = ledger_size(api_world)
    response = api_world.client("clinician").post(URL, json={"person": sud, "purpose": PURPOSE})
    assert_error(response, 403, "forbidden")
    assert ledger_size(api_world) == before + 1
    entry = ledger_entries(api_world)[-1]
    assert entry["action"] == "health.patient.view" and entry["decision"] == "denied"
    assert entry["resource"]["person_id"] == sud


def test_a_project_member_sees_pseudonymized_records_by_pseudonym(api_world: ApiWorld, nord: int) -> None:
    project = api_world.own_project
    pseudonym = pseudonymize([nord], key=api_world.gov.project_key(project), project=project)[0].as_py()
    researcher = api_world.client("researcher")
    identified = api_world.client("clinician").post(URL, json={"person": nord, "purpose": PURPOSE}).json()

    before = ledger_size(api_world)
    response = researcher.post(URL, json={"person": pseudonym, "purpose": PURPOSE, "project_id": project})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["person"] == pseudonym and body["pseudonymized"] is True
    conditions = body["tables"]["condition_occurrence"]
    assert conditions["rows"] and {row["person_id"] for row in conditions["rows"]} == {pseudonym}
    assert "condition_occurrence_id" not in conditions["columns"]
    assert not [c for c in conditions["columns"] if c.endswith("_source_value")]
    for table in body["tables"].values():  # no record, provider, site or location id survives
        assert not [c for c in table["columns"] if c.endswith("_id") and not c.endswith(("_concept_id", "person_id"))]

    def starts(view: dict[str, Any]) -> list[dt.date]:
        rows = view["tables"]["condition_occurrence"]["rows"]
        return sorted(dt.date.fromisoformat(row["condition_start_date"]) for row in rows)

    deltas = {(a - b).days for a, b in zip(starts(body), starts(identified), strict=True)}
    assert len(deltas) == 1 and 0 < abs(deltas.pop()) <= PROJECT_DATE_SHIFT_DAYS
    assert ledger_size(api_world) == before + 1
    entry = ledger_entries(api_world)[-1]
    assert entry["decision"] == "allowed" and entry["project_id"] == project
    assert entry["grant"]["pseudonymized"] is True

    # Under the pseudonymized project the person id itself is refused (after the audited decision).
    refused = researcher.post(URL, json={"person": nord, "purpose": PURPOSE, "project_id": project})
    assert_error(refused, 422, "invalid_request")
    assert "pseudonym" in refused.json()["error"]["message"]
    assert ledger_size(api_world) == before + 2


def test_the_date_parts_of_a_pseudonymized_view_do_not_give_the_shift_away(api_world: ApiWorld, nord: int) -> None:
    """Issue 10 §2: real year/month/day of birth beside the shifted birth_datetime gave the shift away."""
    project = api_world.own_project
    pseudonym = pseudonymize([nord], key=api_world.gov.project_key(project), project=project)[0].as_py()
    body = {"person": pseudonym, "purpose": PURPOSE, "project_id": project}
    (row,) = api_world.client("researcher").post(URL, json=body).json()["tables"]["person"]["rows"]
    (real,) = (
        api_world.client("clinician")
        .post(URL, json={"person": nord, "purpose": PURPOSE})
        .json()["tables"]["person"]["rows"]
    )
    shown_birth = dt.datetime.fromisoformat(row["birth_datetime"]).date()
    parts = dt.date(row["year_of_birth"], row["month_of_birth"], row["day_of_birth"])
    assert (shown_birth - parts).days == 0, "the date parts reveal the person's shift"
    assert parts != dt.date(real["year_of_birth"], real["month_of_birth"], real["day_of_birth"])
    assert set(row) <= {"person_id", "record", "year_of_birth", "month_of_birth", "day_of_birth", "birth_datetime"} | {
        name for name in row if name.endswith("_concept_id")
    }


def test_everybody_else_is_refused_and_audited(api_world: ApiWorld, nord: int) -> None:
    for role, project in (("researcher", None), ("researcher", api_world.other_project), ("dpo", None),
                          ("admin", None), ("public", None)):  # fmt: skip
        before = ledger_size(api_world)
        response = api_world.client(role).post(URL, json={"person": nord, "purpose": PURPOSE, "project_id": project})
        assert_error(response, 403, "forbidden")
        assert ledger_size(api_world) == before + 1, f"the refusal of {role} is not in the ledger"
        assert ledger_entries(api_world)[-1]["decision"] == "denied"
    assert_error(api_world.client().post(URL, json={"person": nord, "purpose": PURPOSE}), 401, "unauthenticated")


BAD_BODIES = {
    "short purpose": {"person": 1, "purpose": "why"},
    "no purpose": {"person": 1},
    "long purpose": {"person": 1, "purpose": "x" * 1001},
    "long pseudonym": {"person": "p1-" + "x" * 200, "purpose": PURPOSE},
    "boolean person": {"person": True, "purpose": PURPOSE},
    "person beyond int64": {"person": 2**63, "purpose": PURPOSE},
    "project 0": {"person": 1, "purpose": PURPOSE, "project_id": 0},
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_bodies_are_422_in_the_error_shape(api_world: ApiWorld, body: dict[str, Any]) -> None:
    before = ledger_size(api_world)
    assert_error(api_world.client("clinician").post(URL, json=body), 422, "invalid_request")
    assert ledger_size(api_world) == before, "a request refused by validation reads nothing and is not logged"


def test_a_blank_purpose_is_refused_by_the_service(api_world: ApiWorld, nord: int) -> None:
    response = api_world.client("clinician").post(URL, json={"person": nord, "purpose": "      "})
    assert_error(response, 422, "invalid_request")
    assert "purpose" in response.json()["error"]["message"]
