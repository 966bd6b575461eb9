"""Filters over the mart: validation naming the clause, exact counts, breakdowns, cohorts, feasibility limits,
normalization, no injection (what callers see is released by the guarded services, tested elsewhere)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.marts.builder import MART_TABLE
from massalia.health.marts.catalogue import VariableType, load_catalogue
from massalia.health.marts.filters import (
    Clause,
    FilterError,
    FilterSpec,
    breakdown_counts,
    check_feasibility,
    compile_filter,
    count_and_breakdowns,
    count_persons,
    normalized_spec,
    parse_clause,
)

Rows = dict[int, dict[str, Any]]


@pytest.fixture(scope="module")
def mart_engine(mart_warehouse: Path, mart_rows: Rows) -> Iterator[DuckDBEngine]:
    """An in-memory engine holding the built mart and a small generated cohort (id 7: persons 1 to 30)."""
    with DuckDBEngine(mart_warehouse, read_only=True) as source:
        table = source.query(f"SELECT * FROM {MART_TABLE}")
    engine = DuckDBEngine()
    engine.create_table(MART_TABLE, table)
    day = dt.date(2020, 1, 1)
    engine.create_table(
        "cohort",
        pa.table(
            {
                "cohort_definition_id": [7] * 30 + [8] * 5,
                "subject_id": list(range(1, 31)) + list(range(1, 6)),
                "cohort_start_date": [day] * 35,
                "cohort_end_date": [day] * 35,
            }
        ),
    )
    try:
        yield engine
    finally:
        engine.close()


def spec(*clauses: str, any_of: list[str] | None = None, cohort: int | None = None) -> FilterSpec:
    return FilterSpec(
        all=[parse_clause(text) for text in clauses],
        any_of=[[parse_clause(text) for text in any_of]] if any_of else [],
        cohort_definition_id=cohort,
    )


def raw_count(engine: DuckDBEngine, filter_spec: FilterSpec) -> int:
    return count_persons(engine, filter_spec)


def test_counts_match_the_rows(mart_engine: DuckDBEngine, mart_rows: Rows) -> None:
    rows = list(mart_rows.values())
    expected = sum(1 for r in rows if r["primary_site"] in ("breast", "lung") and r["age_at_diagnosis"] >= 60)
    assert raw_count(mart_engine, spec("primary_site in breast,lung", "age_at_diagnosis >= 60")) == expected
    expected_or = sum(1 for r in rows if r["stage_group"] == "IV" or r["had_relapse"])
    assert raw_count(mart_engine, spec(any_of=["stage_group = IV", "had_relapse = true"])) == expected_or
    since = dt.date(2018, 1, 1)
    expected_dates = sum(1 for r in rows if since <= r["diagnosis_date"] <= dt.date(2019, 12, 31))
    assert raw_count(mart_engine, spec("diagnosis_date between 2018-01-01,2019-12-31")) == expected_dates
    assert raw_count(mart_engine, spec("death_date is_null")) == sum(1 for r in rows if r["death_date"] is None)
    assert raw_count(mart_engine, spec("sex not_in male")) == sum(1 for r in rows if r["sex"] != "male")
    assert raw_count(mart_engine, FilterSpec()) == len(rows)


def test_breakdown_has_every_cell_whatever_the_data(mart_engine: DuckDBEngine, mart_rows: Rows) -> None:
    raw = breakdown_counts(mart_engine, FilterSpec(), "primary_site")
    # Which cells exist never depends on the data (a cell appearing would say "at least one").
    assert set(raw) == {*(load_catalogue().variable("primary_site").values or ()), None}
    assert sum(raw.values()) == len(mart_rows)
    none = breakdown_counts(mart_engine, spec("age_at_diagnosis > 1000"), "primary_site")
    assert set(none) == set(raw) and not any(none.values())
    by_flag = breakdown_counts(mart_engine, spec("primary_site = breast"), "had_surgery")
    assert set(by_flag) == {True, False, None}
    assert sum(by_flag.values()) == raw["breast"]


ONE_SCAN = ("sex", "primary_site", "stage_group", "had_surgery", "er_status")


class CountingEngine(DuckDBEngine):
    """A DuckDB engine that counts the queries it runs (how many scans the breakdowns cost)."""

    queries = 0

    def _fetch_arrow(self, sql: str) -> pa.Table:
        self.queries += 1
        return super()._fetch_arrow(sql)


def test_count_and_breakdowns_in_one_scan_equal_the_separate_queries(mart_engine: DuckDBEngine) -> None:
    """One scan per filter and scope gives the count and every variable's cells exactly as their own queries do."""
    engine = CountingEngine()
    engine.create_table(MART_TABLE, mart_engine.query(f"SELECT * FROM {MART_TABLE}"))
    restrict = compile_filter(spec("age_at_diagnosis >= 50"), load_catalogue())  # a row-level scope, over "m"
    filters = [
        FilterSpec(),
        spec("primary_site in breast,lung"),
        spec(any_of=["stage_group = IV", "had_relapse = true"]),
    ]
    for f in filters:
        for r in (None, restrict):
            separate = {by: breakdown_counts(engine, f, by, restrict=r) for by in ONE_SCAN}
            persons = count_persons(engine, f, restrict=r)
            engine.queries = 0
            assert count_and_breakdowns(engine, f, ONE_SCAN, restrict=r) == (persons, separate)
            assert engine.queries == 2  # the mart's table check and the one grouping sets query
    assert count_and_breakdowns(engine, FilterSpec(), []) == (count_persons(engine, FilterSpec()), {})
    engine.close()


@pytest.mark.parametrize(
    ("clause", "message"),
    [
        ("person_id = 12", "person_id is an identifier"),
        ("person_id <= 3", "person_id is an identifier"),
        ("birth_date = 1950-03-12", "exact dates are not allowed"),
        ("birth_date >= 1950-03-01", "at the year grain"),
        ("birth_date < 1950-02-01", "at the year grain"),
        ("birth_date between 1950-01-01,1950-06-30", "at the year grain"),
        ("diagnosis_date >= 2019-03-12", "at the month grain"),
        ("diagnosis_date <= 2019-03-30", "at the month grain"),
        ("care_site = " + "x" * 65, "limited to 64 characters"),
    ],
)
def test_feasibility_refuses_identifiers_fine_dates_and_long_text(clause: str, message: str) -> None:
    with pytest.raises(FilterError, match=message) as error:
        check_feasibility(spec("sex = female", clause))
    assert "clause 2" in str(error.value)


@pytest.mark.parametrize(
    "clause",
    [
        "birth_date >= 1950-01-01", "birth_date < 1951-01-01", "birth_date <= 1950-12-31", "birth_date > 1950-12-31",
        "birth_date between 1950-01-01,1959-12-31", "diagnosis_date >= 2019-03-01", "diagnosis_date <= 2019-02-28",
        "diagnosis_date between 2019-03-01,2019-04-30", "death_date is_null", "year_of_birth = 1950",
        "care_site = CHU Nord",
    ],
)  # fmt: skip
def test_feasibility_accepts_coarse_dates(clause: str) -> None:
    check_feasibility(spec(clause))


def test_feasibility_checks_or_groups_and_the_breakdown_variable() -> None:
    with pytest.raises(FilterError, match=r"OR group 1, clause 2 .*person_id is an identifier"):
        check_feasibility(spec(any_of=["sex = male", "person_id = 4"]))


def test_normalized_specs_ignore_spelling_but_not_meaning() -> None:
    a = spec("age_at_diagnosis >= 60", "primary_site in lung,breast,lung")
    b = spec("primary_site in breast,lung", "age_at_diagnosis >= 60.0")
    assert normalized_spec(a) == normalized_spec(b)
    assert normalized_spec(a) != normalized_spec(spec("age_at_diagnosis > 60", "primary_site in breast,lung"))
    assert normalized_spec(spec(cohort=7)) != normalized_spec(spec(cohort=8))


def test_cohort_restriction(mart_engine: DuckDBEngine, mart_rows: Rows) -> None:
    assert raw_count(mart_engine, spec(cohort=7)) == 30
    females = sum(1 for pid in range(1, 31) if mart_rows[pid]["sex"] == "female")
    assert raw_count(mart_engine, spec("sex = female", cohort=7)) == females
    assert raw_count(mart_engine, spec(cohort=8)) == 5
    assert raw_count(mart_engine, spec(cohort=99)) == 0


@pytest.mark.parametrize(
    ("clause", "message"),
    [
        ("colour = blue", "clause 2 (colour = 'blue'): unknown mart variable 'colour'"),
        ("sex = X", "'X' is not a value of sex (allowed: female, male, unknown)"),
        ("age_at_diagnosis > old", "age_at_diagnosis is a number, 'old' is not"),
        ("n_lines = 1.5", "n_lines is an integer, '1.5' is not"),
        ("diagnosis_date > 2020-13-01", "diagnosis_date is a date, '2020-13-01' is not YYYY-MM-DD"),
        ("had_surgery = maybe", "had_surgery is boolean, 'maybe' is not true/false"),
        ("sex < female", "category variable sex takes"),
        ("age_at_diagnosis between 1", "between needs exactly two values"),
        ("age_at_diagnosis > nan", "needs a finite number"),
    ],
)
def test_invalid_clauses_are_refused_with_the_clause_named(
    mart_engine: DuckDBEngine, clause: str, message: str
) -> None:
    with pytest.raises(FilterError) as error:
        count_persons(mart_engine, spec("sex = female", clause))
    assert "clause 2" in str(error.value) and message in str(error.value)


def test_or_group_errors_name_the_group_and_the_breakdown_variable_is_checked(mart_engine: DuckDBEngine) -> None:
    with pytest.raises(FilterError, match=r"OR group 1, clause 2 \(stage_group = 'V'\)"):
        count_persons(mart_engine, spec(any_of=["stage_group = IV", "stage_group = V"]))
    with pytest.raises(FilterError, match="age_at_diagnosis is number; break down by a category"):
        breakdown_counts(mart_engine, FilterSpec(), "age_at_diagnosis")
    with pytest.raises(FilterError, match="cannot read filter"):
        parse_clause("sex")


def test_a_missing_mart_is_a_clear_error() -> None:
    with DuckDBEngine() as empty, pytest.raises(FilterError, match="run 'massalia mart build' first"):
        count_persons(empty, spec("sex = female"))


_CATALOGUE = load_catalogue()
_NAMES = [variable.name for variable in _CATALOGUE.variables]
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.dates(),
    st.sampled_from(["'", "''", "'; DROP TABLE mart_patient; --", '"', "\\", "%", "\x00", "female' OR '1'='1"]),
)
_clauses = st.builds(
    lambda variable, op, value: {"variable": variable, "op": op, "value": value},
    st.one_of(st.sampled_from(_NAMES), st.text(max_size=40)),
    st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "is_not_null"]),
    st.one_of(_values, st.lists(_values, max_size=4)),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(clauses=st.lists(_clauses, min_size=1, max_size=3))
def test_arbitrary_filters_never_break_the_sql(mart_engine: DuckDBEngine, clauses: list[dict[str, Any]]) -> None:
    try:
        filter_spec = FilterSpec(all=[Clause(**clause) for clause in clauses])
    except ValidationError:
        return  # refused by the typed model before any SQL exists
    try:
        result = count_persons(mart_engine, filter_spec)
    except FilterError:
        return  # refused by the catalogue, with a message
    assert 0 <= result <= 600
    assert mart_engine.row_count(MART_TABLE) == 600


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=80))
def test_text_values_are_literals(mart_engine: DuckDBEngine, mart_rows: Rows, value: str) -> None:
    # The oracle: an equality on a text column matches exactly the rows holding that text.
    if "\x00" in value:
        return  # not representable in SQL text on every engine: the engines refuse it themselves
    expected = sum(1 for row in mart_rows.values() if row["care_site"] == value)
    clause = Clause(variable="care_site", op="=", value=value)
    condition = compile_filter(FilterSpec(all=[clause]))
    assert condition is not None and condition.sql("duckdb").startswith("m.care_site = ")
    assert count_persons(mart_engine, FilterSpec(all=[clause])) == expected


def test_parse_clause_reads_every_operator() -> None:
    assert parse_clause("n_lines>=2") == Clause(variable="n_lines", op=">=", value="2")
    assert parse_clause("primary_site not_in breast, lung").value == ["breast", "lung"]
    assert parse_clause("death_date is_not_null").op == "is_not_null"
    assert parse_clause("care_site = CHU Nord").value == "CHU Nord"
    with pytest.raises(FilterError, match="takes no value"):
        parse_clause("death_date is_null 3")
    assert {v.type for v in _CATALOGUE.variables} == set(VariableType)
