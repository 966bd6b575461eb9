"""The scope attack: a site- and period-scoped project only ever sees its sites and period.

The warehouse is made by hand so every figure is known: 40 persons, odd ones at ``chu_nord`` and even
ones at ``clcc_sud``; persons 1-20 were diagnosed in 2019, persons 21-40 in 2022. A project scoped to
``chu_nord`` and 2021-2023 therefore covers exactly the 10 odd persons 21-39. Before the row-level
policy, its count, mart count and extract held all 40 persons, and its patient view and explanation
showed any site and year. Each path is checked on DuckDB and PostgreSQL (``-m postgres``).

The cohort-id collision: two projects both call their cohort "1"; before per-project ids the second
generation replaced the first project's rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from massalia.engine import Engine
from massalia.governance import (
    AccessDenied,
    Caller,
    Governance,
    InvalidRequest,
    NotFound,
    Principal,
    ProjectScope,
    Role,
    operator_principal,
)
from massalia.governance.policy import project_cohort_id
from massalia.governance.pseudonym import pseudonymize
from massalia.health import research
from massalia.health.cohorts import import_circe
from massalia.health.cohorts.explain import explain_person
from massalia.health.cohorts.service import analyze_cohort
from massalia.health.omop.schema import create_cdm_schema
from massalia.ledger import TransparencyLog

ENGINES = [
    pytest.param("duckdb", marks=pytest.mark.duckdb, id="duckdb"),
    pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
]
ANY_CONDITION = import_circe(
    {"PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {}}], "PrimaryCriteriaLimit": {"Type": "All"}}}
)
PERIOD = (dt.date(2021, 1, 1), dt.date(2023, 12, 31))
IN_SCOPE = list(range(21, 40, 2))  # odd (chu_nord) persons diagnosed in 2022
LATE_RECORD = dt.date(2024, 6, 1)  # person 21 also has a 2024 condition: after the project's period


def diagnosis(person: int) -> dt.date:
    return dt.date(2019 if person <= 20 else 2022, 1 + person % 12, 1 + person % 28)


def site(person: int) -> str:
    return "chu_nord" if person % 2 else "clcc_sud"


def load_warehouse(engine: Engine) -> None:
    """The 40-person OMOP tables and the matching research mart."""
    create_cdm_schema(engine, ["concept", "care_site", "person", "observation_period", "condition_occurrence"])
    engine.execute_native(
        "INSERT INTO care_site (care_site_id, care_site_name, care_site_source_value) "
        "VALUES (1, 'CHU Nord', 'chu_nord'), (2, 'CLCC Sud', 'clcc_sud')"
    )
    people, periods, conditions = [], [], []
    for p in range(1, 41):
        people.append(f"({p}, {8507 if p % 4 < 2 else 8532}, {1950 + p % 7}, 0, 0, {1 if p % 2 else 2})")
        periods.append(f"({p}, {p}, DATE '2010-01-01', DATE '2025-12-31', 32817)")
        conditions.append(f"({p}, {p}, 443392, DATE '{diagnosis(p).isoformat()}', 32817)")
    conditions.append(f"(100, 21, 443392, DATE '{LATE_RECORD.isoformat()}', 32817)")
    engine.execute_native(
        "INSERT INTO person (person_id, gender_concept_id, year_of_birth, race_concept_id, ethnicity_concept_id,"
        f" care_site_id) VALUES {', '.join(people)}"
    )
    engine.execute_native(
        "INSERT INTO observation_period (observation_period_id, person_id, observation_period_start_date,"
        f" observation_period_end_date, period_type_concept_id) VALUES {', '.join(periods)}"
    )
    engine.execute_native(
        "INSERT INTO condition_occurrence (condition_occurrence_id, person_id, condition_concept_id,"
        f" condition_start_date, condition_type_concept_id) VALUES {', '.join(conditions)}"
    )
    engine.create_table(
        "mart_patient",
        pa.table({
            "person_id": pa.array(range(1, 41), pa.int64()),
            "sex": ["MALE" if p % 4 < 2 else "FEMALE" for p in range(1, 41)],
            "care_site_code": [site(p) for p in range(1, 41)],
            "diagnosis_date": pa.array([diagnosis(p) for p in range(1, 41)], pa.date32()),
        }),
    )  # fmt: skip


@dataclass
class World:
    gov: Governance
    engine: Engine
    rita: Principal
    olga: Principal
    dina: Principal


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    load_warehouse(engine)
    operator = operator_principal()
    with Governance(f"sqlite:///{(tmp_path / 'metadata.sqlite').as_posix()}", tmp_path / "ledger",
                    key_path=tmp_path / "master.key") as gov:  # fmt: skip
        people = {
            name: gov.create_user(name, None, [role], actor=operator)
            for name, role in (("rita", Role.RESEARCHER), ("olga", Role.RESEARCHER), ("dina", Role.DPO))
        }
        yield World(gov, engine, people["rita"], people["olga"], people["dina"])


def approved_project(w: World, owner: Principal, *, sites: tuple[str, ...], period: tuple[dt.date, dt.date] | None,
                     variables: tuple[str, ...] = ("sex", "care_site_code")) -> int:  # fmt: skip
    scope = ProjectScope(
        cohort=ANY_CONDITION.model_dump(mode="json"), cohort_hash=ANY_CONDITION.definition_hash(), variables=variables,
        sites=sites, period_start=period[0] if period else None, period_end=period[1] if period else None,
    )  # fmt: skip
    project = w.gov.create_project(
        "Scoped study", "a site- and period-scoped study of conditions", scope=scope, access_level="pseudonymized",
        expires=dt.date.today() + dt.timedelta(days=365), actor=owner,
    )  # fmt: skip
    request = w.gov.file_request(project.id, actor=owner, justification="protocol approved by the board")
    w.gov.decide_request(request.id, True, "proportionate", actor=w.dina)
    return project.id


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_a_scoped_project_sees_only_its_sites_and_period(world: World, tmp_path: Path) -> None:
    w = world
    gov, engine, rita = w.gov, w.engine, w.rita
    pid = approved_project(w, rita, sites=("chu_nord",), period=PERIOD)
    # The data hold 40 persons: the domain's exact, unguarded count sees them all.
    assert analyze_cohort(engine, ANY_CONDITION).count().persons == 40

    # Count and attrition: only the 10 persons of chu_nord diagnosed in the period.
    counts = research.count(Caller(rita, gov), engine, ANY_CONDITION, project_id=pid)
    assert counts.persons == len(IN_SCOPE)
    assert research.attrition(Caller(rita, gov), engine, ANY_CONDITION, project_id=pid)[0].persons == len(IN_SCOPE)

    # Generation writes only the scope's rows, under the project's own id; breakdowns see one site.
    generated = research.generate(Caller(rita, gov), engine, ANY_CONDITION, cohort_definition_id=1, project_id=pid)
    assert generated.persons == len(IN_SCOPE) and generated.cohort_definition_id == 1
    stored = engine.query(
        f"SELECT DISTINCT subject_id FROM cohort WHERE cohort_definition_id = {project_cohort_id(pid, 1)}"
    )
    assert sorted(stored.column("subject_id").to_pylist()) == IN_SCOPE
    cells = research.breakdowns(Caller(rita, gov), engine, ANY_CONDITION, cohort_definition_id=1, project_id=pid)
    assert {site for site, n in cells["site"].items() if n} == {"CHU Nord"}, "only our site holds rows"

    # Mart count and breakdown: the same 10.
    mart = research.mart_count(Caller(rita, gov), engine, {"cohort_definition_id": 1}, project_id=pid)
    assert mart.count == len(IN_SCOPE)
    by_site = research.mart_breakdown(Caller(rita, gov), engine, {"cohort_definition_id": 1}, "sex", project_id=pid)
    assert sum(v or 0 for v in by_site.cells.values()) == len(IN_SCOPE)

    # Extract: 10 rows, all of chu_nord.
    result = research.create_extract(Caller(rita, gov), engine, pid, out_dir=tmp_path / "extract",
                                     cohort_definition_id=1, k_min=2, on_low_k="generalize")  # fmt: skip
    rows = pq.read_table(result.path)
    assert rows.num_rows == len(IN_SCOPE)
    assert set(rows.column("care_site_code").to_pylist()) == {"chu_nord"}

    key = gov.project_key(pid)
    pseudonyms = dict(zip([2, 21, 23], pseudonymize([2, 21, 23], key=key, project=pid).to_pylist(), strict=True))
    # Patient view: a person of another site is not found; person 21's 2024 record is not shown.
    with pytest.raises(NotFound):
        research.patient_view(Caller(rita, gov), engine, pseudonyms[2], purpose="follow-up review", project_id=pid)
    view = research.patient_view(Caller(rita, gov), engine, pseudonyms[21], purpose="follow-up review", project_id=pid)
    assert view.tables["condition_occurrence"].num_rows == 1, "only the in-period record"
    assert view.tables["person"].num_rows == 1

    # Explain: of person 21's two entry records only the one in the period is shown.
    assert len(explain_person(engine, ANY_CONDITION, 21).primary_events) == 2
    explained = research.explain(Caller(rita, gov), engine, ANY_CONDITION, pseudonyms[21], purpose="why included",
                                 project_id=pid)  # fmt: skip
    assert len(explained.explanation.primary_events) == 1 and explained.in_cohort
    with pytest.raises(NotFound):
        research.explain(
            Caller(rita, gov), engine, ANY_CONDITION, pseudonyms[2], purpose="why included", project_id=pid
        )


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_an_operator_explanation_under_a_project_refuses_every_person(world: World) -> None:
    # The operator is no member of the project: no verdict on anyone, in scope or not (an in/out answer on a
    # named person is itself personal data).
    w = world
    pid = approved_project(w, w.rita, sites=("chu_nord",), period=None)
    operator = operator_principal()
    for person in (2, 3):
        with pytest.raises(AccessDenied):
            research.explain(
                Caller(operator, w.gov), w.engine, ANY_CONDITION, person, purpose="logic check", project_id=pid
            )


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_two_projects_cohort_1_do_not_overwrite_each_other(world: World) -> None:
    w = world
    north = approved_project(w, w.rita, sites=("chu_nord",), period=None)
    south = approved_project(w, w.olga, sites=("clcc_sud",), period=None)
    research.generate(Caller(w.rita, w.gov), w.engine, ANY_CONDITION, cohort_definition_id=1, project_id=north)
    # The attack: the other project generates "its" cohort 1 afterwards.
    research.generate(Caller(w.olga, w.gov), w.engine, ANY_CONDITION, cohort_definition_id=1, project_id=south)
    north_count = research.mart_count(Caller(w.rita, w.gov), w.engine, {"cohort_definition_id": 1}, project_id=north)
    south_count = research.mart_count(Caller(w.olga, w.gov), w.engine, {"cohort_definition_id": 1}, project_id=south)
    assert north_count.count == south_count.count == 20
    north_sites = research.breakdowns(Caller(w.rita, w.gov), w.engine, ANY_CONDITION, cohort_definition_id=1,
                                      project_id=north)["site"]  # fmt: skip
    assert {site for site, n in north_sites.items() if n} == {"CHU Nord"}, "project north's cohort 1 keeps its own rows"
    ids = w.engine.query("SELECT DISTINCT cohort_definition_id FROM cohort ORDER BY 1").column(0).to_pylist()
    assert ids == [project_cohort_id(north, 1), project_cohort_id(south, 1)]
    # Nobody reaches a project's block of ids without the project: neither to overwrite nor to count it.
    operator, stored = operator_principal(), project_cohort_id(north, 1)
    with pytest.raises(InvalidRequest, match="cohort id"):
        research.generate(Caller(operator, w.gov), w.engine, ANY_CONDITION, cohort_definition_id=stored)
    with pytest.raises(InvalidRequest, match="cohort id"):
        research.mart_count(Caller(w.olga, w.gov), w.engine, {"cohort_definition_id": stored})
    sites = research.breakdowns(
        Caller(w.rita, w.gov), w.engine, ANY_CONDITION, cohort_definition_id=1, project_id=north
    )
    assert {site for site, n in sites["site"].items() if n} == {"CHU Nord"}


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_naming_another_project_reveals_nothing_of_its_scope(world: World, tmp_path: Path) -> None:
    # The attack: olga (a researcher of no project) names rita's project in every guarded call, hoping to
    # learn its variables (from the "outside the project's scope" refusal), whether it is scoped to a cohort,
    # or to get counts restricted to its sites and period. Before the membership check, each path read the
    # other project's scope first and answered from it.
    w = world
    pid = approved_project(w, w.rita, sites=("chu_nord",), period=PERIOD, variables=("sex",))
    research.generate(Caller(w.rita, w.gov), w.engine, ANY_CONDITION, cohort_definition_id=1, project_id=pid)
    missing = pid + 1000
    olga = Caller(w.olga, w.gov)
    calls = {
        "count": lambda p: research.count(olga, w.engine, ANY_CONDITION, project_id=p),
        "attrition": lambda p: research.attrition(olga, w.engine, ANY_CONDITION, project_id=p),
        "breakdowns": lambda p: research.breakdowns(
            olga, w.engine, ANY_CONDITION, cohort_definition_id=1, project_id=p
        ),
        "generate": lambda p: research.generate(olga, w.engine, ANY_CONDITION, cohort_definition_id=3, project_id=p),
        "mart count": lambda p: research.mart_count(olga, w.engine, ["care_site_code = chu_nord"], project_id=p),
        "mart breakdown": lambda p: research.mart_breakdown(olga, w.engine, {}, "care_site_code", project_id=p),
        "extract": lambda p: research.create_extract(olga, w.engine, p, out_dir=tmp_path / "stolen"),
    }
    for name, call in calls.items():
        answers = []
        for project in (pid, missing):
            with pytest.raises(AccessDenied) as refused:
                call(project)
            answers.append(refused.value.reason.replace(str(project), "N"))
        # The same words whether the project exists or not, and nothing of its scope in them.
        assert answers[0] == answers[1], name
        assert "not a member" in answers[0] and "care_site_code" not in answers[0] and "cohort" not in answers[0]
    assert not (tmp_path / "stolen").exists()
    # Each refusal is in the audit trail under the action tried, with its reason.
    with TransparencyLog(w.gov.ledger_path, readonly=True) as log:
        entries = [log.get(i).entry for i in range(log.size)]
    denied = [e for e in entries if e.get("decision") == "denied" and "not a member" in e.get("denied_because", "")]
    assert {e["action"] for e in denied} >= {"health.cohort.count", "health.mart.count", "health.extract.create"}
    # Rita, a member, still works under it; the DPO (who oversees every project) may name it too.
    assert research.mart_count(
        Caller(w.rita, w.gov), w.engine, {"cohort_definition_id": 1}, project_id=pid
    ).count == len(IN_SCOPE)
    research.mart_count(Caller(w.dina, w.gov), w.engine, {"cohort_definition_id": 1}, project_id=pid)
