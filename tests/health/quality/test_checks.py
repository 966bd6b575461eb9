"""Each check type fails when its rule is broken and passes on the clean warehouse."""

from __future__ import annotations

from datetime import date

import pytest
from quality_warehouse import Mutation, Rows, build

from massalia.engine import Engine
from massalia.health.quality import run_quality
from massalia.quality.report import FAILED, NOT_APPLICABLE, PASSED


def _set(table: str, index: int, **values: object) -> Mutation:
    def mutate(rows: Rows) -> None:
        rows[table][index].update(values)

    return mutate


def _append(table: str, **values: object) -> Mutation:
    def mutate(rows: Rows) -> None:
        rows[table].append({**rows[table][0], **values})

    return mutate


CASES = [
    (
        "isrequired.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 0, condition_start_date=None),
    ),
    ("isprimarykey.condition_occurrence.condition_occurrence_id", _append("condition_occurrence")),
    ("isforeignkey.condition_occurrence.person_id", _set("condition_occurrence", 0, person_id=99)),
    ("isforeignkey.condition_occurrence.condition_concept_id", _set("condition_occurrence", 0, condition_concept_id=7)),
    ("fkdomain.condition_occurrence.condition_concept_id", _set("condition_occurrence", 0, condition_concept_id=8507)),
    ("fkclass.drug_era.drug_concept_id", _set("drug_era", 0, drug_concept_id=1378383)),
    (
        "isstandardvalidconcept.condition_occurrence.condition_concept_id",
        _set("condition_occurrence", 0, condition_concept_id=45576876),
    ),
    (
        "measurevaluecompleteness.condition_occurrence.condition_type_concept_id",
        _set("condition_occurrence", 0, condition_type_concept_id=None),
    ),
    (
        "standardconceptrecordcompleteness.condition_occurrence.condition_concept_id",
        _set("condition_occurrence", 0, condition_concept_id=0),
    ),
    (
        "sourceconceptrecordcompleteness.condition_occurrence.condition_source_concept_id",
        _set("condition_occurrence", 0, condition_source_concept_id=0),
    ),
    (
        "sourcevaluecompleteness.condition_occurrence.condition_source_value",
        _set("condition_occurrence", 0, condition_concept_id=0),
    ),
    (
        "plausiblevaluelow.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 0, condition_start_date=date(1949, 1, 1)),
    ),
    (
        "plausiblevaluehigh.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 0, condition_start_date=date(2999, 1, 1), condition_end_date=None),
    ),
    ("plausiblevaluelow.person.year_of_birth", _set("person", 0, year_of_birth=1700, birth_datetime=None)),
    (
        "plausibletemporalafter.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 0, condition_start_date=date(1969, 6, 1)),
    ),
    (
        "plausibletemporalafter.condition_occurrence.condition_end_date",
        _set("condition_occurrence", 0, condition_end_date=date(2009, 1, 1)),
    ),
    (
        "plausibleafterbirth.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 0, condition_start_date=date(1969, 12, 31)),
    ),
    (
        "plausiblebeforedeath.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 1, condition_start_date=date(2020, 3, 2), condition_end_date=None),
    ),
    (
        "plausibleduringlife.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 1, condition_start_date=date(2020, 3, 2), condition_end_date=None),
    ),
    (
        "plausiblestartbeforeend.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 0, condition_end_date=date(2009, 12, 1)),
    ),
    (
        "withinvisitdates.condition_occurrence.condition_start_date",
        _set("condition_occurrence", 0, condition_start_date=date(2010, 1, 10), condition_end_date=None),
    ),
    ("measurepersoncompleteness.observation_period", lambda rows: rows["observation_period"].pop()),
    (
        "measureobservationperiodoverlap.observation_period",
        _append("observation_period", observation_period_id=3, observation_period_start_date=date(2019, 1, 1)),
    ),
    (
        "plausiblegender.condition_occurrence.condition_concept_id.4199600",
        _append("condition_occurrence", condition_occurrence_id=4, person_id=2, condition_concept_id=4199600),
    ),
    (
        "plausibleunitconceptids.measurement.measurement_concept_id.3013721",
        _set("measurement", 0, unit_concept_id=8554),
    ),
    ("cdmfield.person.year_of_birth", lambda rows: [row.pop("year_of_birth") for row in rows["person"]]),
]


def _ids(case: tuple[str, Mutation]) -> str:
    return case[0]


def _check(engine: Engine, check_id: str) -> str:
    name = next(n for n in _names() if n.lower() == check_id.split(".")[0])
    report = run_quality(engine, checks=[name])
    return next(r for r in report.results if r.check_id == check_id).status


def _names() -> list[str]:
    from massalia.health.quality import default_registry

    return default_registry().names()


@pytest.mark.parametrize(("check_id", "mutate"), CASES, ids=[c[0] for c in CASES])
def test_check_fails_when_rule_is_broken(duckdb_engine: Engine, check_id: str, mutate: Mutation) -> None:
    if check_id.startswith("cdmfield"):
        build(duckdb_engine)
        duckdb_engine.execute("ALTER TABLE person DROP COLUMN year_of_birth")
    else:
        build(duckdb_engine, mutate)
    assert _check(duckdb_engine, check_id) == FAILED


@pytest.mark.parametrize("check_id", sorted({c[0] for c in CASES}))
def test_check_passes_on_clean_warehouse(duckdb_engine: Engine, check_id: str) -> None:
    build(duckdb_engine)
    assert _check(duckdb_engine, check_id) == PASSED


def test_cdm_datatype_flags_non_integer_values(duckdb_engine: Engine) -> None:
    build(duckdb_engine)
    assert _check(duckdb_engine, "cdmdatatype.person.year_of_birth") == PASSED
    duckdb_engine.execute(
        "CREATE OR REPLACE TABLE person AS SELECT * REPLACE (year_of_birth || '.5' AS year_of_birth) FROM person"
    )
    assert _check(duckdb_engine, "cdmdatatype.person.year_of_birth") == FAILED


def test_cdm_table_fails_when_table_is_absent(duckdb_engine: Engine) -> None:
    build(duckdb_engine)
    assert _check(duckdb_engine, "cdmtable.person") == PASSED
    assert _check(duckdb_engine, "cdmtable.note") == FAILED


def test_threshold_is_respected(duckdb_engine: Engine) -> None:
    # standardConceptRecordCompleteness on condition_concept_id tolerates 5 %: 1 of 30 passes, 2 of 30 fail.
    def rows_with(zeros: int) -> Mutation:
        def mutate(rows: Rows) -> None:
            base = rows["condition_occurrence"][0]
            rows["condition_occurrence"] = [
                {**base, "condition_occurrence_id": i, "condition_concept_id": 0 if i < zeros else 201826}
                for i in range(30)
            ]

        return mutate

    check_id = "standardconceptrecordcompleteness.condition_occurrence.condition_concept_id"
    build(duckdb_engine, rows_with(1))
    report = run_quality(duckdb_engine, checks=["standardConceptRecordCompleteness"])
    result = next(r for r in report.results if r.check_id == check_id)
    assert (result.num_violated_rows, result.num_denominator_rows, result.threshold) == (1, 30, 5.0)
    assert result.status == PASSED
    build(duckdb_engine, rows_with(2))
    assert _check(duckdb_engine, check_id) == FAILED


def test_not_applicable_when_table_absent_empty_or_field_empty(duckdb_engine: Engine) -> None:
    def no_drug_era(rows: Rows) -> None:
        rows["drug_era"] = []

    build(duckdb_engine, no_drug_era)
    report = run_quality(duckdb_engine, checks=["isRequired", "fkDomain", "plausibleGender", "cdmTable"])
    by_id = {r.check_id: r for r in report.results}
    assert by_id["isrequired.drug_era.person_id"].status == NOT_APPLICABLE  # empty table
    assert by_id["isrequired.drug_era.person_id"].message == "table drug_era is empty"
    assert by_id["isrequired.note.note_id"].status == NOT_APPLICABLE  # absent table
    assert by_id["cdmtable.note"].status == FAILED  # conformance checks are never 'not applicable'
    # condition_status_concept_id holds no value at all: DQD reports checks on it as not applicable.
    assert by_id["fkdomain.condition_occurrence.condition_status_concept_id"].status == NOT_APPLICABLE
    # sex-specific concepts nobody has; 4199600 is recorded once
    genders = [r for r in report.results if r.check_name == "plausibleGender"]
    assert {r.status for r in genders if r.concept_id != 4199600} == {NOT_APPLICABLE}
    assert by_id["plausiblegender.condition_occurrence.condition_concept_id.4199600"].status == PASSED
