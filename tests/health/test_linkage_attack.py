"""Attacks on pseudonymized extracts: the reported k must be the true k, and two projects cannot link.

The issue (section 2): an extract reported k = 7 while ``diagnosis_date - birth_date`` (the exact age in
days, kept by a per-person shift) made every row unique, and joining two projects' extracts on (sex,
site, date differences, survival days) linked 183 of 184 rows. Here the attacker holds the released
files only, derives every quasi-identifier it can (pairwise date differences, ages in days, survival,
rare values) and joins two projects' files on every column combination it would try.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance.pseudonym import pseudonymize
from massalia.health.cohorts.circe import import_circe
from massalia.health.cohorts.service import generate_cohort
from massalia.health.extracts import PSEUDONYM_COLUMN, ExtractPolicy, build_extract
from massalia.health.marts.builder import build_mart

KEY_A = b"project-a-secret-key-32-bytes!!!"
KEY_B = b"project-b-secret-key-32-bytes!!!"
COHORT = 3
K_MIN = 5

# What the attacker used, and more: dates (so their differences), survival, ages, rare categories;
# and a narrow selection, where dates survive (as years) and their differences are there to join on.
VARIABLE_SETS = {
    "wide": [
        "sex", "care_site", "year_of_birth", "birth_date", "diagnosis_date", "age_at_diagnosis", "stage_group",
        "vital_status", "death_date", "os_days", "follow_up_days", "n_comorbidities",
    ],
    "narrow": ["sex", "birth_date", "diagnosis_date", "os_days"],
}  # fmt: skip

BREAST_CANCER = {
    "ConceptSets": [
        {
            "id": 0,
            "name": "breast cancer",
            "expression": {"items": [{"concept": {"CONCEPT_ID": 4112853}, "includeDescendants": True}]},
        }
    ],
    "PrimaryCriteria": {
        "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
        "ObservationWindow": {"PriorDays": 0, "PostDays": 0},
        "PrimaryCriteriaLimit": {"Type": "First"},
    },
}


@pytest.fixture(scope="module")
def warehouse(demo_warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo warehouse with its research mart and a generated breast cancer cohort."""
    path = tmp_path_factory.mktemp("linkage") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        generate_cohort(engine, import_circe(BREAST_CANCER), cohort_definition_id=COHORT)
        build_mart(engine)
    return path


@pytest.fixture(params=[pytest.param("duckdb", id="duckdb"), pytest.param("postgres", marks=pytest.mark.postgres)])
def source(request: pytest.FixtureRequest, warehouse: Path) -> Iterator[Engine]:
    """The mart and the cohort on DuckDB, or the same rows copied to a throwaway PostgreSQL schema."""
    with DuckDBEngine(warehouse, read_only=True) as duck:
        if request.param == "duckdb":
            yield duck
            return
        from massalia.engine.postgres import PostgresEngine

        pg = PostgresEngine(request.getfixturevalue("pg_dsn"), schema=f"t_{uuid.uuid4().hex[:12]}")
        try:
            pg.create_table("mart_patient", duck.query("SELECT * FROM mart_patient"))
            pg.create_table("cohort", duck.query("SELECT * FROM cohort"))
            yield pg
        finally:
            pg.drop_schema()
            pg.close()


@pytest.fixture(params=list(VARIABLE_SETS))
def variables(request: pytest.FixtureRequest) -> list[str]:
    return VARIABLE_SETS[request.param]


def released(engine: Engine, out: Path, project: int, key: bytes, variables: list[str]) -> tuple[pa.Table, int]:
    """One project's extract of the cohort, as the guarded service builds it (generalize when below k)."""
    policy = ExtractPolicy(project_id=project, key=key, date_shift_days=365, k_min=K_MIN, on_low_k="generalize",
                           max_suppression=0.05)  # fmt: skip
    result = build_extract(engine, cohort=("cohort", COHORT), variables=variables, policy=policy, out_dir=out)
    return pq.read_table(result.path), result.k


# -- the attacker's toolbox: everything computable from the released file alone ----------------------------
def _as_day_number(value: object) -> tuple[str, int] | None:
    """A released date-like value as (granularity, number): a date, a month ``2020-03``, a year ``2020``."""
    if isinstance(value, dt.datetime):
        return "day", value.date().toordinal()
    if isinstance(value, dt.date):
        return "day", value.toordinal()
    if isinstance(value, str) and len(value) == 7 and value[4] == "-" and value.replace("-", "").isdigit():
        return "month", int(value[:4]) * 12 + int(value[5:])
    if isinstance(value, str) and len(value) == 4 and value.isdigit():
        return "year", int(value)
    if isinstance(value, int) and 1800 <= value <= 2200:
        return "year", value  # a year column
    return None


def derived_features(table: pa.Table) -> dict[str, list[object]]:
    """Every released column, plus the pairwise differences of date-like columns and the rarity of values."""
    rows = table.drop_columns([PSEUDONYM_COLUMN]).to_pylist()
    features: dict[str, list[object]] = {name: table.column(name).to_pylist() for name in table.column_names}
    del features[PSEUDONYM_COLUMN]
    names = list(features)
    for first, second in itertools.combinations(names, 2):

        def difference(row: dict[str, object], a: str = first, b: str = second) -> object:
            left, right = _as_day_number(row[a]), _as_day_number(row[b])
            if left is None or right is None or left[0] != right[0]:
                return None
            return (left[0], left[1] - right[1])  # exact age in days, survival in months...

        values = [difference(row) for row in rows]
        if any(value is not None for value in values):
            features[f"{first}-{second}"] = values
    for name in names:
        counts = Counter(map(repr, features[name]))
        features[f"rare:{name}"] = [counts[repr(value)] < K_MIN for value in features[name]]
    return features


def smallest_class(features: dict[str, list[object]], names: list[str]) -> int:
    keys = Counter(tuple(repr(features[name][i]) for name in names) for i in range(len(features[names[0]])))
    return min(keys.values())


def join_key(features: dict[str, list[object]], names: list[str], row: int) -> tuple[str, ...]:
    return tuple(repr(features[name][row]) for name in names)


def combinations(names: list[str], largest: int) -> Iterator[list[str]]:
    for size in range(1, largest + 1):
        yield from (list(group) for group in itertools.combinations(names, size))
    yield names


# -- the attacks --------------------------------------------------------------------------------------------
def test_the_reported_k_is_the_true_k(source: Engine, variables: list[str], tmp_path: Path) -> None:
    """Issue: k = 7 reported, yet the exact age in days (diagnosis − birth) made every row unique."""
    table, reported = released(source, tmp_path, 1, KEY_A, variables)
    assert table.num_rows > 100 and reported >= K_MIN
    features = derived_features(table)
    derived = [name for name in features if "-" in name or name.startswith("rare:")]
    assert derived, "the attacker derives date differences and rarities"
    # Everything at once, then each derived quantity beside the columns the attacker knew.
    assert smallest_class(features, list(features)) >= reported
    for name in derived:
        known = [column for column in ("sex", "care_site") if column in features]
        assert smallest_class(features, [*known, name]) >= reported, name
    # The k the file claims is the k of the file: no looser, no made-up.
    assert smallest_class(features, [n for n in table.column_names if n != PSEUDONYM_COLUMN]) == reported


def test_two_projects_extracts_do_not_link_beyond_one_in_k(
    source: Engine, variables: list[str], tmp_path: Path
) -> None:
    """Issue: a join of two projects' extracts on (sex, site, date differences, survival) linked 183/184."""
    first, k_first = released(source, tmp_path / "a", 1, KEY_A, variables)
    second, k_second = released(source, tmp_path / "b", 2, KEY_B, variables)
    k = min(k_first, k_second)
    # The ground truth the attacker is after: which row of B is which row of A.
    ids = source.query(f"SELECT subject_id FROM cohort WHERE cohort_definition_id = {COHORT}").column(0)
    to_b = dict(zip(pseudonymize(ids, key=KEY_A, project=1).to_pylist(),
                    pseudonymize(ids, key=KEY_B, project=2).to_pylist(), strict=True))  # fmt: skip
    features_a, features_b = derived_features(first), derived_features(second)
    shared = [name for name in features_a if name in features_b and not name.startswith("rare:")]
    pseudo_a = first.column(PSEUDONYM_COLUMN).to_pylist()
    pseudo_b = second.column(PSEUDONYM_COLUMN).to_pylist()
    tried = 0
    for names in combinations(shared, 3):
        candidates: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for i, pseudonym in enumerate(pseudo_b):
            candidates[join_key(features_b, names, i)].append(pseudonym)
        expected_links = 0.0
        unique = 0
        for i, pseudonym in enumerate(pseudo_a):
            found = candidates.get(join_key(features_a, names, i), [])
            unique += len(found) == 1
            if to_b[pseudonym] in found:
                expected_links += 1 / len(found)  # an attacker picking among the candidates
        assert unique == 0, f"joining on {names} singles out {unique} record(s)"
        assert expected_links <= len(pseudo_a) / k + 1e-9, f"joining on {names} links {expected_links:.1f} records"
        tried += 1
    assert tried > min(100, 2 ** len(shared) - 2)


# A date moves by at most 365 days in each project: two releases of one date differ by at most 730 days.
SLACK = {"day": 730, "month": 25, "year": 2}


def compatible(left: object, right: object) -> bool:
    """Whether two projects' releases of one value can be the same person's: equal, or dates within the shifts."""
    a, b = _as_day_number(left), _as_day_number(right)
    if a is not None and b is not None and a[0] == b[0]:
        return abs(a[1] - b[1]) <= SLACK[a[0]]
    return repr(left) == repr(right)


def test_a_join_that_allows_for_the_shifts_links_no_more(source: Engine, tmp_path: Path) -> None:
    """The attacker knows both shifts are within ±365 days and joins dates on 'close enough', not equality."""
    variables = VARIABLE_SETS["narrow"]
    first, k_first = released(source, tmp_path / "a", 1, KEY_A, variables)
    second, k_second = released(source, tmp_path / "b", 2, KEY_B, variables)
    k = min(k_first, k_second)
    ids = source.query(f"SELECT subject_id FROM cohort WHERE cohort_definition_id = {COHORT}").column(0)
    to_b = dict(zip(pseudonymize(ids, key=KEY_A, project=1).to_pylist(),
                    pseudonymize(ids, key=KEY_B, project=2).to_pylist(), strict=True))  # fmt: skip
    rows_a, rows_b = first.to_pylist(), second.to_pylist()
    columns = [name for name in first.column_names if name != PSEUDONYM_COLUMN]
    for names in combinations(columns, len(columns)):
        expected_links = 0.0
        for row in rows_a:
            found = [b[PSEUDONYM_COLUMN] for b in rows_b if all(compatible(row[n], b[n]) for n in names)]
            assert len(found) != 1, f"a shift-tolerant join on {names} singles out {row[PSEUDONYM_COLUMN]}"
            if to_b[row[PSEUDONYM_COLUMN]] in found:
                expected_links += 1 / len(found)
        assert expected_links <= len(rows_a) / k + 1e-9, f"joining on {names} links {expected_links:.1f} records"
