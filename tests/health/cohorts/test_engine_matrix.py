"""The same cohorts give the same rows on DuckDB, PostgreSQL and Spark (Synthea27Nj, a real OMOP sample).

Each definition exercises a different part of the compiler; every engine's rows are compared with
DuckDB's, and DuckDB's with facts checked independently in plain SQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.health.cohorts import import_circe
from massalia.health.cohorts.service import analyze_cohort, generate_cohort
from massalia.health.omop.omop_csv import load_omop_csv
from reference_data import REFERENCE

SYNTHEA = REFERENCE / "eunomia" / "Synthea27Nj_5.4.zip"


@pytest.fixture(autouse=True)
def _synthea_present(reference: Path) -> None:
    """The ``reference`` fixture skips locally and fails in CI when the shared data is absent."""
    assert SYNTHEA.is_file(), f"{SYNTHEA} not found in {reference}"


COMMON_CONDITION, OTHER_CONDITION = 40481087, 4251306
DRUG, LAB = 1127433, 3012888


def concept_set(codeset_id: int, *concept_ids: int, descendants: bool = True) -> dict[str, Any]:
    items = [{"concept": {"CONCEPT_ID": c}, "includeDescendants": descendants} for c in concept_ids]
    return {"id": codeset_id, "name": f"set {codeset_id}", "expression": {"items": items}}


def window(before: int | None, after: int | None, **flags: bool) -> dict[str, Any]:
    return {"Start": {"Days": before, "Coeff": -1}, "End": {"Days": after, "Coeff": 1}, **flags}


CONCEPT_SETS = [
    concept_set(0, COMMON_CONDITION),
    concept_set(1, OTHER_CONDITION),
    concept_set(2, DRUG),
    concept_set(3, LAB),
]

DEFINITIONS: dict[str, dict[str, Any]] = {
    "windows-groups-offset-pad": {
        "ConceptSets": CONCEPT_SETS,
        "PrimaryCriteria": {
            "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0}}],
            "ObservationWindow": {"PriorDays": 30, "PostDays": 0},
            "PrimaryCriteriaLimit": {"Type": "All"},
        },
        "InclusionRules": [
            {"name": "2 labs > 70 in the year before", "expression": {"Type": "ALL", "CriteriaList": [{
                "Criteria": {"Measurement": {"CodesetId": 3, "ValueAsNumber": {"Op": "gt", "Value": 70}}},
                "StartWindow": window(365, 0), "Occurrence": {"Type": 2, "Count": 2}}]}},
            {"name": "drug after or no other condition before", "expression": {"Type": "ANY", "CriteriaList": [
                {"Criteria": {"DrugExposure": {"CodesetId": 2}}, "StartWindow": window(0, 365),
                 "Occurrence": {"Type": 2, "Count": 1}},
                {"Criteria": {"ConditionOccurrence": {"CodesetId": 1}}, "StartWindow": window(None, 0),
                 "Occurrence": {"Type": 0, "Count": 0}}]}},
        ],
        "ExpressionLimit": {"Type": "All"},
        "EndStrategy": {"DateOffset": {"DateField": "StartDate", "Offset": 90}},
        "CollapseSettings": {"CollapseType": "ERA", "EraPad": 30},
    },
    "custom-era-censoring-distinct": {
        "ConceptSets": CONCEPT_SETS,
        "PrimaryCriteria": {"CriteriaList": [{"DrugExposure": {"CodesetId": 2, "First": True}}],
                            "PrimaryCriteriaLimit": {"Type": "First"}},
        "InclusionRules": [{"name": "3 distinct lab days", "expression": {"Type": "AT_LEAST", "Count": 1,
            "CriteriaList": [{"Criteria": {"Measurement": {}}, "StartWindow": window(365, 30),
                              "Occurrence": {"Type": 2, "Count": 3, "IsDistinct": True,
                                             "CountColumn": "START_DATE"}}]}}],
        "EndStrategy": {"CustomEra": {"DrugCodesetId": 2, "GapDays": 30, "Offset": 7}},
        "CensoringCriteria": [{"Death": {}}, {"ConditionOccurrence": {"CodesetId": 1}}],
    },
    "visits-same-visit-demographics-qualified-last": {
        "ConceptSets": CONCEPT_SETS,
        "PrimaryCriteria": {"CriteriaList": [{"VisitOccurrence": {"VisitLength": {"Op": "gte", "Value": 0}}}],
                            "PrimaryCriteriaLimit": {"Type": "All"}},
        "AdditionalCriteria": {"Type": "ALL", "CriteriaList": [{
            "Criteria": {"Measurement": {"CodesetId": 3}}, "StartWindow": window(0, 0), "RestrictVisit": True,
            "Occurrence": {"Type": 2, "Count": 1}}],
            "DemographicCriteriaList": [{"Age": {"Op": "bt", "Value": 18, "Extent": 90}}]},
        "QualifiedLimit": {"Type": "Last"},
        "ExpressionLimit": {"Type": "All"},
        "CensorWindow": {"StartDate": "2000-01-01", "EndDate": "2030-12-31"},
    },
}  # fmt: skip


@pytest.fixture(scope="module")
def duckdb_reference() -> dict[str, list[tuple]]:
    with DuckDBEngine() as engine:
        load_omop_csv(engine, SYNTHEA)
        return {name: cohort_rows(engine, definition) for name, definition in DEFINITIONS.items()}


def cohort_rows(engine: Engine, definition: dict[str, Any]) -> list[tuple]:
    generate_cohort(engine, import_circe(definition))
    rows = engine.query("SELECT subject_id, cohort_start_date, cohort_end_date FROM cohort").to_pylist()
    return sorted((r["subject_id"], r["cohort_start_date"], r["cohort_end_date"]) for r in rows)


def test_reference_results_are_not_trivial(duckdb_reference: dict[str, list[tuple]]) -> None:
    for name, rows in duckdb_reference.items():
        assert rows, f"{name}: an empty cohort would prove nothing"
        assert all(start <= end for _, start, end in rows)


def test_first_definition_against_plain_sql() -> None:
    with DuckDBEngine() as engine:
        load_omop_csv(engine, SYNTHEA)
        analysis = analyze_cohort(engine, import_circe(DEFINITIONS["windows-groups-offset-pad"]), threshold=1)
        qualified_persons = engine.scalar(
            "SELECT count(DISTINCT c.person_id) FROM condition_occurrence c JOIN observation_period op"
            " ON op.person_id = c.person_id AND c.condition_start_date BETWEEN op.observation_period_start_date"
            " AND op.observation_period_end_date WHERE c.condition_concept_id = 40481087"
            " AND op.observation_period_start_date + 30 <= c.condition_start_date"
        )
        assert analysis.count([False, False]).persons == qualified_persons


def test_materialized_steps_give_the_same_rows(duckdb_reference: dict[str, list[tuple]]) -> None:
    with DuckDBEngine() as engine:
        load_omop_csv(engine, SYNTHEA)
        for name, definition in DEFINITIONS.items():
            generate_cohort(engine, import_circe(definition), materialize=True)
            rows = engine.query("SELECT subject_id, cohort_start_date, cohort_end_date FROM cohort").to_pylist()
            got = sorted((r["subject_id"], r["cohort_start_date"], r["cohort_end_date"]) for r in rows)
            assert got == duckdb_reference[name]


@pytest.mark.parametrize("name", list(DEFINITIONS))
def test_same_rows_on_every_engine(engine: Engine, name: str, duckdb_reference: dict[str, list[tuple]]) -> None:
    load_omop_csv(engine, SYNTHEA)
    assert cohort_rows(engine, DEFINITIONS[name]) == duckdb_reference[name]
