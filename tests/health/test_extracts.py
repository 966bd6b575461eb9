"""Pseudonymized extracts on the shared 600-patient demo warehouse (massalia.health.extracts)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance.kanon import NumberBands, Truncate
from massalia.governance.pseudonym import pseudonymize
from massalia.health.cohorts.circe import import_circe
from massalia.health.cohorts.service import generate_cohort
from massalia.health.extracts import (
    PSEUDONYM_COLUMN,
    ExtractError,
    ExtractPolicy,
    ExtractRefused,
    build_extract,
    catalogue_roles,
    is_direct_identifier,
)
from massalia.health.marts.builder import build_mart

KEY_A = b"project-a-secret-key-32-bytes!!!"
KEY_B = b"project-b-secret-key-32-bytes!!!"
BREAST_COHORT = 3

# One row per person: PERSON with its residence, death and observation period, plus the identifiers an
# extract must never let out (the source patient id, the residence commune code).
SOURCE_SQL = """
CREATE TABLE extract_source AS
SELECT p.person_id,
       p.person_source_value,
       p.gender_concept_id,
       p.year_of_birth,
       CAST(p.birth_datetime AS DATE) AS birth_date,
       p.birth_datetime,
       l.county,
       l.location_source_value,
       d.death_date,
       op.observation_period_start_date,
       op.observation_period_end_date,
       p.care_site_id
FROM person AS p
LEFT JOIN location AS l ON l.location_id = p.location_id
LEFT JOIN death AS d ON d.person_id = p.person_id
LEFT JOIN observation_period AS op ON op.person_id = p.person_id
"""

ROLES = {
    "person_source_value": "identifier",
    "gender_concept_id": "quasi_identifier",
    "year_of_birth": "quasi_identifier",
    "birth_date": "date",
    "birth_datetime": "date",
    "county": "quasi_identifier",
    "location_source_value": "identifier",
    "death_date": "date",
    "observation_period_start_date": "date",
    "observation_period_end_date": "date",
    "care_site_id": "none",
}
DATES = ["birth_date", "death_date", "observation_period_start_date", "observation_period_end_date"]

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
    """A writable copy of the demo warehouse with the extract source table and a generated breast cohort."""
    path = tmp_path_factory.mktemp("extracts") / "warehouse.duckdb"
    shutil.copy(demo_warehouse, path)
    with DuckDBEngine(path) as engine:
        engine.execute(SOURCE_SQL)
        generate_cohort(engine, import_circe(BREAST_CANCER), cohort_definition_id=BREAST_COHORT)
        build_mart(engine)
    return path


@pytest.fixture
def engine(warehouse: Path) -> Iterator[DuckDBEngine]:
    with DuckDBEngine(warehouse, read_only=True) as opened:
        yield opened


def policy(project: int = 1, key: bytes = KEY_A, **changes: object) -> ExtractPolicy:
    settings: dict[str, object] = {"date_shift_days": 365, "k_min": 5, "on_low_k": "generalize"}
    settings.update(changes)
    return ExtractPolicy(project_id=project, key=key, **settings)  # type: ignore[arg-type]


def extract(engine: DuckDBEngine, out: Path, **options: object) -> tuple[pa.Table, dict[str, object]]:
    options.setdefault("policy", policy())
    result = build_extract(engine, source_table="extract_source", column_roles=ROLES, out_dir=out, **options)  # type: ignore[arg-type]
    table = pq.read_table(result.path) if result.path.suffix == ".parquet" else None
    assert json.loads(result.manifest_path.read_text()) == result.manifest
    return (table if table is not None else pa.table({})), result.manifest


def originals(engine: DuckDBEngine) -> pa.Table:
    return engine.query("SELECT * FROM extract_source ORDER BY person_id")


def brute_force_k(table: pa.Table, columns: list[str]) -> int:
    rows = zip(*(table.column(name).to_pylist() for name in columns), strict=True)
    return min(Counter(rows).values())


def test_two_projects_extracts_of_the_same_cohort_share_no_id(engine: DuckDBEngine, tmp_path: Path) -> None:
    members = engine.query(f"SELECT DISTINCT subject_id FROM cohort WHERE cohort_definition_id = {BREAST_COHORT}")
    assert members.num_rows > 50
    a, _ = extract(engine, tmp_path / "a", cohort=("cohort", BREAST_COHORT), policy=policy(1, KEY_A))
    b, _ = extract(engine, tmp_path / "b", cohort=("cohort", BREAST_COHORT), policy=policy(2, KEY_B))
    same_key, _ = extract(engine, tmp_path / "c", cohort=("cohort", BREAST_COHORT), policy=policy(3, KEY_A))
    ids = [set(t.column(PSEUDONYM_COLUMN).to_pylist()) for t in (a, b, same_key)]
    assert all(len(group) == t.num_rows for group, t in zip(ids, (a, b, same_key), strict=True))
    suppressed = members.num_rows - a.num_rows
    assert 0 <= suppressed <= members.num_rows * 0.01
    tails = [{p.split("-", 1)[1] for p in group} for group in ids]
    assert not tails[0] & tails[1] and not tails[0] & tails[2] and not tails[1] & tails[2]
    # The pseudonyms are the project's keyed hashes of exactly the cohort's members.
    expected = set(pseudonymize(members.column("subject_id"), key=KEY_A, project=1).to_pylist())
    assert ids[0] <= expected


def test_dates_shift_per_person_and_intervals_are_kept(engine: DuckDBEngine, tmp_path: Path) -> None:
    # k_min=1 releases the shifted values as they are, to check the shift itself.
    out, manifest = extract(engine, tmp_path, policy=policy(k_min=1, max_suppression=0.0))
    source = originals(engine)
    pseudonyms = pseudonymize(source.column("person_id"), key=KEY_A, project=1).to_pylist()
    by_pseudonym = dict(zip(pseudonyms, source.to_pylist(), strict=True))
    shifts = Counter()
    assert out.num_rows == source.num_rows == 600
    for row in out.to_pylist():
        original = by_pseudonym[row[PSEUDONYM_COLUMN]]
        moved = {name: (row[name] - original[name]).days for name in DATES if original[name] is not None}
        assert moved, "every person has at least a birth date"
        (shift,) = set(moved.values())  # one shift for every date of a person
        assert 1 <= abs(shift) <= 365
        assert row["birth_datetime"] - original["birth_datetime"] == dt.timedelta(days=shift)
        # The year of birth is the shifted birth date's, never the real one beside a shifted date.
        assert row["year_of_birth"] == row["birth_datetime"].year
        if original["death_date"] is not None:
            assert row["death_date"] - row["birth_date"] == original["death_date"] - original["birth_date"]
        shifts[shift > 0] += 1
    assert shifts[True] > 200 and shifts[False] > 200
    treatments = {column["name"]: column["treatment"] for column in manifest["columns"]}
    assert all(treatments[name].startswith("date-shifted") for name in [*DATES, "birth_datetime"])
    assert treatments["year_of_birth"] == "derived: year of the shifted birth_date"


def test_no_direct_identifier_in_any_cell(engine: DuckDBEngine, tmp_path: Path) -> None:
    source = originals(engine)
    secrets = set(source.column("person_source_value").to_pylist()) | set(
        source.column("location_source_value").drop_null().to_pylist()
    )
    assert len(secrets) > 600
    person_ids = {str(i) for i in source.column("person_id").to_pylist()}
    parquet_table, manifest = extract(engine, tmp_path / "p", cohort=("cohort", BREAST_COHORT))
    csv_result = build_extract(
        engine,
        source_table="extract_source",
        column_roles=ROLES,
        cohort=("cohort", BREAST_COHORT),
        policy=policy(),
        out_dir=tmp_path / "c",
        fmt="csv",
    )
    assert {"person_id", "person_source_value", "location_source_value"}.isdisjoint(parquet_table.column_names)
    for column in parquet_table.columns:
        for cell in column.to_pylist():
            text = str(cell)
            assert text not in secrets and not any(secret in text for secret in secrets)
    assert not person_ids & set(parquet_table.column(PSEUDONYM_COLUMN).to_pylist())
    raw = csv_result.path.read_text(encoding="utf-8")
    assert not [secret for secret in secrets if secret in raw]
    cells = [cell for line in raw.splitlines()[1:] for cell in line.split(",")]
    assert not person_ids & {cell.strip('"') for cell in cells[:: len(parquet_table.column_names)]}
    dropped = {entry["name"]: entry["treatment"] for entry in manifest["dropped"]}
    assert set(dropped) == {"person_source_value", "location_source_value", "care_site_id"}
    assert dropped["care_site_id"] == "dropped: warehouse key"
    assert KEY_A.decode() not in json.dumps(manifest) and KEY_A.hex() not in json.dumps(manifest)


def test_k_below_minimum_is_refused_and_nothing_is_written(engine: DuckDBEngine, tmp_path: Path) -> None:
    with pytest.raises(ExtractRefused, match="below k_min=5") as refused:
        extract(engine, tmp_path, policy=policy(on_low_k="refuse"))
    assert refused.value.report.k < 5 and refused.value.report.records_below > 0
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    # Capped so tightly that generalization cannot help: refused too.
    capped = policy(max_levels=dict.fromkeys(ROLES, 0), max_suppression=0.0)
    with pytest.raises(ExtractRefused, match="generalization failed"):
        extract(engine, tmp_path, policy=capped)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_generalized_extract_is_k_anonymous_and_says_how(engine: DuckDBEngine, tmp_path: Path) -> None:
    chosen = policy(
        k_min=10,
        hierarchies={"year_of_birth": NumberBands((5, 10, 20, 40)), "county": Truncate((1,))},
        max_suppression=0.02,
    )
    variables = ["gender_concept_id", "year_of_birth", "county"]
    out, manifest = extract(engine, tmp_path, variables=variables, policy=chosen)
    k_info = manifest["k_anonymity"]
    assert k_info["quasi_identifiers"] == variables, "every released column counts in k"
    assert brute_force_k(out, variables) == k_info["k"] >= 10
    assert k_info["generalizations"], "600 patients are not 10-anonymous on raw year of birth and county"
    assert k_info["suppressed_records"] == 600 - out.num_rows <= 12
    treatments = {column["name"]: column["treatment"] for column in manifest["columns"]}
    for step in k_info["generalizations"]:
        assert "generalized" in treatments[step["column"]]
    # Columns left at level 0 are the source's: the sex concept of each person is unchanged.
    assert "gender_concept_id" not in {step["column"] for step in k_info["generalizations"]}
    source = originals(engine)
    pseudonyms = pseudonymize(source.column("person_id"), key=KEY_A, project=1).to_pylist()
    sex_of = dict(zip(pseudonyms, source.column("gender_concept_id").to_pylist(), strict=True))
    shown = zip(out.column(PSEUDONYM_COLUMN).to_pylist(), out.column("gender_concept_id").to_pylist(), strict=True)
    assert all(sex_of[p] == s for p, s in shown)


def test_csv_and_parquet_round_trip(engine: DuckDBEngine, tmp_path: Path) -> None:
    chosen = policy(project=5, key=KEY_B)
    parquet = build_extract(engine, source_table="extract_source", column_roles=ROLES, policy=chosen,
                            person_ids=list(range(1, 301)), out_dir=tmp_path, fmt="parquet")  # fmt: skip
    csv = build_extract(engine, source_table="extract_source", column_roles=ROLES, policy=chosen,
                        person_ids=list(range(1, 301)), out_dir=tmp_path, fmt="csv")  # fmt: skip
    table = pq.read_table(parquet.path)
    assert table.num_rows == parquet.rows == csv.rows
    options = pacsv.ConvertOptions(column_types=table.schema, strings_can_be_null=True)
    assert pacsv.read_csv(csv.path, convert_options=options).equals(table)
    for result in (parquet, csv):
        assert hashlib.sha256(result.path.read_bytes()).hexdigest() == result.manifest["sha256"]
        assert result.manifest["data_file"] == result.path.name and result.manifest["rows"] == result.rows
        assert result.manifest["project_id"] == 5
        assert dt.datetime.fromisoformat(result.manifest["created_at"]).tzinfo is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [parquet.path.name, parquet.manifest_path.name, csv.path.name, csv.manifest_path.name]
    ), "no temporary file is left behind"
    assert parquet.manifest["selection"]["person_ids_given"] == 300


def test_variables_and_policy_drop(engine: DuckDBEngine, tmp_path: Path) -> None:
    out, manifest = extract(
        engine,
        tmp_path,
        variables=["year_of_birth", "death_date", "care_site_id"],
        policy=policy(drop=["care_site_id"]),
    )
    assert out.column_names == [PSEUDONYM_COLUMN, "year_of_birth", "death_date"]
    assert manifest["k_anonymity"]["quasi_identifiers"] == ["year_of_birth", "death_date"]
    assert [d["name"] for d in manifest["dropped"]] == ["care_site_id"]


def test_timestamps_dropped_when_not_shifted(engine: DuckDBEngine, tmp_path: Path) -> None:
    out, manifest = extract(engine, tmp_path, policy=policy(shift_datetimes=False))
    assert "birth_datetime" not in out.column_names
    assert "birth_datetime" in {d["name"] for d in manifest["dropped"]}


def test_without_date_shift_dates_are_kept(engine: DuckDBEngine, tmp_path: Path) -> None:
    out, manifest = extract(engine, tmp_path, variables=["birth_date"], policy=policy(date_shift_days=None, k_min=1))
    assert sorted(out.column("birth_date").to_pylist()) == sorted(originals(engine).column("birth_date").to_pylist())
    assert manifest["date_shift"] is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"variables": ["no_such_column"]}, "unknown variable"),
        ({"source_table": "nowhere"}, "does not exist"),
        ({"source_table": "x; drop table person"}, "invalid SQL identifier"),
        ({"fmt": "xlsx"}, "format"),
        ({"cohort": ("cohort", "3")}, "cohort_definition_id must be an integer"),
        ({"cohort": ("cohort", 999)}, "selection is empty"),
        ({"cohort": ("no_cohort", 1)}, "cohort table 'no_cohort' does not exist"),
        ({"person_ids": ["1"]}, "integer person ids"),
        ({"column_roles": {**ROLES, "county": "secret"}}, "unknown disclosure role"),
        ({"column_roles": {k: v for k, v in ROLES.items() if k != "county"}}, "'county' .* has no disclosure role"),
        ({"source_table": "concept"}, "no person_id column"),
        ({"source_table": "death"}, "has no disclosure role"),
    ],
)
def test_bad_requests_are_refused_clearly(
    engine: DuckDBEngine, tmp_path: Path, options: dict[str, object], message: str
) -> None:
    settings: dict[str, object] = {"source_table": "extract_source", "column_roles": ROLES, "policy": policy()}
    settings.update(options)
    with pytest.raises(ExtractError, match=message):
        build_extract(engine, out_dir=tmp_path, **settings)  # type: ignore[arg-type]


def test_duplicate_person_rows_are_refused(engine: DuckDBEngine, tmp_path: Path) -> None:
    roles = {"observation_period_id": "none", "observation_period_start_date": "date",
             "observation_period_end_date": "date", "period_type_concept_id": "none"}  # fmt: skip
    # The demo has one observation period a person; visit_occurrence has many rows a person.
    visit_roles = {column.name: "none" for column in engine.describe("visit_occurrence")}
    with pytest.raises(ExtractError, match="several rows"):
        build_extract(engine, source_table="visit_occurrence", column_roles=visit_roles, policy=policy(),
                      out_dir=tmp_path)  # fmt: skip
    result = build_extract(engine, source_table="observation_period", column_roles=roles,
                           policy=policy(k_min=1), out_dir=tmp_path)  # fmt: skip
    assert result.rows == 600


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"key": b"short"}, "at least 16"),
        ({"project": "bad id"}, "invalid project id"),
        ({"date_shift_days": 0}, "date_shift_days"),
        ({"k_min": 0}, "k_min"),
        ({"on_low_k": "ignore"}, "on_low_k"),
        ({"max_suppression": 2.0}, "max_suppression"),
    ],
)
def test_bad_policy_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ExtractError, match=message):
        policy(**changes)  # type: ignore[arg-type]


def test_direct_identifier_names_and_catalogue_roles() -> None:
    assert is_direct_identifier("person_source_value") and is_direct_identifier("nom")
    assert is_direct_identifier("patient_email") and not is_direct_identifier("nominal_dose")
    roles = catalogue_roles()
    assert roles["person_id"] == "identifier"
    assert set(roles.values()) <= {"identifier", "quasi_identifier", "sensitive", "date", "none"}
    assert "quasi_identifier" in roles.values() and "date" in roles.values()


def test_research_mart_with_catalogue_roles(engine: DuckDBEngine, tmp_path: Path) -> None:
    """The path the guarded service takes: mart_patient, the catalogue's roles, a project's cohort."""
    roles = catalogue_roles()
    chosen = ExtractPolicy(project_id=7, key=KEY_A, date_shift_days=365, k_min=5, on_low_k="refuse")
    with pytest.raises(ExtractRefused, match="below k_min=5"):
        build_extract(engine, cohort=("cohort", BREAST_COHORT), policy=chosen, out_dir=tmp_path)
    chosen = ExtractPolicy(project_id=7, key=KEY_A, date_shift_days=365, k_min=5, on_low_k="generalize")
    result = build_extract(engine, cohort=("cohort", BREAST_COHORT), policy=chosen, out_dir=tmp_path)
    out = pq.read_table(result.path)
    mart = engine.query(
        f"SELECT * FROM mart_patient WHERE person_id IN (SELECT subject_id FROM cohort "
        f"WHERE cohort_definition_id = {BREAST_COHORT})"
    )
    identifiers = {name for name, role in roles.items() if role == "identifier"}
    assert identifiers & set(mart.column_names) and not identifiers & set(out.column_names)
    quasi = result.manifest["k_anonymity"]["quasi_identifiers"]
    assert quasi == [name for name in out.column_names if name != PSEUDONYM_COLUMN]
    assert brute_force_k(out, quasi) == result.k >= 5
    assert mart.num_rows - out.num_rows == result.manifest["k_anonymity"]["suppressed_records"]
    # Every date of the mart moved by the person's one shift (k_min=1: the shifted values as they are).
    chosen = ExtractPolicy(project_id=7, key=KEY_A, date_shift_days=365, k_min=1)
    out = pq.read_table(build_extract(engine, cohort=("cohort", BREAST_COHORT), policy=chosen, out_dir=tmp_path).path)
    derived = {"year_of_birth": "birth_date", "year_of_diagnosis": "diagnosis_date"}
    pseudonyms = pseudonymize(mart.column("person_id"), key=KEY_A, project=7).to_pylist()
    by_pseudonym = dict(zip(pseudonyms, mart.to_pylist(), strict=True))
    dates = [field.name for field in mart.schema if pa.types.is_date(field.type)]
    assert len(dates) >= 10
    for row in out.to_pylist():
        original = by_pseudonym[row[PSEUDONYM_COLUMN]]
        moved = {(row[name] - original[name]).days for name in dates if original[name] is not None}
        assert len(moved) == 1 and 1 <= abs(moved.pop()) <= 365
        for name in out.column_names:
            if name in derived:
                assert row[name] == row[derived[name]].year, name
            elif name != PSEUDONYM_COLUMN and name not in dates:
                assert row[name] == original[name], name


@pytest.mark.postgres
def test_postgres_extract_equals_duckdb(engine: DuckDBEngine, pg_dsn: str, tmp_path: Path) -> None:
    """The same source rows on PostgreSQL give the same file content (the SQL is built once, with SQLGlot)."""
    import uuid

    from massalia.engine.postgres import PostgresEngine

    source = engine.query("SELECT * FROM extract_source WHERE person_id <= 200")
    cohort = engine.query("SELECT * FROM cohort")
    pg = PostgresEngine(pg_dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    try:
        pg.create_table("extract_source", source)
        pg.create_table("cohort", cohort)
        chosen = policy(project=4, key=KEY_B, k_min=3)
        results = [
            build_extract(
                opened,
                source_table="extract_source",
                column_roles=ROLES,
                cohort=("cohort", BREAST_COHORT),
                policy=chosen,
                out_dir=tmp_path / opened.name,
                person_ids=range(1, 201),
            )
            for opened in (engine, pg)
        ]
    finally:
        pg.drop_schema()
        pg.close()
    duck, post = (pq.read_table(result.path) for result in results)
    assert duck.num_rows > 20
    assert post.equals(duck)
    assert results[0].manifest["k_anonymity"] == results[1].manifest["k_anonymity"]


def test_a_released_date_is_shifted_then_generalized(engine: DuckDBEngine, tmp_path: Path) -> None:
    chosen = policy(max_suppression=0.0)
    out, manifest = extract(engine, tmp_path, variables=["gender_concept_id", "birth_date"], policy=chosen)
    (step,) = manifest["k_anonymity"]["generalizations"]
    assert step["column"] == "birth_date" and step["hierarchy"] == "DateLevels"
    assert out.schema.field("birth_date").type == pa.string()
    assert brute_force_k(out, ["gender_concept_id", "birth_date"]) == manifest["k_anonymity"]["k"] >= 5
