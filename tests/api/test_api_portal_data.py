"""The routes the portal's pages need, attacked by each insider: a researcher without approval, a member of
another project, a clinician of another site, a DPO reading data, and nobody at all.

Vocabulary browser, ETL runs, quality runs, audit viewer, saved cohort definitions, patient timeline and the
cohort dashboard: each is checked for what it must show, and for what it must refuse, through the real app.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_world import ApiWorld, build_world, circe_cohort

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import ProjectScope, Role, operator_principal
from massalia.governance.pseudonym import pseudonymize
from massalia.ledger import TransparencyLog
from massalia.pipelines.lineage import LineageStore

PURPOSE = "Tumour board follow-up."


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, api_warehouse: Path) -> Iterator[ApiWorld]:
    built = build_world(tmp_path_factory.mktemp("portal-data"), api_warehouse)
    gov, operator = built.gov, operator_principal()
    # A researcher with a draft (never approved) project of the same cohort: no approval.
    gov.create_user("nina.noapproval", None, roles=[Role.RESEARCHER], actor=operator)
    built.tokens["unapproved"] = gov.create_token("nina.noapproval", None, dt.timedelta(days=1), actor=operator)
    draft = gov.create_project(
        "Draft ovary study", "Waiting for its approval.", scope=ProjectScope(cohort=built.cohort),
        access_level="pseudonymized", expires=dt.date.today() + dt.timedelta(days=30),
        actor=built.principal("unapproved"),
    )  # fmt: skip
    built.usernames["draft_project"] = str(draft.id)
    try:
        yield built
    finally:
        built.close()


def _ledger_size(world: ApiWorld) -> int:
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return log.size


def _entries_since(world: ApiWorld, size: int) -> list[dict[str, Any]]:
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        return [log.get(i).entry for i in range(size, log.size)]


def _error(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details", "request_id"}
    return dict(body["error"])


def _persons(world: ApiWorld) -> tuple[int, int]:
    """A person of the clinician's site (chu_nord) and one of another site."""
    with DuckDBEngine(world.home.warehouse) as engine:
        rows = engine.query(
            "SELECT p.person_id, cs.care_site_source_value AS site FROM person p "
            "JOIN care_site cs ON cs.care_site_id = p.care_site_id ORDER BY p.person_id"
        ).to_pylist()
    own = next(int(r["person_id"]) for r in rows if r["site"] == "chu_nord")
    other = next(int(r["person_id"]) for r in rows if r["site"] != "chu_nord")
    return own, other


# -- vocabulary browser ---------------------------------------------------------------------------------
def test_concept_search_is_paginated_sorted_and_literal(world: ApiWorld) -> None:
    client = world.client("clinician")
    first = client.get("/api/v1/vocabulary/concepts", params={"q": "malignant", "standard": True, "limit": 5})
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 5 and page["total"] > 5 and page["next"]
    assert all(item["standard_concept"] == "S" for item in page["items"])
    names = [item["concept_name"] for item in page["items"]]
    assert names == sorted(names)
    second = client.get("/api/v1/vocabulary/concepts", params={"q": "malignant", "standard": True, "limit": 5,
                                                               "cursor": page["next"]}).json()  # fmt: skip
    assert not {i["concept_id"] for i in second["items"]} & {i["concept_id"] for i in page["items"]}
    by_id = client.get("/api/v1/vocabulary/concepts", params={"q": "malignant", "sort": "concept_id",
                                                              "order": "desc", "limit": 3}).json()  # fmt: skip
    ids = [item["concept_id"] for item in by_id["items"]]
    assert ids == sorted(ids, reverse=True)
    # % and _ are matched literally, and an injection is only text.
    assert client.get("/api/v1/vocabulary/concepts", params={"q": "%_%_%"}).json()["total"] == 0
    assert client.get("/api/v1/vocabulary/concepts", params={"q": "x' OR 1=1 --"}).json()["total"] == 0
    assert client.get("/api/v1/vocabulary/concepts", params={"domain": "Condition", "limit": 1}).json()["total"] > 0


def test_a_concept_shows_its_hierarchy_and_mappings(world: ApiWorld) -> None:
    client = world.client("researcher")
    ovary = client.get("/api/v1/vocabulary/concepts/4181351").json()
    assert ovary["concept"]["concept_name"] == "Malignant tumor of ovary"
    assert any(a["concept_id"] == 443392 for a in ovary["ancestors"])  # malignant neoplastic disease
    cancer = client.get("/api/v1/vocabulary/concepts/443392", params={"limit": 2}).json()
    assert len(cancer["descendants"]) == 2 and cancer["totals"]["descendants"] > 2
    assert cancer["descendants"][0]["min_levels_of_separation"] >= 1
    with DuckDBEngine(world.home.warehouse) as engine:
        mapped = (
            engine.query(
                "SELECT concept_id_1 FROM concept_relationship WHERE relationship_id = 'Maps to' "
                "AND concept_id_1 <> concept_id_2 ORDER BY 1 LIMIT 1"
            )
            .column(0)[0]
            .as_py()
        )
    relationships = client.get(f"/api/v1/vocabulary/concepts/{mapped}").json()["relationships"]
    assert relationships[0]["relationship_id"] in ("Maps to", "Mapped from", "Maps to value", "Value mapped from")
    assert _error(client.get("/api/v1/vocabulary/concepts/999999999"))["code"] == "not_found"


def test_the_vocabulary_is_for_signed_in_users(world: ApiWorld) -> None:
    """Attack: anonymous visitors and the public role browse a (possibly licensed) vocabulary."""
    assert world.client(None).get("/api/v1/vocabulary/concepts").status_code == 401
    assert world.client("public").get("/api/v1/vocabulary/concepts/4181351").status_code == 403
    assert world.client("unapproved").get("/api/v1/vocabulary/concepts/4181351").status_code == 200


# -- ETL runs --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def etl_runs(world: ApiWorld) -> list[str]:
    store = LineageStore(world.home.metadata_url)
    try:
        runs = []
        for status, rows in (("success", 10), ("failed", 0), ("success", 7)):
            run = store.start_run("omop", engine="duckdb")
            store.add_input(run, dataset="patients", path="/in/patients.csv", sha256="0" * 64, size_bytes=9,
                            rows_read=rows)  # fmt: skip
            store.finish_run(run, status, outputs={"person": rows}, rejects=[("person", "invalid_date", "reject", 2)])
            runs.append(run)
        return runs
    finally:
        store.close()


def test_etl_runs_history_lineage_and_filters(world: ApiWorld, etl_runs: list[str]) -> None:
    client = world.client("dpo")  # DPOs oversee the lineage, without the raw rejected values
    page = client.get("/api/v1/etl/runs", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["next"]
    assert page["items"][0]["run_id"] == etl_runs[-1]  # newest first
    assert page["items"][0]["counts"]["rows_read"] == 7 and page["items"][0]["counts"]["rows_rejected"] == 2
    failed = client.get("/api/v1/etl/runs", params={"status": "failed"}).json()
    assert [run["run_id"] for run in failed["items"]] == [etl_runs[1]]
    oldest = client.get("/api/v1/etl/runs", params={"order": "asc", "limit": 1}).json()["items"][0]
    assert oldest["run_id"] == etl_runs[0]
    lineage = client.get(f"/api/v1/etl/runs/{etl_runs[0]}").json()
    assert lineage["inputs"][0]["sha256"] == "0" * 64 and lineage["outputs"] == {"person": 10}
    assert _error(client.get("/api/v1/etl/runs/no-such-run"))["code"] == "not_found"


def test_etl_rejects_are_refused_to_dpos_and_audited_for_engineers(world: ApiWorld, etl_runs: list[str]) -> None:
    """Attack: a DPO (or a researcher) reads raw rejected source values; an engineer's read goes unrecorded."""
    url = f"/api/v1/etl/runs/{etl_runs[0]}/rejects"
    assert world.client("dpo").get(url).status_code == 403
    assert world.client("researcher").get("/api/v1/etl/runs").status_code == 403
    assert world.client(None).get("/api/v1/etl/runs").status_code == 401
    before = _ledger_size(world)
    answer = world.client("data_engineer").get(url, params={"site": "chu_nord", "limit": 5})
    assert answer.status_code == 200 and answer.json()["next"] is None
    [entry] = [e for e in _entries_since(world, before) if e["action"] == "health.etl.rejects"]
    assert entry["decision"] == "allowed" and entry["resource"]["site"] == "chu_nord"
    assert entry["resource"]["limit"] == 6  # the page, plus one row saying whether another follows
    assert world.client("data_engineer").get(url, params={"limit": 501}).status_code == 422


# -- quality runs ----------------------------------------------------------------------------------------
def test_quality_runs_show_each_run_and_the_trend(world: ApiWorld) -> None:
    from massalia.health.quality import run_quality

    with DuckDBEngine(world.home.warehouse) as engine:
        run_quality(engine, out_dir=world.home.reports, checks=["isRequired"])
        run_quality(engine, out_dir=world.home.reports, checks=["isRequired", "cdmField"])
    client = world.client("researcher")
    page = client.get("/api/v1/quality/runs", params={"order": "asc"}).json()
    assert page["total"] >= 2
    first, second = page["items"][-2:]
    assert second["trend"] is not None and set(second["summary"]["category"]) >= {"Conformance"}
    assert second["summary"]["total"] > first["summary"]["total"]
    assert second["trend"]["status"]["passed"] == second["summary"]["status"]["passed"] - first["summary"]["status"][
        "passed"]  # fmt: skip
    assert page["items"][0]["trend"] is None
    newest = client.get("/api/v1/quality/runs", params={"limit": 1}).json()["items"][0]
    assert newest["run"] == page["items"][-1]["run"]
    assert world.client("clinician").get("/api/v1/quality/runs").status_code == 403
    assert world.client(None).get("/api/v1/quality/runs").status_code == 401


# -- audit viewer ----------------------------------------------------------------------------------------
def test_the_audit_viewer_filters_sorts_and_pages(world: ApiWorld) -> None:
    client = world.client("dpo")
    everything = client.get("/api/v1/audit/entries", params={"limit": 500}).json()
    researcher = world.usernames["researcher"]
    mine = client.get("/api/v1/audit/entries", params={"actor": researcher, "limit": 500}).json()
    assert 0 < mine["total"] < everything["total"]
    assert all(item["entry"]["actor"] == researcher for item in mine["items"])
    area = client.get("/api/v1/audit/entries", params={"action": "project.*", "limit": 500}).json()
    assert area["total"] > 0 and all(i["entry"]["action"].startswith("project.") for i in area["items"])
    exact = client.get("/api/v1/audit/entries", params={"action": "project.create"}).json()
    assert 0 < exact["total"] < area["total"]
    denied = client.get("/api/v1/audit/entries", params={"decision": "denied", "limit": 500}).json()
    assert all(i["entry"]["decision"] == "denied" for i in denied["items"])
    newest = client.get("/api/v1/audit/entries", params={"order": "desc", "limit": 2}).json()
    assert newest["items"][0]["index"] == everything["total"] - 1 and newest["items"][1]["index"] == everything[
        "total"] - 2  # fmt: skip
    today = dt.date.today()
    window = client.get("/api/v1/audit/entries", params={"since": today.isoformat(), "until": today.isoformat()})
    assert window.json()["total"] == everything["total"]
    future = client.get("/api/v1/audit/entries", params={"since": (today + dt.timedelta(days=2)).isoformat()})
    assert future.json() == {"items": [], "next": None, "total": 0}
    by_actor = client.get("/api/v1/audit/entries", params={"sort": "actor", "limit": 500}).json()["items"]
    actors = [item["entry"]["actor"] for item in by_actor]
    assert actors == sorted(actors)
    paged = client.get("/api/v1/audit/entries", params={"action": "project.*", "limit": 1}).json()
    following = client.get("/api/v1/audit/entries", params={"action": "project.*", "limit": 1,
                                                             "cursor": paged["next"]}).json()  # fmt: skip
    assert following["items"][0]["index"] > paged["items"][0]["index"]
    assert client.get("/api/v1/audit/entries", params={"since": "2030-01-01", "until": "2029-01-01"}).status_code == 422
    assert world.client("dpo").get("/api/v1/audit/verify").json()["ok"]


def test_the_audit_viewer_is_for_dpos_and_admins(world: ApiWorld) -> None:
    """Attack: a researcher or a clinician reads who looked at which patient, filtered to their colleagues."""
    params = {"actor": world.usernames["clinician"]}
    for role in ("researcher", "clinician", "data_engineer", "public"):
        assert world.client(role).get("/api/v1/audit/entries", params=params).status_code == 403
    assert world.client(None).get("/api/v1/audit/entries", params=params).status_code == 401


# -- saved cohort definitions ----------------------------------------------------------------------------
def test_saved_definitions_are_versioned_with_their_hash_and_shared_within_the_project(world: ApiWorld) -> None:
    owner, member = world.client("researcher"), world.client("clinician")
    base = f"/api/v1/projects/{world.own_project}/cohorts"
    saved = owner.post(base, json={"name": "Ovary, women", "definition": circe_cohort(), "note": "from ATLAS"})
    assert saved.status_code == 201
    saved_id = saved.json()["id"]
    first_hash = saved.json()["versions"][0]["definition_hash"]
    from massalia.health.cohorts import import_circe

    assert first_hash == import_circe(circe_cohort()).definition_hash()
    same = owner.post(f"{base}/{saved_id}/versions", json={"definition": circe_cohort()})
    assert same.status_code == 200 and same.json()["added"] is False
    changed = owner.post(f"{base}/{saved_id}/versions", json={"definition": circe_cohort(women_only=False),
                                                              "note": "men too"})  # fmt: skip
    assert changed.status_code == 201 and changed.json()["latest_version"] == 2
    # Private until shared: another member of the project sees neither the list entry nor the definition.
    assert all(item["id"] != saved_id for item in member.get(base).json()["items"])
    assert _error(member.get(f"{base}/{saved_id}"))["code"] == "not_found"
    assert member.post(f"{base}/{saved_id}/versions", json={"definition": circe_cohort()}).status_code == 404
    assert owner.put(f"{base}/{saved_id}/sharing", json={"shared": True}).status_code == 200
    read = member.get(f"{base}/{saved_id}", params={"version": 1}).json()
    assert read["version"]["definition_hash"] == first_hash and [v["version"] for v in read["versions"]] == [1, 2]
    assert read["version"]["definition"]["concept_sets"][0]["expression"]["items"][0]["concept"]["concept_id"]
    # Version 1 is immutable: after a third version it still reads the same.
    member.post(f"{base}/{saved_id}/versions", json={"definition": circe_cohort(4112853)})
    assert member.get(f"{base}/{saved_id}", params={"version": 1}).json()["version"] == read["version"]
    assert member.put(f"{base}/{saved_id}/sharing", json={"shared": False}).status_code == 403  # not the author
    names = [i["name"] for i in member.get(base, params={"sort": "name", "order": "asc"}).json()["items"]]
    assert names == sorted(names)
    assert _error(member.get(f"{base}/{saved_id}", params={"version": 9}))["code"] == "not_found"


def test_saved_definitions_stay_inside_their_project(world: ApiWorld) -> None:
    """Attack: a member of another project, a researcher without approval, anonymous, read or version them."""
    base = f"/api/v1/projects/{world.own_project}/cohorts"
    saved = world.client("researcher").post(base, json={"name": "Shared one", "definition": circe_cohort()}).json()
    world.client("researcher").put(f"{base}/{saved['id']}/sharing", json={"shared": True})
    outsider = world.client("other_owner")  # owner of the other project, member of no other
    assert outsider.get(base).status_code == 403
    assert outsider.get(f"{base}/{saved['id']}").status_code == 403
    # Naming their own project does not reach another project's definition either.
    theirs = f"/api/v1/projects/{world.other_project}/cohorts/{saved['id']}"
    assert _error(outsider.get(theirs))["code"] == "not_found"
    assert outsider.post(f"{theirs}/versions", json={"definition": circe_cohort()}).status_code == 404
    unapproved = world.client("unapproved")
    assert unapproved.get(f"{base}/{saved['id']}").status_code == 403
    draft = int(world.usernames["draft_project"])
    assert unapproved.post(f"/api/v1/projects/{draft}/cohorts",
                           json={"name": "Draft", "definition": circe_cohort()}).status_code == 201  # fmt: skip
    assert world.client(None).get(base).status_code == 401
    before = _ledger_size(world)
    outsider.get(f"{base}/{saved['id']}")
    [entry] = _entries_since(world, before)
    assert entry["action"] == "health.definition.read" and entry["decision"] == "denied"


# -- patient timeline ------------------------------------------------------------------------------------
def test_a_clinician_sees_the_timeline_of_their_own_site_and_its_opening_is_audited(world: ApiWorld) -> None:
    own, _ = _persons(world)
    client = world.client("clinician")
    before = _ledger_size(world)
    answer = client.post("/api/v1/patients/timeline", json={"person": own, "purpose": PURPOSE, "limit": 5000})
    assert answer.status_code == 200
    body = answer.json()
    kinds = {event["kind"] for event in body["items"]}
    assert {"diagnosis", "lab", "visit"} <= kinds
    dates = [event["date"] for event in body["items"] if event["date"]]
    assert dates == sorted(dates)
    [entry] = [e for e in _entries_since(world, before) if e["action"] == "health.patient.view"]
    assert entry["purpose"] == PURPOSE and entry["decision"] == "allowed" and entry["resource"]["person_id"] == own
    documents = client.post("/api/v1/patients/timeline", json={"person": own, "purpose": PURPOSE,
                                                               "kinds": ["document"]}).json()  # fmt: skip
    assert documents["items"] and all("text" not in event for event in documents["items"])
    assert all("title" in event for event in documents["items"])
    asked = {"person": own, "purpose": PURPOSE, "kinds": ["document"], "with_text": True}
    with_text = client.post("/api/v1/patients/timeline", json=asked).json()
    assert with_text["text_audit_index"] is not None and any(event.get("text") for event in with_text["items"])
    paged = client.post("/api/v1/patients/timeline", json={"person": own, "purpose": PURPOSE, "limit": 3}).json()
    assert len(paged["items"]) == 3 and paged["next"] and paged["total"] == body["total"]


def test_the_timeline_refuses_other_sites_dpos_and_anonymous(world: ApiWorld) -> None:
    """Attack: a clinician opens another site's patient (with or without text), a DPO or an admin reads a
    patient without a project, anonymous tries; each refusal is in the trail with its purpose."""
    own, other = _persons(world)
    body = {"person": other, "purpose": PURPOSE}
    before = _ledger_size(world)
    assert world.client("clinician").post("/api/v1/patients/timeline", json=body).status_code == 403
    refused = world.client("clinician").post("/api/v1/patients/timeline", json={**body, "with_text": True})
    assert refused.status_code == 403 and "health.document.read" in _error(refused)["message"]
    denials = [e for e in _entries_since(world, before) if e["decision"] == "denied"]
    assert {e["action"] for e in denials} == {"health.patient.view", "health.document.read"}
    assert all(e["purpose"] == PURPOSE for e in denials)
    for role in ("dpo", "admin", "researcher", "public"):
        assert world.client(role).post("/api/v1/patients/timeline", json={"person": own, "purpose": PURPOSE}
                                       ).status_code == 403, role  # fmt: skip
    assert world.client(None).post("/api/v1/patients/timeline", json=body).status_code == 401
    assert world.client("clinician").post("/api/v1/patients/timeline", json={"person": own, "purpose": "x"}
                                          ).status_code == 422  # fmt: skip


def test_a_project_member_sees_a_pseudonymized_timeline_without_text_or_keys(world: ApiWorld) -> None:
    """Attack: a member of an approved pseudonymized project asks for documents' text, or names the person
    by their warehouse id; the member of another project uses the pseudonym."""
    with DuckDBEngine(world.home.warehouse) as engine:
        cohort = engine.query("SELECT DISTINCT subject_id FROM cohort WHERE cohort_definition_id = 1 ORDER BY 1")
        real = int(cohort.column(0)[0].as_py())
        query = f"SELECT condition_start_date FROM condition_occurrence WHERE person_id = {real}"
        real_dates = sorted(engine.query(query).column(0).to_pylist())
    pseudonym = pseudonymize(cohort.column(0).cast("int64"), key=world.gov.project_key(world.own_project),
                             project=world.own_project)[0].as_py()  # fmt: skip
    client = world.client("researcher")
    body = {"person": pseudonym, "purpose": PURPOSE, "project_id": world.own_project}
    answer = client.post("/api/v1/patients/timeline", json=body)
    assert answer.status_code == 200
    timeline = answer.json()
    assert timeline["pseudonymized"] is True and timeline["person"] == pseudonym
    text = json.dumps(timeline)
    for event in timeline["items"]:
        assert "title" not in event and "text" not in event
        assert event["record"] is None or event["record"] < 100_000  # ordinals, not warehouse keys
    shown = sorted(dt.date.fromisoformat(e["date"]) for e in timeline["items"] if e["kind"] == "diagnosis")
    shifts = {(date - real_date).days for date, real_date in zip(shown, real_dates, strict=True)}
    assert len(shifts) == 1 and shifts != {0}  # every date moved by the person's one project shift
    assert "_source_value" not in text
    assert client.post("/api/v1/patients/timeline", json={**body, "with_text": True}).status_code == 403
    assert client.post("/api/v1/patients/timeline", json={**body, "person": real}).status_code == 422
    other = world.client("other_owner").post("/api/v1/patients/timeline",
                                             json={**body, "project_id": world.other_project})  # fmt: skip
    assert other.status_code in (403, 404)
    unapproved = world.client("unapproved").post(
        "/api/v1/patients/timeline", json={**body, "project_id": int(world.usernames["draft_project"])}
    )
    assert unapproved.status_code == 403


# -- cohort dashboard ------------------------------------------------------------------------------------
def _cells(panel_variable: dict[str, Any]) -> dict[Any, Any]:
    return {cell["value"]: cell["count"] for cell in panel_variable["cells"]}


def test_the_dashboard_is_exact_within_an_approved_project_and_matches_the_breakdowns(world: ApiWorld) -> None:
    client = world.client("researcher")
    body = {"filters": {"cohort_definition_id": 1}, "project_id": world.own_project}
    dashboard = client.post("/api/v1/mart/dashboard", json=body).json()
    assert dashboard["count"]["release"]["mode"] == "exact"
    variables = {v["variable"]: v for panel in dashboard["panels"] for v in panel["variables"]}
    assert [panel["name"] for panel in dashboard["panels"]] == [
        "demographics", "cancer_sites", "stage", "biomarkers", "treatment_lines", "vital_status"]  # fmt: skip
    assert variables["sex"]["release"]["mode"] == "exact"
    assert variables["vital_status"]["withheld"] == "outside the project's variables"  # scope: 4 variables only
    breakdown = client.post("/api/v1/mart/breakdown", json={**body, "by": "stage_group"}).json()
    assert _cells(variables["stage_group"]) == {c["value"]: c["count"] for c in breakdown["cells"]}
    assert sum(_cells(variables["sex"]).values()) == dashboard["count"]["count"] < 10  # small, and exact


def test_the_dashboard_is_noisy_without_an_approved_project(world: ApiWorld) -> None:
    """Attack: a researcher without approval (or a DPO, or a member of another project) reads exact small cells."""
    body = {"filters": {"cohort_definition_id": 1}, "panels": ["demographics", "stage"]}
    for role, project in (("unapproved", None), ("dpo", None), ("other_owner", None)):
        answer = world.client(role).post("/api/v1/mart/dashboard", json={**body, "project_id": project})
        assert answer.status_code == 200, role
        dashboard = answer.json()
        assert dashboard["count"]["release"]["mode"] == "noisy"
        for panel in dashboard["panels"]:
            for variable in panel["variables"]:
                assert variable["release"]["mode"] == "noisy"
                assert all(c["count"] is None or (c["count"] >= 10 and c["count"] % 5 == 0) for c in variable["cells"])
    assert world.client("public").post("/api/v1/mart/dashboard", json=body).status_code == 403
    assert world.client(None).post("/api/v1/mart/dashboard", json=body).status_code == 401
    assert world.client("researcher").post("/api/v1/mart/dashboard", json={**body, "panels": ["nope"]}
                                           ).status_code == 422  # fmt: skip


def test_the_dashboard_withholds_panels_once_the_budget_is_spent(world: ApiWorld) -> None:
    """Attack: a researcher without approval asks for dashboards until the budget is gone, hoping for more."""
    client = world.client("unapproved")
    seen_withheld = False
    for concept in range(40):  # each new filter is a new release
        answer = client.post("/api/v1/mart/dashboard", json={
            "filters": {"all": [{"variable": "year_of_diagnosis", "op": ">=", "value": 1990 + concept}]}})  # fmt: skip
        if answer.status_code == 403:
            assert "budget" in _error(answer)["message"]
            break
        variables = [v for panel in answer.json()["panels"] for v in panel["variables"]]
        seen_withheld |= any("budget" in str(v.get("withheld", "")) for v in variables)
    else:
        pytest.fail("the privacy budget never ran out")
    assert seen_withheld or concept == 0
