"""Hypothesis fuzzing of every API input that reaches SQL: cohort JSON, mart filters, pagination, path names.

A canary table sits in the warehouse; after every example it must still be there with its row, every
answer must be a 2xx or a 4xx in the one error shape (never a 500), and the strings of the examples
include SQL-injection payloads in each place a string reaches the compiler.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_world import ApiWorld, build_world, circe_cohort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from massalia.engine.duckdb import DuckDBEngine

API = "/api/v1"
CANARY = "api_canary"
INJECTIONS = [
    f"'; DROP TABLE {CANARY}; --",
    f"x' OR 1=1; DELETE FROM {CANARY}; --",
    f'"; DROP TABLE {CANARY}; --',
    f"1); DROP TABLE {CANARY}; --",
    "' UNION SELECT * FROM person --",
    "\\'; SELECT 1; --",
    "%' --",
    "\x00",
    "ü' || chr(39) || '",
    f"$$; DROP TABLE {CANARY}; $$",
]
texts = st.one_of(st.sampled_from(INJECTIONS), st.text(max_size=40))
numbers = st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True))
scalars = st.one_of(texts, numbers, st.booleans(), st.none())
FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def sql_world(tmp_path_factory: pytest.TempPathFactory, api_warehouse: Path) -> Iterator[ApiWorld]:
    world = build_world(tmp_path_factory.mktemp("sqlfuzz-home"), api_warehouse)
    with DuckDBEngine(world.home.warehouse) as engine:
        engine.execute(f"CREATE TABLE {CANARY} AS SELECT 42 AS alive")
    try:
        yield world
    finally:
        world.close()


def canary_alive(world: ApiWorld) -> bool:
    with DuckDBEngine(world.home.warehouse) as engine:
        return engine.query(f"SELECT alive FROM {CANARY}").to_pylist() == [{"alive": 42}]


def check(world: ApiWorld, response: Any) -> None:
    assert response.status_code < 500, response.text[:1000]
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) == {"code", "message", "details", "request_id"}
    assert canary_alive(world)


def mutate(definition: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    """``definition`` with the value at ``path`` replaced (missing keys are created)."""
    out = copy.deepcopy(definition)
    node: Any = out
    for key in path[:-1]:
        node = node[key] if isinstance(node, list) else node.setdefault(key, {})
    node[path[-1]] = value
    return out


# Places of a Circe definition whose values end up in the generated SQL.
CIRCE_PATHS = [
    ["ConceptSets", 0, "expression", "items", 0, "concept", "CONCEPT_ID"],
    ["ConceptSets", 0, "name"],
    ["PrimaryCriteria", "CriteriaList", 0, "ConditionOccurrence", "CodesetId"],
    ["PrimaryCriteria", "CriteriaList", 0, "ConditionOccurrence", "StopReason"],
    ["PrimaryCriteria", "CriteriaList", 0, "ConditionOccurrence", "OccurrenceStartDate"],
    ["PrimaryCriteria", "ObservationWindow", "PriorDays"],
    ["PrimaryCriteria", "PrimaryCriteriaLimit", "Type"],
    ["InclusionRules", 0, "name"],
    ["InclusionRules", 0, "expression", "Type"],
    ["InclusionRules", 0, "expression", "DemographicCriteriaList", 0, "Gender", 0, "CONCEPT_ID"],
    ["CollapseSettings", "EraPad"],
]
text_ops = st.sampled_from(["contains", "startsWith", "!endsWith", "x"])
text_filters = st.fixed_dictionaries({"Text": texts, "Op": text_ops})
dates = st.fixed_dictionaries({"Value": texts, "Op": st.sampled_from(["gt", "bt", "lt"]), "Extent": texts})


@FUZZ
@given(
    path=st.sampled_from(CIRCE_PATHS),
    value=st.one_of(scalars, text_filters, dates, st.lists(scalars, max_size=3)),
    route=st.sampled_from(["count", "attrition", "sql", "validate"]),
)
def test_cohort_json_never_breaks_the_sql(sql_world: ApiWorld, path: list[Any], value: Any, route: str) -> None:
    definition = mutate(circe_cohort(), path, value)
    response = sql_world.client("researcher").post(f"{API}/cohorts/{route}", json={"definition": definition})
    check(sql_world, response)


@FUZZ
@given(
    concept=st.integers(-(2**40), 2**40),
    stop_reason=text_filters,
    value_as_string=text_filters,
)
def test_text_filters_are_bound_as_values(
    sql_world: ApiWorld, concept: int, stop_reason: dict[str, Any], value_as_string: dict[str, Any]
) -> None:
    """Massalia JSON with text filters of drug and observation criteria, compiled and run on the warehouse."""
    definition = circe_cohort()
    definition["PrimaryCriteria"]["CriteriaList"].append({"DrugExposure": {"StopReason": stop_reason}})
    definition["PrimaryCriteria"]["CriteriaList"].append({"Observation": {"ValueAsString": value_as_string}})
    definition["ConceptSets"][0]["expression"]["items"][0]["concept"]["CONCEPT_ID"] = concept
    response = sql_world.client("researcher").post(f"{API}/cohorts/count", json={"definition": definition})
    check(sql_world, response)


clauses = st.fixed_dictionaries({
    "variable": st.one_of(st.sampled_from(["sex", "age_at_diagnosis", "primary_site", "diagnosis_date"]), texts),
    "op": st.sampled_from(["=", "!=", "<", ">=", "in", "not_in", "between", "is_null", "is_not_null", "like"]),
    "value": st.one_of(scalars, st.lists(scalars, max_size=3)),
})  # fmt: skip


@FUZZ
@given(
    all_=st.lists(clauses, max_size=3),
    any_of=st.lists(st.lists(clauses, max_size=2), max_size=2),
    cohort=st.one_of(st.none(), st.integers(-5, 2**40)),
    by=st.one_of(st.sampled_from(["sex", "primary_site", "stage_group"]), texts),
)
def test_mart_filters_never_break_the_sql(
    sql_world: ApiWorld, all_: list[Any], any_of: list[Any], cohort: int | None, by: str
) -> None:
    filters = {"all": all_, "any_of": any_of, "cohort_definition_id": cohort}
    client = sql_world.client("researcher")
    check(sql_world, client.post(f"{API}/mart/count", json={"filters": filters}))
    check(sql_world, client.post(f"{API}/mart/breakdown", json={"filters": filters, "by": by}))


@settings(FUZZ, max_examples=10)  # six requests an example
@given(limit=st.one_of(st.integers(), texts), cursor=texts, name=texts, index=st.one_of(st.integers(), texts))
def test_pagination_and_path_inputs(sql_world: ApiWorld, limit: Any, cursor: str, name: str, index: Any) -> None:
    admin = sql_world.client("admin")
    for url in (f"{API}/projects", f"{API}/requests", f"{API}/audit/entries", f"{API}/quality/report/results"):
        check(sql_world, admin.get(url, params={"limit": limit, "cursor": cursor}))
    project = sql_world.own_project
    quoted = quote(name, safe="") or "x"
    check(sql_world, admin.get(f"{API}/projects/{project}/extracts/{quoted}/files/{quoted}"))
    check(sql_world, admin.get(f"{API}/audit/entries/{quote(str(index), safe='') or '0'}/proof"))


def test_path_traversal_in_extract_names_is_refused(sql_world: ApiWorld) -> None:
    admin = sql_world.client("admin")
    for extract_id, name in (("..", "metadata.sqlite"), ("..%2F..", "warehouse.duckdb"), ("x", "..%2F..%2Fkeys")):
        response = admin.get(f"{API}/projects/{sql_world.own_project}/extracts/{extract_id}/files/{name}")
        assert response.status_code in (403, 404), response.text
        assert "application/json" in response.headers["content-type"]
