"""Fixtures of the mart tests: the shared demo warehouse with its mart built once, and the generator's truth."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.dataset as pads
import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.marts.builder import build_mart


@pytest.fixture(scope="session")
def mart_warehouse(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared demo warehouse (600 generated patients) with ``mart_patient`` built in it."""
    path = tmp_path_factory.mktemp("mart") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        build_mart(engine)
    return path


@pytest.fixture(scope="session")
def mart_rows(mart_warehouse: Path) -> dict[int, dict[str, Any]]:
    """The mart's rows by person_id."""
    with DuckDBEngine(mart_warehouse, read_only=True) as engine:
        return {row["person_id"]: row for row in engine.query("SELECT * FROM mart_patient").to_pylist()}


@pytest.fixture(scope="session")
def truth_by_person(demo_warehouse: Path, mart_warehouse: Path) -> dict[int, dict[str, Any]]:
    """The generator's ground truth (``sources/truth/patients_part*.parquet``) keyed by warehouse person_id."""
    files = sorted((demo_warehouse.parent / "sources" / "truth").glob("patients_part*.parquet"))
    truth = pads.dataset(files, format="parquet").to_table().to_pylist()
    with DuckDBEngine(mart_warehouse, read_only=True) as engine:
        ids = engine.query("SELECT site, source_value, id FROM etl_id_map WHERE kind = 'person'").to_pylist()
    person_of = {(row["site"], row["source_value"]): row["id"] for row in ids}
    return {person_of[(row["site"], row["source_patient_id"])]: row for row in truth}
