"""Attacks on pseudonymized patient views and explanations (issue 10, section 2), on DuckDB and PostgreSQL.

Observed: a pseudonymized patient view returned the real ``year_of_birth``, ``month_of_birth`` and
``day_of_birth`` beside the shifted ``birth_datetime`` (their difference *is* the person's shift, which
un-shifts every date), and a pseudonymized ``explain`` returned the real ``visit_occurrence_id``.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance, ProjectScope, Role, operator_principal
from massalia.governance.pseudonym import date_shifts, pseudonymize
from massalia.health import research
from massalia.health.cohorts import CohortDefinition
from massalia.health.pseudonymized import Release, pseudonymized_table, release_of

ANY_CANCER = CohortDefinition.model_validate({"primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis"}]}})
# Explain with an inclusion rule, so that evidence records come back too.
STAGED = CohortDefinition.model_validate({
    "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis"}]},
    "inclusion_rules": [
        {"name": "staged", "expression": {"type": "ALL", "criteria_list": [{
            "criteria": {"kind": "TnmStage", "axis": "group", "value": {"op": "gte", "value": 1}},
            "start_window": {"start": {"days": 0, "coeff": -1}, "end": {"days": 365, "coeff": 1}},
            "occurrence": {"type": 2, "count": 1}}]}},
    ],
})  # fmt: skip
PERSONS = 40
"""Persons copied to PostgreSQL (every person-level table is cut to them; the vocabulary is whole)."""

ORDINALS = {"event_id", "record_id", "record", "visit", "preceding_visit"}


@dataclass
class World:
    gov: Governance
    engine: Engine
    researcher: Any
    project: int
    staged_project: int
    person: int

    def pseudonym(self, project: int | None = None) -> str:
        project = project or self.project
        return str(pseudonymize([self.person], key=self.gov.project_key(project), project=project)[0].as_py())

    def shift(self) -> int:
        days = date_shifts([self.person], key=self.gov.project_key(self.project), project=self.project,
                           max_days=research.PROJECT_DATE_SHIFT_DAYS)  # fmt: skip
        return int(days[0].as_py())


def _copy_to_postgres(duck: DuckDBEngine, dsn: str, persons: list[int]) -> Engine:
    from massalia.engine.postgres import PostgresEngine

    pg = PostgresEngine(dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    wanted = ", ".join(str(p) for p in persons)
    for table in duck.list_tables():
        columns = {column.name for column in duck.describe(table)}
        where = f" WHERE person_id IN ({wanted})" if "person_id" in columns else ""
        rows = duck.query(f"SELECT * FROM {table}{where}")
        if rows.num_rows or not where:
            pg.create_table(table, rows)
    return pg


@pytest.fixture(scope="module", params=[pytest.param("duckdb"), pytest.param("postgres", marks=pytest.mark.postgres)])
def world(
    request: pytest.FixtureRequest, demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("pseudonymized-outputs")
    copy = root / "warehouse.duckdb"
    shutil.copy(demo_warehouse, copy)
    operator = operator_principal()
    with (
        Governance(f"sqlite:///{(root / 'metadata.sqlite').as_posix()}", root / "ledger",
                   key_path=root / "keys" / "master.key") as gov,
        DuckDBEngine(copy) as duck,
    ):  # fmt: skip
        gov.create_user("rita", None, [Role.RESEARCHER], actor=operator)
        gov.create_user("dina", None, [Role.DPO], actor=operator)
        rita = gov.authenticate_token(gov.create_token("rita", None, actor=operator))
        dina = gov.authenticate_token(gov.create_token("dina", None, actor=operator))
        projects = []
        for definition in (ANY_CANCER, STAGED):
            scope = ProjectScope(cohort=definition.model_dump(mode="json"), cohort_hash=definition.definition_hash())
            until = dt.date(2099, 12, 31)
            project = gov.create_project("Pathways", "describe care pathways of cancers", scope=scope,
                                         access_level="pseudonymized", expires=until, actor=rita)  # fmt: skip
            filed = gov.file_request(project.id, actor=rita, justification="pathways study, approved protocol")
            gov.decide_request(filed.id, True, "proportionate", actor=dina)
            projects.append(project.id)
        # A person with a diagnosis, visits and a stage (so views and explanations have records to leak).
        person = int(duck.query(
            "SELECT MIN(c.person_id) FROM condition_occurrence c JOIN visit_occurrence v ON v.person_id = c.person_id "
            "JOIN measurement m ON m.person_id = c.person_id WHERE c.visit_occurrence_id IS NOT NULL"
        )[0][0].as_py())  # fmt: skip
        if request.param == "duckdb":
            yield World(gov, duck, rita, projects[0], projects[1], person)
            return
        ids = duck.query(f"SELECT person_id FROM person ORDER BY person_id LIMIT {PERSONS}").column(0).to_pylist()
        pg = _copy_to_postgres(duck, request.getfixturevalue("pg_dsn"), sorted({*ids, person}))
        try:
            yield World(gov, pg, rita, projects[0], projects[1], person)
        finally:
            pg.drop_schema()  # type: ignore[attr-defined]
            pg.close()


def _view(world: World) -> research.PatientView:
    return research.patient_view(Caller(world.researcher, world.gov), world.engine, world.pseudonym(),
                                 purpose="pathway review", project_id=world.project)  # fmt: skip


def _identified(world: World, table: str) -> list[dict[str, Any]]:
    return world.engine.query(f"SELECT * FROM {table} WHERE person_id = {world.person}").to_pylist()


def test_date_parts_do_not_give_the_shift_away(world: World) -> None:
    """Attack: shift = shifted birth_datetime − date(year_of_birth, month_of_birth, day_of_birth)."""
    (row,) = _view(world).tables["person"].to_pylist()
    (real,) = _identified(world, "person")
    assert real["birth_datetime"] is not None and real["month_of_birth"] and real["day_of_birth"]
    parts = dt.date(row["year_of_birth"], row["month_of_birth"], row["day_of_birth"])
    recovered = (row["birth_datetime"].date() - parts).days
    assert recovered == 0, f"the date parts reveal the shift ({recovered} days)"
    # ...and they are the shifted ones, not the real ones: the real birth date is nowhere in the view.
    assert (row["birth_datetime"] - real["birth_datetime"]).days == world.shift() != 0
    real_birth = dt.date(real["year_of_birth"], real["month_of_birth"], real["day_of_birth"])
    assert parts != real_birth


def test_a_birth_date_known_by_its_parts_only_is_shifted_as_a_whole() -> None:
    """No birth_datetime: the parts are rebuilt into a date, shifted, and only the parts the warehouse had shown."""
    rows = pa.table({
        "person_id": [1, 1], "year_of_birth": [1950, 1950], "month_of_birth": [3, None],
        "day_of_birth": [30, None], "birth_datetime": pa.array([None, None], pa.timestamp("us")),
    })  # fmt: skip
    shown = pseudonymized_table(rows, "person", "p1-X", 5).to_pylist()
    assert (shown[0]["year_of_birth"], shown[0]["month_of_birth"], shown[0]["day_of_birth"]) == (1950, 4, 4)
    assert (shown[1]["year_of_birth"], shown[1]["month_of_birth"], shown[1]["day_of_birth"]) == (1950, None, None)
    late = pseudonymized_table(rows.slice(1), "person", "p1-X", 200).to_pylist()
    assert late[0]["year_of_birth"] == 1951  # July 1st + 200 days: the year moves with the shift


def _check_keys(records: list[Mapping[str, object]], pseudonym: str, where: str) -> None:
    for position, record in enumerate(records, start=1):
        for key, value in record.items():
            if key in ("person_id", "subject_id"):
                assert value == pseudonym, f"{where}: {key} is not the pseudonym"
            elif key in ("event_id", "record_id"):
                assert value == position, f"{where}: {key} is not an ordinal"
            else:
                assert not key.endswith("_id") or key.endswith("_concept_id"), f"{where}: warehouse key {key}"
                assert not key.endswith("_source_value"), f"{where}: {key}"


def test_explain_leaks_no_warehouse_key(world: World) -> None:
    """Attack: read visit_occurrence_id (or any *_id) off a pseudonymized explanation and join it back."""
    pseudonym = world.pseudonym(world.staged_project)
    shown = research.explain(Caller(world.researcher, world.gov), world.engine, STAGED, pseudonym,
                             purpose="pathway review", project_id=world.staged_project)  # fmt: skip
    explanation = shown.explanation
    assert shown.grant.pseudonymized and explanation.primary_events and explanation.person_id == 0
    raw = research.explain_person(world.engine, STAGED, world.person)
    leaked = {key for row in raw.primary_events for key in row if key.endswith("_id")}
    assert "visit_occurrence_id" in leaked, "the attack needs a real key in the raw rows to be meaningful"
    _check_keys(explanation.primary_events, pseudonym, "primary events")
    _check_keys(explanation.cohort_periods, pseudonym, "cohort periods")
    evidence = [ev for event in explanation.events for rule in event.rules for ev in rule.evidence]
    assert evidence and any(ev.records for ev in evidence)
    for ev in evidence:
        _check_keys(ev.records, pseudonym, f"evidence {ev.path}")
    assert [event.event_id for event in explanation.events] == list(range(1, len(explanation.events) + 1))
    # Dates are shifted by the project's shift, never the real ones.
    days = date_shifts([world.person], key=world.gov.project_key(world.staged_project), project=world.staged_project,
                       max_days=research.PROJECT_DATE_SHIFT_DAYS)[0].as_py()  # fmt: skip
    starts = sorted(row["start_date"] for row in explanation.primary_events)
    real_starts = sorted(row["start_date"] for row in raw.primary_events)
    assert {(a - b).days for a, b in zip(starts, real_starts, strict=True)} == {days}


def test_patient_view_carries_only_allow_listed_columns(world: World) -> None:
    """Attack: any id (visit, provider, care site, location, record) or source value is a join key back."""
    view = _view(world)
    assert view.grant.pseudonymized
    visits = view.tables["visit_occurrence"].num_rows
    assert visits > 0 and view.tables["condition_occurrence"].num_rows > 0
    for name, table in view.tables.items():
        for field in table.schema:
            if field.name in ORDINALS:
                continue
            assert release_of(field.name, field.type, table=name) not in (None, Release.ORDINAL), (name, field.name)
            assert not field.name.endswith("_id") or field.name.endswith("_concept_id") or field.name == "person_id"
        if table.num_rows and "record" in table.column_names:
            assert table.column("record").to_pylist() == list(range(1, table.num_rows + 1)), name
        if "visit" in table.column_names:
            assert set(table.column("visit").drop_null().to_pylist()) <= set(range(1, visits + 1)), name
    # The visit ordinals keep the record → visit link inside the view: a condition's visit starts on its date.
    conditions = view.tables["condition_occurrence"].to_pylist()
    visit_start = {row["record"]: row["visit_start_date"] for row in view.tables["visit_occurrence"].to_pylist()}
    linked = [row for row in conditions if row["visit"] is not None]
    assert linked
    real_visits = {row["visit_occurrence_id"]: row for row in _identified(world, "visit_occurrence")}
    real_conditions = _identified(world, "condition_occurrence")
    assert len(linked) == sum(row["visit_occurrence_id"] in real_visits for row in real_conditions)
    assert all(visit_start[row["visit"]] is not None for row in linked)
