"""Concept sets expand like Circe's: descendants, mapped source concepts, exclusions (with their own expansion)."""

from __future__ import annotations

from typing import Any

from cohort_omop import concept_rows

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.cohorts import compile_cohort, import_circe


def item(concept_id: int, **flags: bool) -> dict[str, Any]:
    return {"concept": {"CONCEPT_ID": concept_id}, **flags}


def expand(engine: DuckDBEngine, *items: dict[str, Any]) -> set[int]:
    definition = import_circe({"ConceptSets": [{"id": 0, "name": "x", "expression": {"items": list(items)}}],
                               "PrimaryCriteria": {"CriteriaList": [{"Death": {"CodesetId": 0}}]}})  # fmt: skip
    rows = engine.query(compile_cohort(definition).single_statement(until="codesets")).to_pylist()
    return {r["concept_id"] for r in rows}


def test_descendants_mapped_and_exclusions(duckdb_engine: DuckDBEngine, load_omop: Any) -> None:
    rows = concept_rows({1: [2, 3], 3: [4]})
    rows["concept_ancestor"].append({"ancestor_concept_id": 1, "descendant_concept_id": 4,
                                     "min_levels_of_separation": 2, "max_levels_of_separation": 2})  # fmt: skip
    rows["concept"].append({**rows["concept"][0], "concept_id": 9, "invalid_reason": None})  # a source code
    rows["concept"].append({**rows["concept"][0], "concept_id": 5, "invalid_reason": "D"})  # invalid descendant
    rows["concept_ancestor"].append({"ancestor_concept_id": 1, "descendant_concept_id": 5,
                                     "min_levels_of_separation": 1, "max_levels_of_separation": 1})  # fmt: skip
    valid = {
        "valid_start_date": rows["concept"][0]["valid_start_date"],
        "valid_end_date": rows["concept"][0]["valid_end_date"],
    }
    rows["concept_relationship"] = [{"concept_id_1": 9, "concept_id_2": 2, "relationship_id": "Maps to", **valid}]
    load_omop(duckdb_engine, rows)
    assert expand(duckdb_engine, item(1)) == {1}
    assert expand(duckdb_engine, item(1, includeDescendants=True)) == {1, 2, 3, 4}  # 5 is invalid
    assert expand(duckdb_engine, item(1, includeDescendants=True), item(3, isExcluded=True)) == {1, 2, 4}
    assert expand(duckdb_engine, item(1, includeDescendants=True),
                  item(3, isExcluded=True, includeDescendants=True)) == {1, 2}  # fmt: skip
    assert expand(duckdb_engine, item(2, includeMapped=True)) == {2, 9}
    assert expand(duckdb_engine, item(1, includeMapped=True, includeDescendants=True)) == {1, 2, 3, 4, 9}
    assert expand(duckdb_engine, item(1, isExcluded=True)) == set()
    assert expand(duckdb_engine) == set()
