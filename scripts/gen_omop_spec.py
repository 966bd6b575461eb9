"""Derive the compact OMOP CDM v5.4 field specification shipped in the package.

The official specification (OHDSI/CommonDataModel ``inst/csv``) lives in
``../shared/reference/omop/``. The package cannot read that folder at run time on a user's
machine, so this script extracts only the structural facts (tables, fields, types, required,
keys) into ``src/massalia/health/omop/cdm54_spec.json``. ``tests/health/omop/test_spec.py``
checks the shipped file against the reference, so the schema is never hand-typed.

Usage: ``python scripts/gen_omop_spec.py [REFERENCE_DIR]``
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "massalia" / "health" / "omop" / "cdm54_spec.json"


def _na(value: str) -> str | None:
    value = (value or "").strip()
    return None if value in ("", "NA") else value


def build_spec(reference: Path) -> dict:
    tables: dict[str, dict] = {}
    for table_file in ("OMOP_CDMv5.4_Table_Level.csv", "OMOP_CDM_Oncology_Ex_Table_Level.csv"):
        with open(reference / table_file, encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                name = row["cdmTableName"].strip().lower()
                entry = tables.setdefault(name, {"name": name, "fields": []})
                entry.setdefault("schema", row.get("schema") or "CDM")
                entry.setdefault("required", row["isRequired"] == "Yes")
                threshold = _na(row.get("measurePersonCompletenessThreshold", ""))
                entry.setdefault("measure_person_completeness", row.get("measurePersonCompleteness") == "Yes")
                entry.setdefault("person_completeness_threshold", int(threshold) if threshold else None)
    for field_file, extension in (
        ("OMOP_CDMv5.4_Field_Level.csv", False),
        ("OMOP_CDM_Oncology_Ex_Field_Level.csv", True),
    ):
        with open(reference / field_file, encoding="utf-8-sig", newline="") as handle:
            for row in csv.DictReader(handle):
                table = tables[row["cdmTableName"].strip().lower()]
                # The spec quotes the reserved word "offset"; the quotes are SQL, not part of the name.
                name = row["cdmFieldName"].strip().strip('"').lower()
                field = {
                    "name": name,
                    "type": row["cdmDatatype"].strip().lower(),
                    "required": row["isRequired"] == "Yes",
                    "primary_key": row["isPrimaryKey"] == "Yes",
                    "fk_table": (_na(row["fkTableName"]) or "").lower() or None,
                    "fk_field": (_na(row["fkFieldName"]) or "").lower() or None,
                    "fk_domain": _na(row["fkDomain"]),
                    "fk_class": _na(row["fkClass"]),
                }
                existing = next((f for f in table["fields"] if f["name"] == name), None)
                if existing is None:
                    field["extension"] = extension
                    table["fields"].append(field)
                elif extension:
                    # The oncology extension widens episode identifiers to bigint; keep the wider type.
                    existing["type"] = field["type"]
    return {
        "source": "OHDSI/CommonDataModel inst/csv (v5.4) + oncology extension; see scripts/gen_omop_spec.py",
        "version": "5.4",
        "tables": sorted(tables.values(), key=lambda t: t["name"]),
    }


def main() -> None:
    reference = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "reference" / "omop"
    spec = build_spec(reference)
    OUT.write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    n_fields = sum(len(t["fields"]) for t in spec["tables"])
    print(f"wrote {OUT.relative_to(ROOT)}: {len(spec['tables'])} tables, {n_fields} fields")


if __name__ == "__main__":
    main()
