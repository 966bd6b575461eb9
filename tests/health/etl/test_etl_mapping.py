from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from massalia.health.etl.mapping import (
    CODE_PATTERNS,
    MappingError,
    builtin_mapping_path,
    builtin_sites,
    find_mappings,
    load_site_mapping,
)
from massalia.health.etl.transforms import normalize_code
from massalia.pipelines.compiler import parse_datetime, parse_number

MINIMAL = """
site: demo
care_site: {care_site_id: 9, name: Demo}
files:
  patients: {pattern: "p*.csv"}
tables:
  - name: person
    target: person
    from: patients
    defines: person
    key: id
    columns:
      person_id: {id: person, key: id}
      gender_concept_id: {map: sex, values: {M: 8507}}
      year_of_birth: {date: born, part: year}
      race_concept_id: 0
      ethnicity_concept_id: 0
"""


def test_builtin_mappings_load() -> None:
    assert builtin_sites() == ["ch_est", "chu_nord", "clcc_sud"]
    for site in builtin_sites():
        mapping = load_site_mapping(builtin_mapping_path(site))
        assert mapping.site == site
        assert {t.target for t in mapping.tables} >= {
            "person",
            "visit_occurrence",
            "condition_occurrence",
            "measurement",
            "drug_exposure",
            "note",
            "episode",
        }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("key: id\n", "key: id\n    colour: blue\n"), "colour"),
        (("race_concept_id: 0", "race_concept_id: {const: 0, text: x}"), "exactly one transform"),
        (("from: patients", "from: visits"), "not among files"),
        (("gender_concept_id: {map: sex, values: {M: 8507}}", "gender_concept_id: {map: sex}"), "needs values"),
    ],
)
def test_invalid_mapping_names_file_and_problem(tmp_path: Path, change: tuple[str, str], message: str) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text(MINIMAL.replace(*change))
    with pytest.raises(MappingError, match=message) as info:
        load_site_mapping(path)
    assert str(path) in str(info.value)


def test_site_folder_mapping_wins_and_unknown_site_fails(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mapping.yaml").write_text(MINIMAL)
    (tmp_path / "unmapped").mkdir()
    assert [m.site for m in find_mappings(tmp_path)] == ["demo"]
    with pytest.raises(MappingError, match="has no mapping"):
        find_mappings(tmp_path, ["unmapped"])
    with pytest.raises(MappingError, match="no folder"):
        find_mappings(tmp_path, ["nowhere"])


@pytest.fixture(scope="module")
def db() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def sql_value(db: duckdb.DuckDBPyConnection, expression: str, value: object) -> object:
    return db.execute(f"SELECT {expression.replace('RAW', '$1')}", [value]).fetchone()[0]


@settings(max_examples=80, deadline=None)
@given(day=st.dates(min_value=dt.date(1900, 1, 1)), pattern=st.sampled_from(["%d/%m/%Y", "%Y-%m-%d", "%Y%m%d"]))
def test_date_parsing_round_trip(db: duckdb.DuckDBPyConnection, day: object, pattern: str) -> None:
    text = day.strftime(pattern)  # type: ignore[attr-defined]
    parsed = sql_value(db, f"CAST({parse_datetime('CAST(RAW AS VARCHAR)', pattern)} AS DATE)", text)
    assert parsed == day


@pytest.mark.parametrize("text", ["31/02/2020", "2020-13-01", "00/01/2020", "1/1/20x", ""])
def test_impossible_dates_do_not_parse(db: duckdb.DuckDBPyConnection, text: str) -> None:
    assert sql_value(db, parse_datetime("CAST(RAW AS VARCHAR)", "%d/%m/%Y"), text) is None


def test_epoch_and_integer_dates(db: duckdb.DuckDBPyConnection) -> None:
    assert str(sql_value(db, parse_datetime("RAW", "epoch-s"), 1593160620)) == "2020-06-26 08:37:00"
    assert str(sql_value(db, parse_datetime("RAW", "yyyymmdd-int"), 20230314)) == "2023-03-14 00:00:00"
    assert sql_value(db, parse_datetime("RAW", "yyyymmdd-int"), 20230231) is None


@settings(max_examples=80, deadline=None)
@given(
    value=st.decimals(min_value=-(10**6), max_value=10**6, places=3, allow_nan=False),
    decimal=st.sampled_from([",", "."]),
    comparator=st.sampled_from(["", "<", ">=", "<= "]),
)
def test_number_parsing(db: duckdb.DuckDBPyConnection, value: object, decimal: str, comparator: str) -> None:
    text = comparator + str(value).replace(".", decimal)
    assert sql_value(db, parse_number("CAST(RAW AS VARCHAR)", decimal), text) == pytest.approx(float(value))


@pytest.mark.parametrize(("text", "decimal"), [("1,2.5", ","), ("12..5", "."), ("abc", ".")])
def test_bad_numbers_do_not_parse(db: duckdb.DuckDBPyConnection, text: str, decimal: str) -> None:
    assert sql_value(db, parse_number("CAST(RAW AS VARCHAR)", decimal), text) is None


@pytest.mark.parametrize(
    ("code", "normalize", "expected"),
    [
        ("C509", "icd10_dot", "C50.9"),
        ("C61", "icd10_dot", "C61"),
        ("c50.9", "icd10_dot", "C50.9"),
        ("C61", "icdo3_site", "C61.9"),
        ("C509", "icdo3_site", "C50.9"),
        ("C50.9", "icdo3_site", "C50.9"),
    ],
)
def test_code_normalization(db: duckdb.DuckDBPyConnection, code: str, normalize: str, expected: str) -> None:
    assert sql_value(db, normalize_code("CAST(RAW AS VARCHAR)", normalize), code) == expected


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        ("icd10", ["C50.9", "C509", "C61", "E119"], ["ZZ123", "C5", "50.9"]),
        ("atc", ["L01BC02", "L01E"], ["ZZ123", "L1BC02"]),
        ("loinc", ["718-7", "16112-5"], ["ZZ123", "7187"]),
        ("snomed", ["86273004"], ["ZZ123", "123"]),
        ("icdo3_morphology", ["8500/3"], ["ZZ123", "8500"]),
    ],
)
def test_code_patterns(db: duckdb.DuckDBPyConnection, pattern: str, good: list[str], bad: list[str]) -> None:
    regex = CODE_PATTERNS[pattern]
    for code in good:
        assert db.execute("SELECT regexp_full_match($1, $2)", [code, regex]).fetchone()[0], code
    for code in bad:
        assert not db.execute("SELECT regexp_full_match($1, $2)", [code, regex]).fetchone()[0], code
