"""Mart variables from text: a biomarker result the notes affirm becomes ``<marker>_status_text`` (provenance
``text``); a negated, hypothetical or family mention does not set it. The real pipeline runs over a few notes
written into a copy of the demo warehouse, then the real mart build."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.marts.builder import MART_TABLE, build_mart
from massalia.health.marts.catalogue import Provenance, load_catalogue
from massalia.health.nlp.pipeline import ClinicalPipeline
from massalia.health.nlp.store import run_nlp

NOTES = {
    # person position: (text, what the mart must say)
    0: ("Biologie moléculaire : EGFR muté. RE négatifs.", {"egfr_status_text": "positive",
                                                          "er_status_text": "negative"}),
    1: ("Pas de recherche de mutation EGFR positive.", {"egfr_status_text": None}),  # negated: the test not done
    2: ("Antécédents familiaux : sa mère, mutation BRCA1 positive.", {"brca_status_text": None}),  # a relative
    3: ("Une mutation ALK positive est suspectée. Si HER2 positif, trastuzumab.",
        {"alk_status_text": None, "her2_status_text": None}),  # hypothetical
    4: ("EGFR non muté. HER2 positif (3+).", {"egfr_status_text": "negative", "her2_status_text": "positive"}),
}  # fmt: skip


@pytest.fixture(scope="module")
def mart(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory, pipeline: ClinicalPipeline) -> Iterator[
        dict[int, dict[str, Any]]]:  # fmt: skip
    path = tmp_path_factory.mktemp("mart-text") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        persons = [
            int(v) for v in engine.query("SELECT person_id FROM person ORDER BY 1 LIMIT 5").column(0).to_pylist()
        ]
        kept = ", ".join(map(str, persons))
        for table in engine.list_tables():  # the mart of these five persons only: a build of a second, not 20
            if "person_id" in {column.name for column in engine.describe(table)}:
                engine.execute(f"DELETE FROM {table} WHERE person_id NOT IN ({kept})")
        engine.execute("CREATE TABLE note_template AS SELECT * FROM note LIMIT 1")
        engine.execute("DELETE FROM note")
        for position, (text, _) in NOTES.items():
            quoted = text.replace("'", "''")
            engine.execute(
                f"INSERT INTO note SELECT * REPLACE ({position + 1} AS note_id, {persons[position]} AS person_id, "
                f"'{quoted}' AS note_text) FROM note_template"
            )  # fmt: skip
        engine.execute("DROP TABLE note_template")
        run_nlp(engine, pipeline=pipeline)
        build_mart(engine)
        rows = engine.query(f"SELECT * FROM {MART_TABLE} WHERE person_id IN ({', '.join(map(str, persons))})")
        by_person = {int(r["person_id"]): r for r in rows.to_pylist()}
        yield {position: by_person[persons[position]] for position in NOTES}


@pytest.mark.parametrize("position", sorted(NOTES))
def test_only_affirmed_mentions_set_the_text_variable(mart: dict[int, dict[str, Any]], position: int) -> None:
    _, expected = NOTES[position]
    assert {name: mart[position][name] for name in expected} == expected


def test_the_text_variables_are_catalogued_with_labels_and_provenance() -> None:
    catalogue = load_catalogue()
    text = [v for v in catalogue.variables if v.provenance is Provenance.TEXT]
    assert {v.name for v in text} >= {"her2_status_text", "egfr_status_text", "alk_status_text", "brca_status_text"}
    assert all(v.source == "text_biomarkers" and v.values == ("positive", "negative") for v in text)
    assert all("(text)" in v.label_en and "(texte)" in v.label_fr for v in text)
    assert next(v for v in catalogue.variables if v.name == "her2_status").provenance is Provenance.STRUCTURED
