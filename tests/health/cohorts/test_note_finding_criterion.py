"""The ``NoteFinding`` criterion: NOTE_NLP findings with their qualifiers as cohort events, on every engine.

Four persons, each with one note whose findings decide one case: person 1 "HER2 positif" (affirmed), person 2
"pas de métastase hépatique" (negated), person 3 "sa mère ... cancer du sein" (family), person 4 "suspicion de
cancer du sein" (hypothesis), and a row of another NLP system (person 1) that the criterion must ignore.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from cohort_omop import day, omop_tables
from pydantic import ValidationError

from massalia.engine import Engine
from massalia.health.cohorts import CirceExportError, CohortDefinition, to_circe
from massalia.health.cohorts.service import generate_cohort
from massalia.health.omop.schema import cdm_table

HER2_CONCEPT, BREAST_CONCEPT, LIVER_MET_CONCEPT = 36203114, 4112853, 4175434
SYSTEM = "massalia-nlp 1.0.0 (edsnlp 0.23.0)"


def _flags(negated: bool = False, hypothesis: bool = False, family: bool = False, history: bool = False) -> str:
    return (
        f"negated={str(negated).lower()};hypothesis={str(hypothesis).lower()};family={str(family).lower()};"
        f"history={str(history).lower()}"
    )


def _nlp(nid: int, note: int, concept: int, label: str, value: str, system: str = SYSTEM, **q: bool) -> dict[str, Any]:
    return {
        "note_nlp_id": nid, "note_id": note, "offset": "0", "lexical_variant": value, "note_nlp_concept_id": concept,
        "nlp_system": system, "nlp_date": day(400), "term_exists": "N" if any(q.values()) else "Y",
        "term_modifiers": f"label={label};value={value};{_flags(**q)}",
    }  # fmt: skip


PERSONS = [
    {"person_id": p, "gender_concept_id": 8532, "year_of_birth": 1960, "race_concept_id": 0, "ethnicity_concept_id": 0}
    for p in (1, 2, 3, 4)
]
NOTES = [
    {"note_id": 10 + p, "person_id": p, "note_date": day(10 * p), "note_type_concept_id": 32817,
     "note_class_concept_id": 0, "note_text": "", "encoding_concept_id": 32678, "language_concept_id": 4180190}
    for p in (1, 2, 3, 4)
]  # fmt: skip
NOTE_NLP = [
    _nlp(1, 11, HER2_CONCEPT, "biomarker", "her2:positive"),
    _nlp(2, 12, LIVER_MET_CONCEPT, "metastasis", "C78.7", negated=True),
    _nlp(3, 13, BREAST_CONCEPT, "cancer", "C50", family=True),
    _nlp(4, 14, BREAST_CONCEPT, "cancer", "C50", hypothesis=True),
    # Another system's row: not the pipeline's, never an event of the criterion.
    _nlp(5, 11, BREAST_CONCEPT, "cancer", "C50", system="other-nlp 2.0"),
]


def load(engine: Engine) -> None:
    tables = omop_tables(
        {
            "person": PERSONS,
            "observation_period": [
                {"observation_period_id": p, "person_id": p, "observation_period_start_date": day(0),
                 "observation_period_end_date": day(800), "period_type_concept_id": 32817}
                for p in (1, 2, 3, 4)
            ],
            "concept": [
                {"concept_id": c, "concept_name": f"c{c}", "domain_id": "Condition", "vocabulary_id": "Test",
                 "concept_class_id": "Test", "concept_code": str(c), "valid_start_date": day(0),
                 "valid_end_date": dt.date(2099, 12, 31)}
                for c in (HER2_CONCEPT, BREAST_CONCEPT, LIVER_MET_CONCEPT)
            ],
            "concept_ancestor": [
                {"ancestor_concept_id": c, "descendant_concept_id": c, "min_levels_of_separation": 0,
                 "max_levels_of_separation": 0}
                for c in (HER2_CONCEPT, BREAST_CONCEPT, LIVER_MET_CONCEPT)
            ],
        }
    )  # fmt: skip
    for name, table in tables.items():
        engine.create_table(name, table)
    for name, rows in (("note", NOTES), ("note_nlp", NOTE_NLP)):
        schema = cdm_table(name).arrow_schema()
        engine.create_table(
            name,
            pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}, schema=schema),
        )


def entry(criterion: dict[str, Any], *concept_ids: int) -> dict[str, Any]:
    sets = (
        [{"id": 1, "name": "set", "expression": {"items": [{"concept": {"CONCEPT_ID": c}} for c in concept_ids]}}]
        if concept_ids
        else []
    )
    return {"concept_sets": sets, "primary_criteria": {"criteria_list": [criterion]}}


CASES: dict[str, tuple[dict[str, Any], set[int]]] = {
    "HER2 positive in a note": (entry({"kind": "NoteFinding", "label": "biomarker", "value": ["her2:positive"]}), {1}),
    # Defaults exclude negated, hypothetical and family findings: nobody "has" a breast cancer by text here.
    "breast cancer affirmed (defaults)": (entry({"kind": "NoteFinding", "codeset_id": 1}, BREAST_CONCEPT), set()),
    "family history of breast cancer": (
        entry({"kind": "NoteFinding", "label": "cancer", "value": ["C50"], "family": True}),
        {3},
    ),
    "suspected breast cancer": (entry({"kind": "NoteFinding", "label": "cancer", "hypothesis": True}), {4}),
    "any mention, qualifiers ignored": (
        entry(
            {"kind": "NoteFinding", "codeset_id": 1, "negated": None, "hypothesis": None, "family": None},
            BREAST_CONCEPT,
        ),
        {3, 4},
    ),
    "negated liver metastasis": (entry({"kind": "NoteFinding", "label": "metastasis", "negated": True}), {2}),
    "metastasis affirmed": (entry({"kind": "NoteFinding", "label": "metastasis"}), set()),
}


def persons(engine: Engine, definition: dict[str, Any]) -> list[tuple[Any, ...]]:
    generate_cohort(engine, CohortDefinition.model_validate(definition), cohort_definition_id=5)
    rows = engine.query(
        "SELECT subject_id, cohort_start_date FROM cohort WHERE cohort_definition_id = 5 ORDER BY subject_id"
    ).to_pylist()
    return [(r["subject_id"], r["cohort_start_date"]) for r in rows]


@pytest.fixture(scope="module")
def duck_rows() -> dict[str, list[tuple[Any, ...]]]:
    from massalia.engine.duckdb import DuckDBEngine

    with DuckDBEngine() as engine:
        load(engine)
        return {name: persons(engine, definition) for name, (definition, _) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_note_findings_select_the_expected_persons(name: str, duck_rows: dict[str, list[tuple[Any, ...]]]) -> None:
    assert {row[0] for row in duck_rows[name]} == CASES[name][1]


def test_the_event_date_is_the_note_date(duck_rows: dict[str, list[tuple[Any, ...]]]) -> None:
    assert duck_rows["HER2 positive in a note"] == [(1, day(10))]


@pytest.mark.parametrize(
    "engine", [pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")], indirect=True
)  # fmt: skip
def test_identical_rows_on_postgres(engine: Engine, duck_rows: dict[str, list[tuple[Any, ...]]]) -> None:
    load(engine)
    for name, (definition, _) in CASES.items():
        assert persons(engine, definition) == duck_rows[name], name


@pytest.mark.parametrize("value", ["her2'; DROP TABLE person; --", "%", "a_b%", "x" * 80, "C50;family=true"])
def test_values_that_could_change_the_sql_are_refused(value: str) -> None:
    """Attack: a value reaching the LIKE pattern could widen the match (``%``) or break out of the string."""
    with pytest.raises(ValidationError, match="is not a finding value"):
        CohortDefinition.model_validate(entry({"kind": "NoteFinding", "value": [value]}))


def test_circe_export_refuses_the_criterion_by_name() -> None:
    definition = CohortDefinition.model_validate(CASES["HER2 positive in a note"][0])
    with pytest.raises(CirceExportError, match="NoteFinding"):
        to_circe(definition)
