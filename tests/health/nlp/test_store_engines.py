"""The NOTE_NLP run on every engine with transactions: the same rows on DuckDB and PostgreSQL, Spark refused."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from massalia.engine import Engine
from massalia.engine.base import UnsupportedOperation
from massalia.health.nlp.pipeline import ClinicalPipeline
from massalia.health.nlp.store import run_nlp
from massalia.health.omop.schema import cdm_table

ECOG_CONCEPT = 36305384
NOTES = [
    (1, "Consultation du 3 mars 2021. Examen : ECOG 1. Pas de métastase hépatique."),
    (2, "RCP : cancer du sein, HER2 positif. Sa mère a été traitée pour un cancer de l'ovaire."),
    (3, "Bonjour, rien à signaler."),
]
ROWS = 'SELECT note_nlp_id, note_id, "offset", lexical_variant, note_nlp_concept_id, term_exists, term_modifiers '


def _table(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    schema = cdm_table(name).arrow_schema()
    return pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}, schema=schema)


def load(engine: Engine) -> None:
    day = dt.date(2021, 3, 3)
    notes = [
        {"note_id": i, "person_id": 1, "note_date": day, "note_type_concept_id": 32817, "note_class_concept_id": 0,
         "note_text": text, "encoding_concept_id": 32678, "language_concept_id": 4180190}
        for i, text in NOTES
    ]  # fmt: skip
    concept = [
        {"concept_id": ECOG_CONCEPT, "concept_name": "ECOG Performance Status score", "domain_id": "Measurement",
         "vocabulary_id": "LOINC", "concept_class_id": "Clinical Observation", "standard_concept": "S",
         "concept_code": "89247-1", "valid_start_date": dt.date(1970, 1, 1), "valid_end_date": dt.date(2099, 12, 31)}
    ]  # fmt: skip
    for name, rows in (("note", notes), ("note_nlp", []), ("concept", concept), ("concept_relationship", []),
                       ("concept_ancestor", [])):  # fmt: skip
        engine.create_table(name, _table(name, rows))


@pytest.fixture(scope="module")
def duck_rows(pipeline: ClinicalPipeline) -> list[dict[str, Any]]:
    from massalia.engine.duckdb import DuckDBEngine

    with DuckDBEngine() as engine:
        load(engine)
        run_nlp(engine, pipeline=pipeline)
        return engine.query(ROWS + "FROM note_nlp ORDER BY note_nlp_id").to_pylist()


def test_the_findings_of_the_three_notes(duck_rows: list[dict[str, Any]]) -> None:
    found = [(r["note_id"], r["lexical_variant"], r["note_nlp_concept_id"], r["term_exists"]) for r in duck_rows]
    assert found == [
        (1, "3 mars 2021", 0, "Y"),
        (1, "ECOG 1", ECOG_CONCEPT, "Y"),  # the only concept this tiny vocabulary has
        (1, "métastase hépatique", 0, "N"),
        (2, "cancer du sein", 0, "Y"),
        (2, "HER2 positif", 0, "Y"),
        (2, "cancer de l'ovaire", 0, "N"),
    ]


@pytest.mark.parametrize(
    "engine", [pytest.param("postgres", marks=pytest.mark.postgres, id="postgres")], indirect=True
)  # fmt: skip
def test_postgres_writes_the_same_rows_and_reruns_idempotently(
    engine: Engine, pipeline: ClinicalPipeline, duck_rows: list[dict[str, Any]]
) -> None:
    load(engine)
    run_nlp(engine, pipeline=pipeline)
    assert engine.query(ROWS + "FROM note_nlp ORDER BY note_nlp_id").to_pylist() == duck_rows
    again = run_nlp(engine, pipeline=pipeline)
    assert again.replaced == len(duck_rows)
    assert engine.query(ROWS + "FROM note_nlp ORDER BY note_nlp_id").to_pylist() == duck_rows


@pytest.mark.parametrize("engine", [pytest.param("spark", marks=pytest.mark.spark, id="spark")], indirect=True)
def test_spark_is_refused_before_anything_is_written(engine: Engine) -> None:
    with pytest.raises(UnsupportedOperation, match="no transactions"):
        run_nlp(engine)
