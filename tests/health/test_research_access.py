"""The guarded research services on the shared generated warehouse: the issue's done-when scenario.

A researcher without an approved project sees noisy, budgeted counts only and no record; they file a
request, a DPO approves it, and the same calls give raw counts and (pseudonymized) records; a
clinician sees the records of their own site only; every access is a ledger entry written before the
data is returned, and the log verifies.
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import (
    AccessDenied,
    Caller,
    Governance,
    InvalidRequest,
    Principal,
    ProjectScope,
    Role,
    operator_principal,
)
from massalia.governance.policy import project_cohort_id
from massalia.governance.pseudonym import pseudonymize
from massalia.health import research
from massalia.health.cohorts import CohortDefinition
from massalia.health.cohorts.explain import explain_person
from massalia.health.cohorts.service import analyze_cohort
from massalia.ledger import TransparencyLog

BREAST_STAGE = CohortDefinition.model_validate({
    "title": "breast cancer, stage IV",
    "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]},
    "inclusion_rules": [
        {"name": "stage IV", "expression": {"type": "ALL", "criteria_list": [{
            "criteria": {"kind": "TnmStage", "axis": "group", "value": {"op": "gte", "value": 4}},
            "start_window": {"start": {"days": 0, "coeff": -1}, "end": {"days": 90, "coeff": 1}},
            "occurrence": {"type": 2, "count": 1}}]}},
    ],
})  # fmt: skip
ANY_CANCER = CohortDefinition.model_validate({"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis"}]}})


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 6, 1, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Setting:
    gov: Governance
    engine: DuckDBEngine
    clock: Clock
    researcher: Principal
    dpo: Principal
    clinician: Principal


@pytest.fixture(scope="module")
def setting(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setting]:
    root = tmp_path_factory.mktemp("research-access")
    copy = root / "warehouse.duckdb"
    shutil.copy(demo_warehouse, copy)  # generation writes the cohort table: never write the shared file
    clock = Clock()
    operator = operator_principal()
    with (
        Governance(f"sqlite:///{(root / 'metadata.sqlite').as_posix()}", root / "ledger",
                   key_path=root / "keys" / "master.key", clock=clock) as gov,
        DuckDBEngine(copy) as engine,
    ):  # fmt: skip
        gov.create_user("rita", None, [Role.RESEARCHER], actor=operator)
        gov.create_user("dina", None, [Role.DPO], actor=operator)
        gov.create_user("cleo", None, [Role.CLINICIAN], "chu_nord", actor=operator)
        # Everyone authenticates with an API token, as the API and the command line do.
        principals = {
            name: gov.authenticate_token(gov.create_token(name, None, actor=operator))
            for name in ("rita", "dina", "cleo")
        }
        yield Setting(gov, engine, clock, principals["rita"], principals["dina"], principals["cleo"])


def ledger_actions(gov: Governance) -> list[dict[str, Any]]:
    if not gov.ledger_path.exists():
        return []
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        return [log.get(i).entry for i in range(log.size)]


def test_done_when_scenario(setting: Setting, tmp_path: Path) -> None:
    gov, engine, rita, dina = setting.gov, setting.engine, setting.researcher, setting.dpo
    analysis = analyze_cohort(engine, BREAST_STAGE)
    raw_base, raw_rows = analysis.attrition()
    small = [v for row in raw_rows for v in (row.persons_cumulative, row.persons_alone) if v and 0 < v < 10]
    assert small, "the scenario needs a small cell to show it is never released exactly"
    entries_before = len(ledger_actions(gov))

    # 1. No project: noisy persons counts (rounded, masked under 10, events withheld), and no record.
    noisy_base, noisy_rows = research.attrition(Caller(rita, gov), engine, BREAST_STAGE)
    assert noisy_base.release["mode"] == "noisy" and noisy_base.events is None  # type: ignore[index]
    released = [noisy_base.persons] + [v for r in noisy_rows for v in (r.persons_cumulative, r.persons_alone)]
    assert all(v is None or (v >= 10 and v % 5 == 0) for v in released)
    assert all(r.events_cumulative is None and r.events_alone is None for r in noisy_rows)
    first = research.count(Caller(rita, gov), engine, BREAST_STAGE)
    assert first.release["mode"] == "noisy" and first.events is None  # type: ignore[index]
    with pytest.raises(AccessDenied):
        research.explain(Caller(rita, gov), engine, BREAST_STAGE, 1, purpose="check the inclusion of a patient")

    # 2. A project scoped to the definition: still suppressed until a DPO approves it.
    scope = ProjectScope(cohort=BREAST_STAGE.model_dump(mode="json"), cohort_hash=BREAST_STAGE.definition_hash())
    project = gov.create_project("Breast IV", "survival of stage IV breast cancer by first-line regimen", scope=scope,
                                 access_level="pseudonymized", expires=dt.date(2026, 12, 31), actor=rita)  # fmt: skip
    assert project.members == ("rita",) and project.status == "draft"
    pid = project.id
    # Same query, same stored answer: asking again (under a draft project) gains nothing and costs nothing.
    again = research.count(Caller(rita, gov), engine, BREAST_STAGE, project_id=pid)
    assert again.persons == first.persons and again.release["repeated"]  # type: ignore[index]
    request = gov.file_request(pid, actor=rita, justification="the protocol was approved by the ethics board")
    with pytest.raises(AccessDenied):
        gov.decide_request(request.id, True, "self-approval", actor=rita)
    decided = gov.decide_request(request.id, True, "purpose and scope are proportionate", actor=dina)
    assert decided.status == "approved" and decided.decided_by == "dina"
    with pytest.raises(InvalidRequest, match="already approved"):
        gov.decide_request(request.id, False, "changed my mind", actor=dina)

    # 3. Approved: raw counts, under the project's definition only.
    exact_base, exact_rows = research.attrition(Caller(rita, gov), engine, BREAST_STAGE, project_id=pid)
    assert (exact_base.persons, exact_base.events, exact_rows) == (raw_base.persons, raw_base.events, raw_rows)
    assert exact_base.release == {"mode": "exact"}
    with pytest.raises(AccessDenied, match="definition"):
        research.count(Caller(rita, gov), engine, ANY_CANCER, project_id=pid)
    generated = research.generate(Caller(rita, gov), engine, BREAST_STAGE, cohort_definition_id=3, project_id=pid)
    assert generated.persons == raw_base.persons or generated.persons is not None
    cells = research.breakdowns(Caller(rita, gov), engine, BREAST_STAGE, cohort_definition_id=3, project_id=pid)
    assert sum(v or 0 for v in cells["sex"].values()) == generated.persons

    # 4. Row level, pseudonymized: the person is named by the project pseudonym, dates are shifted.
    stored = project_cohort_id(pid, 3)  # the project's cohort 3 lives in the project's own block of ids
    rows = engine.query(f"SELECT subject_id FROM cohort WHERE cohort_definition_id = {stored} LIMIT 1")
    person = int(rows[0][0].as_py())
    pseudonym = pseudonymize([person], key=gov.project_key(pid), project=pid)[0].as_py()
    with pytest.raises(InvalidRequest, match="pseudonym"):
        research.explain(Caller(rita, gov), engine, BREAST_STAGE, person, purpose="check one patient", project_id=pid)
    shown = research.explain(Caller(rita, gov), engine, BREAST_STAGE, pseudonym, purpose="check one patient",
                             project_id=pid)  # fmt: skip
    truth = explain_person(engine, BREAST_STAGE, person)
    assert shown.grant.row_level and shown.grant.pseudonymized and shown.in_cohort
    shift = shown.explanation.events[0].start_date - truth.events[0].start_date  # type: ignore[operator]
    assert shift != dt.timedelta(0) and abs(shift.days) <= research.PROJECT_DATE_SHIFT_DAYS
    assert all(str(person) != str(v) for row in shown.explanation.primary_events for v in row.values())

    # 5. Expired: back to noisy counts (the same stored answer).
    setting.clock.now = dt.datetime(2027, 1, 2, 9, 0, tzinfo=dt.UTC)
    try:
        assert research.count(Caller(rita, gov), engine, BREAST_STAGE, project_id=pid).persons == first.persons
    finally:
        setting.clock.now = Clock().now

    # 6. Every access is in the ledger, in order, and the log verifies.
    entries = ledger_actions(gov)[entries_before:]
    assert [(e["action"], e["decision"]) for e in entries] == [
        ("health.cohort.attrition", "allowed"), ("disclosure.release", "allowed"), ("health.cohort.count", "allowed"),
        ("disclosure.release", "allowed"), ("health.cohort.explain", "denied"), ("project.create", "allowed"),
        ("health.cohort.count", "allowed"), ("disclosure.release", "allowed"), ("request.file", "allowed"),
        ("request.decide", "denied"), ("request.decide", "allowed"),
        ("health.cohort.attrition", "allowed"), ("health.cohort.count", "denied"),
        ("health.cohort.generate", "allowed"), ("health.cohort.breakdowns", "allowed"),
        ("health.cohort.explain", "allowed"), ("health.cohort.explain", "allowed"),
        ("health.cohort.count", "allowed"), ("disclosure.release", "allowed"),
    ]  # fmt: skip
    assert entries[-2]["grant"]["raw_counts"] is False and entries[11]["grant"]["raw_counts"] is True
    assert entries[15]["purpose"] == "check one patient" and entries[15]["actor"] == "rita"
    assert entries[-1]["repeated"] is True and entries[1]["charged"] > 0
    with TransparencyLog(gov.ledger_path, readonly=True) as log:
        assert log.verify().ok


def test_clinicians_see_their_own_site_only(setting: Setting) -> None:
    gov, engine = setting.gov, setting.engine
    sites = engine.query(
        "SELECT cs.care_site_source_value AS site, MIN(p.person_id) AS person_id FROM person p "
        "JOIN care_site cs ON cs.care_site_id = p.care_site_id GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    by_site = {row["site"]: row["person_id"] for row in sites}
    assert "chu_nord" in by_site and len(by_site) > 1
    own = research.explain(
        Caller(setting.clinician, gov), engine, ANY_CANCER, by_site["chu_nord"], purpose="consultation"
    )
    assert own.grant.row_level and own.grant.site == "chu_nord" and not own.grant.pseudonymized
    assert own.explanation.primary_events and "start_date" in own.explanation.primary_events[0]
    other = next(site for site in by_site if site != "chu_nord")
    with pytest.raises(AccessDenied, match="own site"):
        research.explain(Caller(setting.clinician, gov), engine, ANY_CANCER, by_site[other], purpose="consultation")


def test_the_operator_gets_no_per_patient_verdict(setting: Setting) -> None:
    """Issue 10 §2: an in/out verdict on a named person is a per-patient oracle; without a project, nothing."""
    gov, engine = setting.gov, setting.engine
    person = int(engine.query("SELECT MIN(person_id) FROM person")[0][0].as_py())
    with pytest.raises(AccessDenied):
        research.explain(Caller(operator_principal(), gov), engine, ANY_CANCER, person, purpose="debug a definition")
    last = ledger_actions(gov)[-1]
    assert last["action"] == "health.cohort.explain" and last["decision"] == "denied"
    counts = research.count(Caller(operator_principal(), gov), engine, ANY_CANCER)
    exact = analyze_cohort(engine, ANY_CANCER).count()
    # The operator gets noisy counts like any caller without a project: close, rounded, never the events.
    assert counts.release["mode"] == "noisy" and counts.events is None  # type: ignore[index]
    assert counts.persons is not None and counts.persons % 5 == 0 and abs(counts.persons - exact.persons) < 200
    with pytest.raises(InvalidRequest, match="purpose"):
        research.explain(Caller(operator_principal(), gov), engine, ANY_CANCER, person, purpose=" ")


def test_extract_needs_an_approved_pseudonymized_project(setting: Setting, tmp_path: Path) -> None:
    gov, engine, rita, dina = setting.gov, setting.engine, setting.researcher, setting.dpo
    research.mart_build(Caller(operator_principal(), gov), engine)
    scope = ProjectScope(variables=("age_at_diagnosis", "sex", "primary_site"))
    until = dt.date(2026, 12, 31)
    aggregate = gov.create_project("Counts only", "incidence by site and year for the registry",
                                   scope=scope, access_level="aggregate", expires=until, actor=rita)  # fmt: skip
    pseudo = gov.create_project("Rows", "age at diagnosis distribution, pseudonymized rows",
                                scope=scope, access_level="pseudonymized", expires=until, actor=rita)  # fmt: skip
    with pytest.raises(AccessDenied):
        research.create_extract(Caller(rita, gov), engine, pseudo.id, out_dir=tmp_path)
    for project in (aggregate, pseudo):
        request = gov.file_request(project.id, actor=rita, justification="registry work, approved protocol")
        gov.decide_request(request.id, True, "proportionate", actor=dina)
    with pytest.raises(AccessDenied, match="access level"):
        research.create_extract(Caller(rita, gov), engine, aggregate.id, out_dir=tmp_path)
    result = research.create_extract(Caller(rita, gov), engine, pseudo.id, out_dir=tmp_path, on_low_k="generalize")
    table = pq.read_table(result.path)
    assert "person_id" not in table.column_names and table.num_rows > 0
    pseudonyms = table.column("person_pseudonym").to_pylist()
    everyone = engine.query("SELECT person_id FROM person").column(0)
    assert set(pseudonyms) <= set(pseudonymize(everyone, key=gov.project_key(pseudo.id), project=pseudo.id).to_pylist())
    assert [e["action"] for e in ledger_actions(gov)[-1:]] == ["health.extract.create"]
    # Mart counts: a variable outside the project's scope is refused; inside, raw counts.
    with pytest.raises(AccessDenied, match="scope"):
        research.mart_count(Caller(rita, gov), engine, ["stage_group = IV"], project_id=aggregate.id)
    raw = research.mart_count(Caller(rita, gov), engine, ["primary_site = breast"], project_id=aggregate.id)
    shown = research.mart_count(Caller(rita, gov), engine, ["primary_site = breast"])
    assert raw.release == {"mode": "exact"} and raw.count == research_count_of_breast(engine)
    assert shown.release["mode"] == "noisy" and shown.count is not None and abs(shown.count - raw.count) < 200


def research_count_of_breast(engine: Any) -> int:
    from massalia.health.marts.filters import FilterSpec, count_persons, parse_clause

    return count_persons(engine, FilterSpec(all=[parse_clause("primary_site = breast")]))


def test_patient_view(setting: Setting) -> None:
    gov, engine, rita, dina, cleo = setting.gov, setting.engine, setting.researcher, setting.dpo, setting.clinician
    own = int(engine.query("SELECT MIN(p.person_id) FROM person p JOIN care_site cs USING (care_site_id) "
                           "WHERE cs.care_site_source_value = 'chu_nord'")[0][0].as_py())  # fmt: skip
    view = research.patient_view(Caller(cleo, gov), engine, own, purpose="consultation follow-up")
    assert view.grant.site == "chu_nord" and view.tables["person"].column("person_id").to_pylist() == [own]
    assert view.tables["condition_occurrence"].num_rows > 0
    with pytest.raises(AccessDenied):
        research.patient_view(Caller(rita, gov), engine, own, purpose="curiosity is not a purpose")

    scope = ProjectScope(cohort=ANY_CANCER.model_dump(mode="json"), cohort_hash=ANY_CANCER.definition_hash())
    project = gov.create_project("Any cancer", "describe care pathways of all cancers", scope=scope,
                                 access_level="pseudonymized", expires=dt.date(2026, 12, 31), actor=rita)  # fmt: skip
    gov.decide_request(gov.file_request(project.id, actor=rita, justification="pathways study, approved").id, True,
                       "proportionate", actor=dina)  # fmt: skip
    pseudonym = pseudonymize([own], key=gov.project_key(project.id), project=project.id)[0].as_py()
    with pytest.raises(InvalidRequest, match="pseudonym"):
        research.patient_view(Caller(rita, gov), engine, own, purpose="pathway review", project_id=project.id)
    shown = research.patient_view(Caller(rita, gov), engine, pseudonym, purpose="pathway review", project_id=project.id)
    assert shown.grant.pseudonymized
    conditions = shown.tables["condition_occurrence"]
    assert set(conditions.column("person_id").to_pylist()) == {pseudonym}
    assert not [c for c in conditions.column_names if c.endswith("_source_value")]
    assert (
        "condition_occurrence_id" not in conditions.column_names and "condition_concept_id" in conditions.column_names
    )
    original = view.tables["condition_occurrence"].sort_by("condition_start_date").column("condition_start_date")
    shifted = conditions.sort_by("condition_start_date").column("condition_start_date")
    deltas = {(a - b).days for a, b in zip(shifted.to_pylist(), original.to_pylist(), strict=True)}
    assert len(deltas) == 1 and 0 < abs(deltas.pop()) <= research.PROJECT_DATE_SHIFT_DAYS
