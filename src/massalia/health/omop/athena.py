"""Load a vocabulary download from OHDSI Athena (athena.ohdsi.org) into an engine.

An Athena download is a folder of tab-separated files without quotes (``CONCEPT.csv``,
``CONCEPT_RELATIONSHIP.csv``...), dates written ``YYYYMMDD``. The big ones (CONCEPT ≈ 6M rows,
CONCEPT_RELATIONSHIP ≈ 50M) are streamed in bounded memory, typed from the CDM specification and
checked batch by batch; all vocabulary tables are then swapped in together, so a bad file leaves
the previous vocabulary in place and the error names its file, line and field.

Other files of a download (``readme.txt``, ``cpt4.jar``, ``CONCEPT_CPT4.csv``...) are ignored.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pyarrow as pa

from massalia.engine import Engine
from massalia.health.omop.omop_csv import (
    CsvDialect,
    CsvFile,
    OmopCsvError,
    Progress,
    load_csv_tables,
    read_csv_table,
)
from massalia.health.omop.schema import cdm_table

ATHENA = CsvDialect(delimiter="\t", quoted=False, date_formats=("%Y%m%d", "%Y-%m-%d"), newlines_in_values=False)
"""Athena's layout: tabs, no quoting, dates ``YYYYMMDD`` (ISO dates tolerated)."""

REQUIRED_TABLES = (
    "concept",
    "vocabulary",
    "domain",
    "concept_class",
    "relationship",
    "concept_relationship",
    "concept_ancestor",
)
"""Files every Athena download has; loading stops if one is missing."""

OPTIONAL_TABLES = ("concept_synonym", "drug_strength")
"""Files a download may lack (they depend on the vocabularies chosen); created empty if absent."""

ATHENA_TABLES = REQUIRED_TABLES + OPTIONAL_TABLES


def athena_files(folder: str | Path) -> dict[str, Path]:
    """Find the vocabulary files in ``folder``: table name → path (``.csv`` or ``.csv.gz``, any case).

    Raises :class:`OmopCsvError` naming the folder if a required file is missing.
    """
    root = Path(folder)
    if not root.is_dir():
        raise OmopCsvError(str(root), None, None, "not a folder (unzip the Athena download first)")
    found: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        name = path.name.lower()
        for suffix in (".csv", ".csv.gz"):
            table = name[: -len(suffix)] if name.endswith(suffix) else None
            if table in ATHENA_TABLES and path.is_file():
                if table in found:
                    raise OmopCsvError(path.name, None, None, f"second file for {table} (first: {found[table].name})")
                found[table] = path
    missing = [table.upper() + ".csv" for table in REQUIRED_TABLES if table not in found]
    if missing:
        raise OmopCsvError(str(root), None, None, f"not an Athena vocabulary folder: missing {', '.join(missing)}")
    return found


def _csv_file(path: Path) -> CsvFile:
    if path.name.lower().endswith(".gz"):
        return CsvFile(path.name, lambda: gzip.open(path, "rb"))
    return CsvFile(path.name, lambda: path.open("rb"))


def _empty_file(table: str) -> CsvFile:
    header = "\t".join(f.name for f in cdm_table(table).fields) + "\n"
    payload = header.encode()
    return CsvFile(f"({table.upper()}.csv absent: empty)", lambda: io.BytesIO(payload))


def load_athena(engine: Engine, folder: str | Path, *, progress: Progress | None = None) -> dict[str, int]:
    """Load an Athena vocabulary download into ``engine``; return the rows per table.

    Parameters
    ----------
    engine
        Target engine. The nine vocabulary tables (CONCEPT, CONCEPT_RELATIONSHIP,
        CONCEPT_ANCESTOR, VOCABULARY, DOMAIN, CONCEPT_CLASS, RELATIONSHIP, CONCEPT_SYNONYM,
        DRUG_STRENGTH) are created or replaced together; SOURCE_TO_CONCEPT_MAP, which holds the
        site's own mappings, is left alone.
    folder
        The unzipped download (``.csv.gz`` files are read too).
    progress
        Optional callback ``progress(table, rows_so_far)`` after each batch (for a progress bar).

    Raises
    ------
    OmopCsvError
        Naming file, line and field of the first bad value (missing required value, non-numeric
        id, invalid date, unknown column...); the previous vocabulary is left intact.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> with connect("duckdb") as engine:  # doctest: +SKIP
    ...     load_athena(engine, "vocabulary_download_v5")["concept"]
    6123456
    """
    paths = athena_files(folder)
    files = {table: _csv_file(paths[table]) if table in paths else _empty_file(table) for table in ATHENA_TABLES}
    return load_csv_tables(engine, files, ATHENA, progress=progress)


def read_athena_tables(folder: str | Path) -> dict[str, pa.Table]:
    """Read a (small) Athena folder fully into Arrow tables typed like the CDM (no engine)."""
    paths = athena_files(folder)
    return {
        table: read_csv_table(_csv_file(paths[table]) if table in paths else _empty_file(table), table, ATHENA)
        for table in ATHENA_TABLES
    }
