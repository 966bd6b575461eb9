"""Derive the DataQualityDashboard check definitions shipped in the package.

OHDSI DataQualityDashboard v2.8.4 publishes its checks as data (``inst/csv``): a list of check
types with their Kahn category, severity and an ``evaluationFilter``, and per table / field /
concept rows that enable each check and carry its threshold. A copy lives in
``../shared/reference/dqd/``; the package cannot read that folder at run time, so this script
keeps the columns the checks need (no notes, no guidance prose) in
``src/massalia/health/quality/dqd_checks.json``. ``tests/health/quality/test_definitions.py``
checks the shipped file against the reference.

Usage: ``python scripts/gen_dqd_checks.py [REFERENCE_DIR]``
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "massalia" / "health" / "quality" / "dqd_checks.json"

# Prose columns are documentation for humans reading DQD's CSVs; the engine never needs them.
_DROPPED_SUFFIXES = ("Notes",)
_DROPPED = {
    "userGuidance",
    "etlConventions",
    "tableDescription",
    "validation",
    "sqlFile",
}


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def _compact(row: dict[str, str]) -> dict[str, str]:
    kept = {}
    for key, value in row.items():
        if key in _DROPPED or key.endswith(_DROPPED_SUFFIXES):
            continue
        value = " ".join((value or "").split())
        if value:
            kept[key] = value
    return kept


def build_checks(reference: Path) -> dict:
    descriptions = [
        {
            "level": row["checkLevel"].strip(),
            "name": row["checkName"].strip(),
            "description": " ".join(row["checkDescription"].split()),
            "kahn_context": row["kahnContext"].strip(),
            "kahn_category": row["kahnCategory"].strip(),
            "kahn_subcategory": row["kahnSubcategory"].strip() or None,
            "evaluation_filter": row["evaluationFilter"].strip(),
            "severity": row["severity"].strip(),
        }
        for row in _rows(reference / "OMOP_CDMv5.4_Check_Descriptions.csv")
    ]
    return {
        "source": "OHDSI/DataQualityDashboard v2.8.4 inst/csv; see scripts/gen_dqd_checks.py",
        "dqd_version": "2.8.4",
        "check_descriptions": descriptions,
        "table_level": [_compact(r) for r in _rows(reference / "OMOP_CDMv5.4_Table_Level.csv")],
        "field_level": [_compact(r) for r in _rows(reference / "OMOP_CDMv5.4_Field_Level.csv")],
        "concept_level": [_compact(r) for r in _rows(reference / "OMOP_CDMv5.4_Concept_Level.csv")],
    }


def main() -> None:
    reference = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference" / "dqd"
    checks = build_checks(reference)
    OUT.write_text(json.dumps(checks, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    print(
        f"wrote {OUT.relative_to(ROOT)}: {len(checks['check_descriptions'])} check types, "
        f"{len(checks['table_level'])} tables, {len(checks['field_level'])} fields, "
        f"{len(checks['concept_level'])} concepts"
    )


if __name__ == "__main__":
    main()
