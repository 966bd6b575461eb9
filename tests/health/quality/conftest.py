"""Fixtures for the quality tests: the Synthea27Nj OMOP sample and hand-made OMOP tables."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from massalia.engine import Engine, connect
from massalia.health.omop.schema import cdm_tables


def load_omop_zip(engine: Engine, archive: Path, folder: Path) -> None:
    """Load an OMOP CSV export (Eunomia layout) into ``engine`` with the CDM's types."""
    with zipfile.ZipFile(archive) as handle:
        handle.extractall(folder, members=[n for n in handle.namelist() if not n.startswith("__MACOSX")])
    for name, spec in cdm_tables().items():
        path = folder / f"{name.upper()}.csv"
        if not path.exists():
            continue
        schema = spec.arrow_schema()
        # Some DATE columns hold '2005-05-07 00:00:00': read them as timestamps, then cast.
        types = {f.name: pa.timestamp("s") if f.type == pa.date32() else f.type for f in schema}
        options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=True)
        data = pacsv.read_csv(path, convert_options=options)
        columns = [
            data.column(f.name).cast(f.type) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
            for f in schema
        ]
        engine.create_table(name, pa.Table.from_arrays(columns, schema=schema), schema=schema)


@pytest.fixture(scope="module")
def synthea(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Synthea27Nj (28 persons) in DuckDB."""
    engine = connect("duckdb")
    load_omop_zip(engine, reference / "eunomia" / "Synthea27Nj_5.4.zip", tmp_path_factory.mktemp("synthea"))
    yield engine
    engine.close()
