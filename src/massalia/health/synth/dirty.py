"""Controlled defects in site files (wrong dates, unknown codes, missing required fields, bad numbers).

Every defect is recorded (site, file, row, field, kind, original and written values) so the ETL's reject
path can be checked exactly.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from massalia.health.synth.sites.layout import FileLayout, SiteLayout

DEFECT_KINDS: tuple[str, ...] = ("bad_date", "unknown_code", "missing_required", "bad_number")
CODE_COLUMNS = frozenset(
    {
        "code_cim10",
        "code_atc",
        "code_loinc",
        "code_snomed",
        "code_morphologie",
        "local_code",
        "histology_code",
        "marker_code",
        "drug_code",
        "procedure_code",
        "test_code",
        "cim10",
        "atc",
        "loinc",
        "snomed",
        "morphologie",
        "topographie",
    }
)


def _candidates(layout: FileLayout, site: SiteLayout, table: pa.Table) -> dict[str, list[str]]:
    """Columns that can receive each defect kind in this file."""
    out: dict[str, list[str]] = {k: [] for k in DEFECT_KINDS}
    for col in layout.columns:
        typ = table.schema.field(col.name).type
        text = pa.types.is_string(typ)
        if col.type == "date" and (text or pa.types.is_integer(typ)):
            out["bad_date"].append(col.name)
        if col.type == "datetime" and text:
            out["bad_date"].append(col.name)
        if col.name in CODE_COLUMNS and text:
            out["unknown_code"].append(col.name)
        if col.required:
            out["missing_required"].append(col.name)
        if (col.type == "decimal" or col.name == "valeur") and text:
            out["bad_number"].append(col.name)
    return {k: v for k, v in out.items() if v}


def _bad_value(kind: str, original: object, typ: pa.DataType, site: SiteLayout, rng: np.random.Generator) -> object:
    if kind == "missing_required":
        return None
    if kind == "unknown_code":
        return f"ZZ{int(rng.integers(100, 1000))}"
    if kind == "bad_number":
        return "1,2.5" if site.decimal == "," else "12..5"
    year = str(original)[:4] if site.date_format in ("%Y-%m-%d", "yyyymmdd-int") else str(original)[6:10]
    year = year if year.isdigit() else "2023"
    if pa.types.is_integer(typ):
        return int(f"{year}0231")
    if site.date_format == "%d/%m/%Y":
        return f"31/02/{year}" + (" 10:00" if len(str(original)) > 10 else "")
    return f"{year}-02-30" + ("T10:00:00" if len(str(original)) > 10 else "")


def inject_defects(
    table: pa.Table, layout: FileLayout, site: SiteLayout, rate: float, rng: np.random.Generator, file_name: str
) -> tuple[pa.Table, list[dict[str, object]]]:
    """Replace values in about ``rate`` of the rows (at most one defect per row) and record each defect.

    Parameters
    ----------
    table
        The file's rows, columns as in ``layout``.
    layout, site
        The file and site layouts (which columns can receive which defect).
    rate
        Share of rows to damage (0 ≤ rate ≤ 1).
    rng
        Generator dedicated to defects (defects never change the clean data drawn before).
    file_name
        Path of the file relative to the output folder, recorded in the truth.

    Returns
    -------
    tuple
        The damaged table and the defect records (``row`` is the 1-based record number, header excluded).
    """
    cands = _candidates(layout, site, table)
    if rate <= 0 or table.num_rows == 0 or not cands:
        return table, []
    rows = np.flatnonzero(rng.random(table.num_rows) < rate)
    kinds = list(cands)
    kind_of = rng.integers(0, len(kinds), size=rows.size)
    columns = {name: table.column(name).to_pylist() for name in {c for v in cands.values() for c in v}}
    records: list[dict[str, object]] = []
    for r, k in zip(rows.tolist(), kind_of.tolist(), strict=True):
        kind = kinds[k]
        name = cands[kind][int(rng.integers(0, len(cands[kind])))]
        original = columns[name][r]
        bad = _bad_value(kind, original, table.schema.field(name).type, site, rng)
        columns[name][r] = bad
        records.append(
            {
                "site": site.name,
                "file": file_name,
                "row": r + 1,
                "field": name,
                "kind": kind,
                "original": None if original is None else str(original),
                "written": None if bad is None else str(bad),
            }
        )
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))
    return table, records
