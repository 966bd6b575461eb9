"""Athena vocabulary loader: small Athena-format downloads written here, good and bad."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from massalia.cli import app
from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine
from massalia.health.omop import omop_csv
from massalia.health.omop.athena import ATHENA_TABLES, athena_files, load_athena, read_athena_tables
from massalia.health.omop.omop_csv import OmopCsvError

# Spark needs tens of seconds per multi-table load on this 2-core machine: slow there only.
EVERY_ENGINE_SPARK_SLOW = pytest.mark.parametrize(
    "engine",
    [
        pytest.param("duckdb", marks=pytest.mark.duckdb, id="duckdb"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow], id="spark"),
    ],
    indirect=True,
)


def tsv(*fields: object) -> str:
    """One Athena line."""
    return "\t".join(str(f) for f in fields)


CONCEPT_HEADER = (
    "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\t"
    "concept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason"
)
# Real rows (Athena test data, OHDSI/Athena), in Athena's own layout.
CONCEPTS = [
    tsv(
        200962,
        "Primary malignant neoplasm of prostate",
        "Condition",
        "SNOMED",
        "Clinical Finding",
        "S",
        "93974005",
        19700101,
        20991231,
        "",
    ),
    "45547509\tMalignant neoplasm of prostate\tCondition\tICD10\tICD10 Hierarchy\t\tC61\t19900501\t20991231\t",
    '4116087\tCarcinoma of prostate "CA"\tCondition\tSNOMED\tClinical Finding\tS\t254900004\t19700101\t20991231\t',
]
GOOD = {
    "CONCEPT.csv": CONCEPT_HEADER + "\n" + "\n".join(CONCEPTS) + "\n",
    "VOCABULARY.csv": tsv(
        "vocabulary_id", "vocabulary_name", "vocabulary_reference", "vocabulary_version", "vocabulary_concept_id"
    )
    + "\nSNOMED\tSystematized Nomenclature of Medicine\t\t\t44819097\n",
    "DOMAIN.csv": "domain_id\tdomain_name\tdomain_concept_id\nCondition\tCondition\t19\n",
    "CONCEPT_CLASS.csv": "concept_class_id\tconcept_class_name\tconcept_class_concept_id\n"
    "Clinical Finding\tClinical Finding\t44819005\n",
    "RELATIONSHIP.csv": "relationship_id\trelationship_name\tis_hierarchical\tdefines_ancestry\t"
    "reverse_relationship_id\trelationship_concept_id\n"
    "Maps to\tNon-standard to Standard map (OMOP)\t0\t0\tMapped from\t44818977\n",
    "CONCEPT_RELATIONSHIP.csv": "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\t"
    "invalid_reason\n45547509\t200962\tMaps to\t20181128\t20991231\t\n",
    "CONCEPT_ANCESTOR.csv": "ancestor_concept_id\tdescendant_concept_id\tmin_levels_of_separation\t"
    "max_levels_of_separation\n200962\t200962\t0\t0\n200962\t4116087\t1\t1\n",
    "CONCEPT_SYNONYM.csv": "concept_id\tconcept_synonym_name\tlanguage_concept_id\n4116087\tProstate cancer\t4180186\n",
}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        if name.endswith(".gz"):
            (folder / name).write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text, encoding="utf-8")
    return folder


def _with(**changes: str) -> dict[str, str]:
    files = dict(GOOD)
    for key, text in changes.items():
        files[key.replace("__", ".")] = text
    return files


def test_loads_all_tables_typed(duckdb_engine: DuckDBEngine, tmp_path: Path) -> None:
    folder = _write(tmp_path / "athena", GOOD)
    (folder / "readme.txt").write_text("Athena download")
    (folder / "CONCEPT_CPT4.csv").write_text("not a vocabulary table")
    counts = load_athena(duckdb_engine, folder)
    assert counts == {
        "concept": 3, "vocabulary": 1, "domain": 1, "concept_class": 1, "relationship": 1,
        "concept_relationship": 1, "concept_ancestor": 2, "concept_synonym": 1, "drug_strength": 0,
    }  # fmt: skip
    row = duckdb_engine.query("SELECT * FROM concept WHERE concept_id = 45547509").to_pylist()[0]
    assert row["valid_start_date"] == dt.date(1990, 5, 1)
    assert row["standard_concept"] is None and row["invalid_reason"] is None
    # no quoting in Athena files: quotes are part of the name
    assert duckdb_engine.scalar("SELECT concept_name FROM concept WHERE concept_id = 4116087") == (
        'Carcinoma of prostate "CA"'
    )
    assert {c.name: c.type for c in duckdb_engine.describe("concept")}["concept_id"] == "INTEGER"
    assert sorted(duckdb_engine.list_tables()) == sorted(ATHENA_TABLES)


def test_gzip_files_and_lower_case_names(duckdb_engine: DuckDBEngine, tmp_path: Path) -> None:
    files = {name.lower() + (".gz" if name.startswith("CONCEPT.") else ""): text for name, text in GOOD.items()}
    counts = load_athena(duckdb_engine, _write(tmp_path / "athena", files))
    assert counts["concept"] == 3


def test_missing_required_file_is_named(tmp_path: Path) -> None:
    files = dict(GOOD)
    del files["CONCEPT_ANCESTOR.csv"]
    with pytest.raises(OmopCsvError, match=r"missing CONCEPT_ANCESTOR\.csv"):
        athena_files(_write(tmp_path / "athena", files))
    with pytest.raises(OmopCsvError, match="not a folder"):
        athena_files(tmp_path / "nowhere")


def test_optional_files_absent_give_empty_tables(duckdb_engine: DuckDBEngine, tmp_path: Path) -> None:
    files = dict(GOOD)
    del files["CONCEPT_SYNONYM.csv"]
    counts = load_athena(duckdb_engine, _write(tmp_path / "athena", files))
    assert counts["concept_synonym"] == 0 and duckdb_engine.row_count("concept_synonym") == 0


BAD = {
    "impossible date": (
        {"CONCEPT.csv": CONCEPT_HEADER + "\n" + CONCEPTS[0] + "\n" + CONCEPTS[1].replace("19900501", "19900230")},
        ("CONCEPT.csv", 3, "valid_start_date"),
        "not a valid date (YYYYMMDD or YYYY-MM-DD)",
    ),
    "non-numeric id": (
        {"CONCEPT_RELATIONSHIP.csv": GOOD["CONCEPT_RELATIONSHIP.csv"] + "C61\t200962\tMaps to\t20181128\t20991231\t\n"},
        ("CONCEPT_RELATIONSHIP.csv", 3, "concept_id_1"),
        "not a whole number",
    ),
    "missing required value": (
        {"CONCEPT.csv": GOOD["CONCEPT.csv"]
         + tsv(4161028, "", "Condition", "SNOMED", "Clinical Finding", "S", "399490008", 19700101, 20991231, "")},
        ("CONCEPT.csv", 5, "concept_name"),
        "required value missing",
    ),
    "unknown column": (
        {"DOMAIN.csv": "domain_id\tdomain_name\tdomain_concept_id\tcolour\nCondition\tCondition\t19\tred\n"},
        ("DOMAIN.csv", 1, "colour"),
        "not a column of domain",
    ),
    "missing required column": (
        {"DOMAIN.csv": "domain_id\tdomain_name\nCondition\tCondition\n"},
        ("DOMAIN.csv", 1, "domain_concept_id"),
        "required column missing",
    ),
    "too long code": (
        {"CONCEPT.csv": GOOD["CONCEPT.csv"]
         + tsv(1, "x", "Condition", "SNOMED", "Clinical Finding", "S", "9" * 51, 19700101, 20991231, "")},
        ("CONCEPT.csv", 5, "concept_code"),
        "longer than 50 characters",
    ),
    "wrong column count": (
        {"DOMAIN.csv": "domain_id\tdomain_name\tdomain_concept_id\nCondition\tCondition\n"},
        ("DOMAIN.csv", 2, None),
        "malformed CSV",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_input_names_file_line_field_and_keeps_vocabulary(
    duckdb_engine: DuckDBEngine, tmp_path: Path, case: str
) -> None:
    changes, (file, line, field), message = BAD[case]
    load_athena(duckdb_engine, _write(tmp_path / "good", GOOD))
    before = {table: duckdb_engine.query(f"SELECT * FROM {table}") for table in ATHENA_TABLES}
    with pytest.raises(OmopCsvError) as raised:
        load_athena(duckdb_engine, _write(tmp_path / "bad", {**GOOD, **changes}))
    assert (raised.value.file, raised.value.line, raised.value.field) == (file, line, field)
    assert message in str(raised.value)
    for table, rows in before.items():
        assert duckdb_engine.query(f"SELECT * FROM {table}").equals(rows), table
    assert sorted(duckdb_engine.list_tables()) == sorted(ATHENA_TABLES)


def test_line_numbers_stay_exact_across_batches(
    duckdb_engine: DuckDBEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(omop_csv, "BLOCK_SIZE", 4096)  # many small batches
    rows = [
        f"{i}\tconcept {i}\tCondition\tSNOMED\tClinical Finding\tS\tC{i}\t19700101\t20991231\t" for i in range(1, 5001)
    ]
    rows[4321] = rows[4321].replace("19700101", "1970-13-01")
    seen: list[tuple[str, int]] = []
    folder = _write(tmp_path / "big", {**GOOD, "CONCEPT.csv": CONCEPT_HEADER + "\n" + "\n".join(rows) + "\n"})
    with pytest.raises(OmopCsvError, match=r"CONCEPT.csv, line 4323, field valid_start_date"):
        load_athena(duckdb_engine, folder, progress=lambda table, done: seen.append((table, done)))
    assert len([s for s in seen if s[0] == "concept"]) > 5, "the file must be read in several batches"


def test_progress_reports_every_table(duckdb_engine: DuckDBEngine, tmp_path: Path) -> None:
    seen: dict[str, int] = {}
    load_athena(duckdb_engine, _write(tmp_path / "a", GOOD), progress=lambda t, n: seen.__setitem__(t, n))
    assert seen["concept"] == 3 and seen["concept_ancestor"] == 2


def test_read_without_engine(tmp_path: Path) -> None:
    tables = read_athena_tables(_write(tmp_path / "a", GOOD))
    assert tables["concept_relationship"].to_pylist()[0]["valid_start_date"] == dt.date(2018, 11, 28)
    assert tables["drug_strength"].num_rows == 0


@EVERY_ENGINE_SPARK_SLOW
def test_failed_load_keeps_previous_vocabulary_on_every_engine(engine: Engine, tmp_path: Path) -> None:
    load_athena(engine, _write(tmp_path / "good", GOOD))
    bad = {**GOOD, "CONCEPT_ANCESTOR.csv": GOOD["CONCEPT_ANCESTOR.csv"] + "200962\tx\t1\t1\n"}
    with pytest.raises(OmopCsvError, match=r"CONCEPT_ANCESTOR.csv, line 4, field descendant_concept_id"):
        load_athena(engine, _write(tmp_path / "bad", bad))
    assert engine.row_count("concept") == 3
    assert engine.row_count("concept_ancestor") == 2
    assert sorted(engine.list_tables()) == sorted(ATHENA_TABLES)
    got = engine.query("SELECT concept_id_1, concept_id_2 FROM concept_relationship").to_pylist()
    assert got == [{"concept_id_1": 45547509, "concept_id_2": 200962}]


def test_cli_load_athena_loads_with_its_progress_display(tmp_path: Path) -> None:
    """`massalia omop load-athena` once handed the Rich display to a loader expecting a callback and crashed
    with "'Progress' object is not callable" (mypy now sees the mismatch: scripts/test runs it)."""
    runner = CliRunner()
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    result = runner.invoke(app, ["omop", "load-athena", str(_write(tmp_path / "athena", GOOD)), "--home", str(home)])
    assert result.exception is None, repr(result.exception)
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output[result.output.index("{") :])
    assert counts["concept"] == 3 and counts["concept_ancestor"] == 2
