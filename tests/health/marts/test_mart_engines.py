"""The mart is the same on every engine, and a build is atomic.

PostgreSQL builds the mart of a 40-person subset of the shared demo warehouse and must agree with
DuckDB row for row; Spark (slow) builds one 6-person subset. A failing build leaves the previous mart and
its build record untouched, with no staging table behind.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.health.marts.builder import BUILD_TABLE, MART_TABLE, MartError, build_mart
from massalia.health.marts.catalogue import load_catalogue, parse_catalogue

PERSON_TABLES = (
    "person", "observation_period", "episode", "condition_occurrence", "measurement", "observation",
    "drug_exposure", "procedure_occurrence", "visit_occurrence", "death", "note",
)  # fmt: skip
WHOLE_TABLES = ("care_site", "location", "cdm_source", "etl_loaded_file")


def omop_subset(warehouse: Path, persons: int) -> dict[str, pa.Table]:
    """The OMOP tables the mart reads, for persons 1..``persons``.

    The vocabulary is cut to the concepts those persons' records use and their ancestors: the mart
    reads CONCEPT and CONCEPT_ANCESTOR only from a record's concept, so its result is the same.
    """
    tables: dict[str, pa.Table] = {}
    used = (
        f"SELECT condition_concept_id AS id FROM condition_occurrence WHERE person_id <= {int(persons)} "
        f"UNION SELECT procedure_concept_id FROM procedure_occurrence WHERE person_id <= {int(persons)} "
        f"UNION SELECT drug_concept_id FROM drug_exposure WHERE person_id <= {int(persons)} "
        f"UNION SELECT measurement_concept_id FROM measurement WHERE person_id <= {int(persons)} "
        f"UNION SELECT observation_concept_id FROM observation WHERE person_id <= {int(persons)} "
        f"UNION SELECT episode_object_concept_id FROM episode WHERE person_id <= {int(persons)}"
    )
    with DuckDBEngine(warehouse, read_only=True) as source:
        for name in PERSON_TABLES:
            tables[name] = source.query(f"SELECT * FROM {name} WHERE person_id <= {persons}")
        for name in WHOLE_TABLES:
            tables[name] = source.query(f"SELECT * FROM {name}")
        tables["episode_event"] = source.query(
            f"SELECT ee.* FROM episode_event AS ee JOIN episode AS e USING (episode_id) WHERE e.person_id <= {persons}"
        )
        tables["note_nlp"] = source.query(  # the text variables' findings (empty until an NLP run)
            f"SELECT x.* FROM note_nlp AS x JOIN note AS n USING (note_id) WHERE n.person_id <= {persons}"
        )
        tables["concept_ancestor"] = source.query(
            f"SELECT * FROM concept_ancestor WHERE descendant_concept_id IN ({used})"
        )
        tables["concept"] = source.query(
            f"SELECT * FROM concept WHERE concept_id IN ({used}) OR concept_id IN "
            f"(SELECT ancestor_concept_id FROM concept_ancestor WHERE descendant_concept_id IN ({used}))"
        )
    return tables


def load(engine: Engine, tables: dict[str, pa.Table]) -> None:
    for name, table in tables.items():
        engine.create_table(name, table)


def mart_of(engine: Engine) -> list[dict[str, Any]]:
    return engine.query(f"SELECT * FROM {MART_TABLE} ORDER BY person_id").to_pylist()


def same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9)
    return left == right


# Spark needs about a minute for the 17 loads and 16 statements on this 2-core machine: slow there only.
@pytest.mark.parametrize(
    "engine",
    [
        pytest.param("duckdb", marks=pytest.mark.duckdb, id="duckdb"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow], id="spark"),
    ],
    indirect=True,
)
def test_the_mart_is_the_same_on_every_engine(engine: Engine, demo_warehouse: Path) -> None:
    persons = 6 if engine.name == "spark" else 40
    tables = omop_subset(demo_warehouse, persons)
    with DuckDBEngine() as reference:
        load(reference, tables)
        build_mart(reference)
        expected = mart_of(reference)
    load(engine, tables)
    result = build_mart(engine)
    got = mart_of(engine)
    assert result.rows == persons == len(got)
    assert [row["person_id"] for row in got] == list(range(1, persons + 1))
    for want, have in zip(expected, got, strict=True):
        different = {key: (want[key], have[key]) for key in want if not same(want[key], have[key])}
        assert not different, f"{engine.name}, person {want['person_id']}: {different}"
    assert engine.row_count(BUILD_TABLE) == 1
    assert not [name for name in engine.list_tables() if name.startswith("stg_")]


def test_a_failed_build_leaves_the_previous_mart(duckdb_engine: DuckDBEngine, demo_warehouse: Path) -> None:
    load(duckdb_engine, omop_subset(demo_warehouse, 25))
    build_mart(duckdb_engine)
    before = mart_of(duckdb_engine)
    data = load_catalogue().model_dump(mode="json")
    broken_source = next(source for source in data["sources"] if source["name"] == "labs")
    broken_source["sql"] = broken_source["sql"].replace("m.value_as_number", "m.no_such_column", 1)
    broken = parse_catalogue(data)
    with pytest.raises(MartError, match="mart source 'labs' failed on duckdb"):
        build_mart(duckdb_engine, catalogue=broken)
    assert mart_of(duckdb_engine) == before
    assert duckdb_engine.row_count(BUILD_TABLE) == 1
    assert not [name for name in duckdb_engine.list_tables() if name.startswith("stg_")]
    build_mart(duckdb_engine)  # a rebuild replaces the mart and appends to the record
    assert duckdb_engine.row_count(BUILD_TABLE) == 2
    assert mart_of(duckdb_engine) == before


def test_a_warehouse_without_omop_tables_is_refused(duckdb_engine: DuckDBEngine) -> None:
    with pytest.raises(MartError, match="not an OMOP warehouse: table"):
        build_mart(duckdb_engine)
