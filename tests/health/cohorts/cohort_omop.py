"""Small OMOP datasets built in memory for the cohort tests (Arrow tables with the CDM v5.4 schemas)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from massalia.health.omop.schema import cdm_table

DAY0 = dt.date(2020, 1, 1)

TABLES = (
    "person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
    "measurement", "death", "concept", "concept_ancestor", "concept_relationship", "care_site",
)  # fmt: skip


def day(offset: int) -> dt.date:
    """The date ``offset`` days after 2020-01-01."""
    return DAY0 + dt.timedelta(days=offset)


def omop_tables(rows: Mapping[str, Iterable[Mapping[str, Any]]]) -> dict[str, pa.Table]:
    """Arrow tables with the CDM schemas; missing columns are NULL, missing tables empty."""
    tables = {}
    for name in TABLES:
        schema = cdm_table(name).arrow_schema()
        records = [dict(r) for r in rows.get(name, [])]
        columns = {field.name: [r.get(field.name) for r in records] for field in schema}
        tables[name] = pa.table({f.name: pa.array(columns[f.name], type=f.type) for f in schema}, schema=schema)
    return tables


def concept_rows(ancestry: Mapping[int, Iterable[int]]) -> dict[str, list[dict[str, Any]]]:
    """Concepts and their ancestry (``{ancestor: descendants}``; each concept is its own ancestor)."""
    ids = set(ancestry) | {d for ds in ancestry.values() for d in ds}
    concepts = [
        {"concept_id": i, "concept_name": f"c{i}", "domain_id": "Condition", "vocabulary_id": "Test",
         "concept_class_id": "Test", "concept_code": str(i), "valid_start_date": DAY0,
         "valid_end_date": dt.date(2099, 12, 31)}
        for i in sorted(ids)
    ]  # fmt: skip
    ancestors = [
        {"ancestor_concept_id": i, "descendant_concept_id": i, "min_levels_of_separation": 0,
         "max_levels_of_separation": 0}
        for i in sorted(ids)
    ] + [
        {"ancestor_concept_id": a, "descendant_concept_id": d, "min_levels_of_separation": 1,
         "max_levels_of_separation": 1}
        for a, ds in ancestry.items() for d in ds if d != a
    ]  # fmt: skip
    return {"concept": concepts, "concept_ancestor": ancestors}
