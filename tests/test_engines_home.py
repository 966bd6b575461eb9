"""A home opens on every engine and the main commands run there; homes that were never made are refused.

The engine matrix: ``init``, a load of a small generated dataset, ``quality``, a mart build and a
cohort count, on DuckDB, PostgreSQL and Spark (Spark small, ``slow``). Then the crashers of issue 11
that live at the level of a home: ``omop load-athena``, a mistyped ``--home``, an empty audit log.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from massalia.cli import app
from massalia.config import Home, HomeNotInitializedError
from massalia.engine import Engine
from massalia.health.cohorts import import_circe
from massalia.health.cohorts.service import generate_cohort
from massalia.health.etl import run_etl
from massalia.health.marts.builder import build_mart
from massalia.health.omop.schema import create_cdm_schema
from massalia.health.omop.vocabulary import load_demo_vocabulary
from massalia.health.quality import run_quality
from massalia.health.synth import generate
from massalia.warehouse import open_warehouse

runner = CliRunner()

PATIENTS = 40
"""Small on purpose: Spark runs every statement as a job on two cores."""

EVERY_ENGINE = pytest.mark.parametrize(
    "engine_name",
    [
        pytest.param("duckdb", marks=pytest.mark.duckdb, id="duckdb"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow], id="spark"),
    ],
)


def _flat(output: str) -> str:
    """Rich wraps long lines at the terminal width: compare text with single spaces."""
    return " ".join(output.split())


@pytest.fixture
def home_on(engine_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Home, dict[str, Any]]]:
    """A fresh home and the options that open its warehouse on ``engine_name`` (a scratch schema or database)."""
    scratch = f"h_{uuid.uuid4().hex[:10]}"
    options: dict[str, Any] = {}
    if engine_name == "postgres":
        options = {"dsn": request.getfixturevalue("pg_dsn"), "schema": scratch}
    elif engine_name == "spark":
        options = {"session": request.getfixturevalue("spark_session"), "database": scratch}
    home = Home(tmp_path / "home")
    yield home, options
    with open_warehouse(home, engine_name, create=True, **options) as engine:
        if engine_name == "postgres":
            engine.drop_schema()  # type: ignore[attr-defined]
        elif engine_name == "spark":
            engine.drop_database()  # type: ignore[attr-defined]


@EVERY_ENGINE
def test_a_home_opens_loads_the_generated_sites_and_runs_the_main_commands(
    engine_name: str, home_on: tuple[Home, dict[str, Any]]
) -> None:
    home, options = home_on
    home.ensure()
    generate(home.sources, PATIENTS, seed=5, chunk_size=PATIENTS, with_documents=False)
    with open_warehouse(home, engine_name, create=True, **options) as engine:
        assert engine.name == engine_name
        home.mark_initialized(engine.name)
        create_cdm_schema(engine)
        load_demo_vocabulary(engine)
        report = run_etl(engine, home.sources, metadata_url=home.metadata_url)
        # The load really filled the warehouse (an empty warehouse made quality "pass" before), and
        # with the rows DuckDB gives for the same files: results compared, not only "no error".
        assert engine.row_count("person") == PATIENTS
        assert engine.row_count("measurement") > 0 and engine.row_count("observation") > 0
        assert report.status == "success"
        counts = {table: engine.row_count(table) for table in CLINICAL_TABLES}
        assert counts == _duckdb_counts(home.sources, home.root.parent / "reference")
        quality = run_quality(engine, out_dir=home.reports)
        assert quality.summary()["status"].get("error", 0) == 0, [
            (r.check_name, r.table, r.field, r.message) for r in quality.results if r.status == "error"
        ]
        # The checks the demo used to fail on its own data (units, standard concepts, keys) now pass.
        failed = [
            (r.check_name, r.table, r.field, r.concept_id)
            for r in quality.results
            if r.status == "failed" and r.check_name in DEMO_MUST_PASS
        ]
        assert not failed, failed
        assert build_mart(engine).rows == PATIENTS
        cohort = import_circe('{"PrimaryCriteria": {"CriteriaList": [{"ConditionOccurrence": {}}]}}')
        persons = generate_cohort(engine, cohort).persons
        assert 0 < persons <= _persons_with_a_condition(engine)


DEMO_MUST_PASS = ("plausibleUnitConceptIds", "isStandardValidConcept", "isForeignKey", "isRequired")
"""Check types the generated demo data must pass on every engine."""

CLINICAL_TABLES = (
    "person", "observation_period", "visit_occurrence", "condition_occurrence", "drug_exposure",
    "procedure_occurrence", "measurement", "observation", "death", "episode", "episode_event",
)  # fmt: skip


def _duckdb_counts(sources: Path, folder: Path) -> dict[str, int]:
    """Rows per clinical table when the same files are loaded on DuckDB (the reference engine)."""
    folder.mkdir()
    with open_warehouse(Home(folder), "duckdb", create=True) as duck:
        run_etl(duck, sources, metadata_url=f"sqlite:///{(folder / 'metadata.sqlite').as_posix()}")
        return {table: duck.row_count(table) for table in CLINICAL_TABLES}


def _persons_with_a_condition(engine: Engine) -> int:
    return int(engine.scalar("SELECT count(DISTINCT person_id) FROM condition_occurrence"))  # type: ignore[arg-type]


@pytest.mark.spark
def test_open_warehouse_opens_spark_from_a_home(tmp_path: Path, spark_session: Any) -> None:
    """``MASSALIA_ENGINE=spark`` crashed: open_warehouse passed ``warehouse_dir=`` SparkEngine refused."""
    home = Home(tmp_path / "home").ensure()
    database = f"h_{uuid.uuid4().hex[:10]}"
    with open_warehouse(home, "spark", create=True, session=spark_session, database=database) as engine:
        try:
            assert engine.name == "spark" and engine.scalar("SELECT 40 + 2") == 42
        finally:
            engine.drop_database()  # type: ignore[attr-defined]


SPARK_STEP = """
import sys
from pathlib import Path
import pyarrow as pa
from massalia.config import Home
from massalia.warehouse import open_warehouse
home = Home(Path(sys.argv[1]))
with open_warehouse(home, "spark", create=sys.argv[2] == "write") as engine:
    if sys.argv[2] == "write":
        home.mark_initialized(engine.name)
        engine.create_table("kept", pa.table({"n": [1, 2, 3]}))
    print("tables:", engine.list_tables(), "rows:", engine.row_count("kept"), flush=True)
"""


@pytest.mark.spark
@pytest.mark.slow
def test_a_spark_home_keeps_its_tables_from_one_command_to_the_next(tmp_path: Path, spark_session: Any) -> None:
    """`massalia init --engine spark` then `massalia info`: each command is a new process with a new session."""
    import subprocess
    import sys

    home = tmp_path / "home"
    script = tmp_path / "step.py"
    script.write_text(SPARK_STEP, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "PYSPARK_PYTHON": sys.executable}
    outputs = []
    for step in ("write", "read"):
        done = subprocess.run(
            [sys.executable, str(script), str(home), step], capture_output=True, text=True, env=env, timeout=600,
            cwd=tmp_path, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        outputs.append(done.stdout)
    assert "tables: ['kept'] rows: 3" in outputs[1], outputs
    assert (home / "spark" / "metastore_db").is_dir()


def test_open_warehouse_takes_the_engine_recorded_by_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASSALIA_ENGINE", raising=False)
    home = Home(tmp_path / "home")
    home.mark_initialized("duckdb")
    assert home.engine == "duckdb"
    with open_warehouse(home) as engine:
        assert engine.name == "duckdb"
    assert home.warehouse.is_file()


# -- homes that were never initialized -------------------------------------------------------------
READING_COMMANDS = [
    pytest.param(["info"], True, id="info"),
    pytest.param(["quality"], True, id="quality"),
    pytest.param(["etl", "runs"], True, id="etl runs"),
    pytest.param(["etl", "rejects"], True, id="etl rejects"),
    pytest.param(["audit", "verify"], True, id="audit verify"),
    # The mart commands make the home's folders before they open the warehouse (cli_marts.py is
    # another module's); the refusal itself still comes from open_warehouse.
    pytest.param(["mart", "build"], False, id="mart build"),
]


@pytest.mark.parametrize(("command", "creates_nothing"), READING_COMMANDS)
def test_a_mistyped_home_is_refused(tmp_path: Path, command: list[str], creates_nothing: bool) -> None:
    """A mistyped ``--home`` created an empty home, then crashed with a traceback and the SQL text."""
    typo = tmp_path / "massalia-dtaa"
    result = runner.invoke(app, [*command, "--home", str(typo)])
    assert result.exit_code == 1, result.output
    assert "not an initialized Massalia home" in _flat(result.output)
    assert "Traceback" not in result.output and "SELECT" not in result.output
    assert not Home(typo).marker.exists() and not Home(typo).warehouse.exists()
    if creates_nothing:
        assert not typo.exists(), f"massalia {' '.join(command)} created {typo}"


def test_open_warehouse_refuses_a_folder_that_is_not_a_home(tmp_path: Path) -> None:
    with pytest.raises(HomeNotInitializedError, match="not an initialized Massalia home"):
        open_warehouse(Home(tmp_path / "nowhere"))
    assert not (tmp_path / "nowhere").exists()


def test_init_makes_a_home_that_reading_commands_accept(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(folder)]).exit_code == 0
    assert Home(folder).initialized and Home(folder).engine == "duckdb"
    info = runner.invoke(app, ["info", "--home", str(folder)])
    assert info.exit_code == 0 and "person" in info.output


def test_audit_verify_on_a_home_whose_log_is_still_empty_succeeds(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(folder)]).exit_code == 0
    # `init` is an audited operator act now: a home whose log is still empty is one made before any
    # audited action (an earlier release's home).
    shutil.rmtree(folder / "ledger")
    result = runner.invoke(app, ["audit", "verify", "--home", str(folder)])
    assert result.exit_code == 0, result.output
    assert "audit log is empty" in _flat(result.output)


# -- omop load-athena ------------------------------------------------------------------------------
ATHENA = {
    "CONCEPT.csv": "concept_id\tconcept_name\tdomain_id\tvocabulary_id\tconcept_class_id\tstandard_concept\t"
    "concept_code\tvalid_start_date\tvalid_end_date\tinvalid_reason\n"
    "200962\tPrimary malignant neoplasm of prostate\tCondition\tSNOMED\tClinical Finding\tS\t93974005\t"
    "19700101\t20991231\t\n"
    "45547509\tMalignant neoplasm of prostate\tCondition\tICD10\tICD10 Hierarchy\t\tC61\t19900501\t20991231\t\n",
    "VOCABULARY.csv": "vocabulary_id\tvocabulary_name\tvocabulary_reference\tvocabulary_version\t"
    "vocabulary_concept_id\nSNOMED\tSystematized Nomenclature of Medicine\t\t\t44819097\n",
    "CONCEPT_RELATIONSHIP.csv": "concept_id_1\tconcept_id_2\trelationship_id\tvalid_start_date\tvalid_end_date\t"
    "invalid_reason\n45547509\t200962\tMaps to\t20181128\t20991231\t\n",
    "DOMAIN.csv": "domain_id\tdomain_name\tdomain_concept_id\nCondition\tCondition\t19\n",
    "CONCEPT_CLASS.csv": "concept_class_id\tconcept_class_name\tconcept_class_concept_id\n"
    "Clinical Finding\tClinical Finding\t44819005\n",
    "RELATIONSHIP.csv": "relationship_id\trelationship_name\tis_hierarchical\tdefines_ancestry\t"
    "reverse_relationship_id\trelationship_concept_id\nMaps to\tNon-standard to Standard map (OMOP)\t0\t0\t"
    "Mapped from\t44818977\n",
    "CONCEPT_ANCESTOR.csv": "ancestor_concept_id\tdescendant_concept_id\tmin_levels_of_separation\t"
    "max_levels_of_separation\n200962\t200962\t0\t0\n",
}


def test_omop_load_athena_command_loads_with_its_progress_bar(tmp_path: Path) -> None:
    """``massalia omop load-athena DIR`` crashed: "TypeError: 'Progress' object is not callable"."""
    folder = tmp_path / "athena"
    folder.mkdir()
    for name, text in ATHENA.items():
        (folder / name).write_text(text, encoding="utf-8")
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    result = runner.invoke(app, ["omop", "load-athena", str(folder), "--home", str(home)])
    assert result.exit_code == 0, result.output
    assert '"concept": 2' in result.output and '"concept_relationship": 1' in result.output
    with open_warehouse(Home(home)) as engine:
        assert engine.row_count("concept") == 2


def test_omop_load_athena_names_a_bad_folder_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "athena"
    folder.mkdir()
    (folder / "CONCEPT.csv").write_text(ATHENA["CONCEPT.csv"], encoding="utf-8")
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    result = runner.invoke(app, ["omop", "load-athena", str(folder), "--home", str(home)])
    assert result.exit_code == 1 and "missing VOCABULARY.csv, DOMAIN.csv" in _flat(result.output)
