"""The OMOP CDM v5.4 schema: derived from the official spec, and created for real on every engine."""

from __future__ import annotations

import importlib.util
import json
from importlib import resources
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pytest

from massalia.engine import Engine, EngineError
from massalia.health.omop.schema import cdm_table, cdm_tables, create_cdm_indexes, create_cdm_schema

ROOT = Path(__file__).resolve().parents[3]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_omop_spec", ROOT / "scripts" / "gen_omop_spec.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_spec_is_derived_from_the_reference(reference: Path) -> None:
    derived = _generator().build_spec(reference / "omop")
    shipped = json.loads(resources.files("massalia.health.omop").joinpath("cdm54_spec.json").read_text("utf-8"))
    assert shipped == derived, "cdm54_spec.json is stale: run python scripts/gen_omop_spec.py"


def test_thirty_nine_tables_with_the_oncology_extension() -> None:
    tables = cdm_tables()
    assert len(tables) == 39
    assert {"person", "episode", "episode_event", "concept", "measurement"} <= set(tables)
    assert cdm_table("PERSON").primary_key == ("person_id",)
    assert cdm_table("episode").field("episode_id").sql_type == "BIGINT"
    assert cdm_table("person").field("gender_concept_id").sql_type == "INTEGER"
    with pytest.raises(KeyError, match=r"not an OMOP CDM v5\.4 table"):
        cdm_table("patients")


def _base_type(house_type: str) -> str:
    """Engines report VARCHAR without its length (as DuckDB does)."""
    return house_type.split("(")[0] if house_type.startswith("VARCHAR") else house_type


def test_full_ddl_on_every_engine(engine: Engine) -> None:
    created = create_cdm_schema(engine)
    indexes = create_cdm_indexes(engine)
    assert sorted(created) == sorted(cdm_tables())
    assert engine.list_tables() == sorted(cdm_tables())
    if engine.capabilities.indexes:
        assert indexes > 30
    else:
        assert indexes == 0
    for name, spec in cdm_tables().items():
        described = engine.describe(name)
        assert [(c.name, c.type) for c in described] == [(c.name, _base_type(c.type)) for c in spec.columns()], name
    assert create_cdm_schema(engine) == [], "existing tables are kept unless replace=True"


def test_ddl_constraints(engine: Engine, request: pytest.FixtureRequest) -> None:
    create_cdm_schema(engine, ["person"])
    described = {c.name: c.nullable for c in engine.describe("person")}
    if engine.name == "spark":
        request.applymarker(
            pytest.mark.xfail(reason="Spark managed Parquet tables report every column nullable", strict=True)
        )
    assert described["person_id"] is False and described["year_of_birth"] is False
    assert described["month_of_birth"] is True


def test_person_primary_key(engine: Engine) -> None:
    create_cdm_schema(engine, ["person"])
    row = pa.table(
        {
            "person_id": pa.array([1], pa.int64()),
            "gender_concept_id": pa.array([8532], pa.int32()),
            "year_of_birth": pa.array([1960], pa.int32()),
            "race_concept_id": pa.array([0], pa.int32()),
            "ethnicity_concept_id": pa.array([0], pa.int32()),
        }
    )
    engine.insert("person", row)
    if engine.capabilities.primary_keys:
        with pytest.raises(EngineError):
            engine.insert("person", row)
    assert engine.row_count("person") == 1 or not engine.capabilities.primary_keys
