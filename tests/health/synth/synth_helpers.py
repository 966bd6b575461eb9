from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from massalia.health.synth.sites import SITES


def read_site_file(path: Path, site: str) -> pa.Table:
    """Read one generated file back, all values as text (CSV) or as written (Parquet/NDJSON)."""
    layout = SITES[site]
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".ndjson":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return pa.Table.from_pylist(rows)
    return pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(encoding="utf8"),
        parse_options=pacsv.ParseOptions(delimiter=layout.separator, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for f in layout.files for c in f.column_names}, strings_can_be_null=True
        ),
    )
