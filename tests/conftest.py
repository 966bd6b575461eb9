"""Fixtures shared by the whole test suite: engines (DuckDB, PostgreSQL, Spark), homes, reference data.

Servers are started once per test run and stopped at its end. A test that needs a server or data
that is absent is skipped locally with the reason, but fails when ``CI=true``: CI must run everything.

Fixture names other tests rely on: ``pg_dsn``, ``spark_session``, ``engine`` (parametrized over
``duckdb``/``postgres``/``spark``), ``duckdb_engine``, ``massalia_home``, ``reference`` (and the
``REFERENCE`` path constant).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from massalia.engine import Engine
from massalia.engine.duckdb import DuckDBEngine

ROOT = Path(__file__).resolve().parents[1]


from reference_data import REFERENCE  # noqa: E402 (one resolution for conftest and test modules)

"""Reference specs and samples (``../shared/reference``, or ``$MASSALIA_REFERENCE``)."""

ENGINE_NAMES = ("duckdb", "postgres", "spark")
PG_VERSION = "15"


def in_ci() -> bool:
    """Whether this run is CI, where nothing may be skipped for want of a service."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test locally, fail it in CI (``CI=true``): CI must run every engine."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


# -- reference data -----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def reference() -> Path:
    """The ``shared/reference`` folder (skip locally / fail in CI when absent)."""
    if not REFERENCE.is_dir():
        unavailable(f"reference data not found at {REFERENCE} (set MASSALIA_REFERENCE)")
    return REFERENCE


# -- PostgreSQL ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server: ``$MASSALIA_PG_DSN``, else a throwaway local cluster for the run."""
    configured = os.environ.get("MASSALIA_PG_DSN")
    if configured:
        yield configured
        return
    try:
        import psycopg  # noqa: F401
    except ImportError:
        unavailable("psycopg is not installed (pip install 'massalia[postgres]')")
    from pg_local import LocalPostgres, find_pg_bindir  # tests/pg_local.py: a test-only helper, not the library's

    if find_pg_bindir() is None:
        unavailable(
            f"no PostgreSQL server: set MASSALIA_PG_DSN or install postgresql-{PG_VERSION} "
            "(bash scripts/install-system)"
        )
    server = LocalPostgres(settings={"max_connections": "50"})
    try:
        # Binaries present but a server that will not start is a real failure, locally too.
        yield server.start()
    finally:
        server.stop()


# -- Spark --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One local SparkSession shared by the whole run (starting one takes several seconds)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        unavailable("pyspark is not installed (pip install 'massalia[spark]')")
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        unavailable("no Java runtime for Spark (install openjdk-17-jre-headless: bash scripts/install-system)")
    from massalia.engine.spark import build_session

    # Tests run many tiny jobs: the quick-start JIT and serial GC halve their time on 2 cores.
    session = build_session(tmp_path_factory.mktemp("spark"), java_options="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    try:
        yield session
    finally:
        session.stop()


# -- engines ------------------------------------------------------------------------------------
def open_engine(name: str, request: pytest.FixtureRequest) -> tuple[Engine, Any]:
    """A clean engine called ``name`` and the function that disposes of it."""
    if name == "duckdb":
        duck = DuckDBEngine()
        return duck, duck.close
    scratch = f"t_{uuid.uuid4().hex[:12]}"
    if name == "postgres":
        from psycopg.pq import TransactionStatus

        from massalia.engine.postgres import PostgresEngine

        pg = PostgresEngine(request.getfixturevalue("pg_dsn"), schema=scratch)

        def dispose_pg() -> None:
            try:
                if pg.connection.info.transaction_status != TransactionStatus.IDLE:
                    pg.execute_native("ROLLBACK")  # a failing test may leave a transaction open
                pg.drop_schema()
            finally:
                pg.close()

        return pg, dispose_pg
    if name == "spark":
        from massalia.engine.spark import SparkEngine

        spark = SparkEngine(request.getfixturevalue("spark_session"), database=scratch)

        def dispose_spark() -> None:
            try:
                spark.drop_database()
            finally:
                spark.close()

        return spark, dispose_spark
    raise ValueError(f"unknown engine {name!r}")


@pytest.fixture(params=[pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in ENGINE_NAMES])
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A clean engine per test, for each of DuckDB, PostgreSQL and Spark (markers ``-m <name>``)."""
    opened, dispose = open_engine(request.param, request)
    try:
        yield opened
    finally:
        dispose()


@pytest.fixture
def duckdb_engine() -> Iterator[DuckDBEngine]:
    """An in-memory DuckDB engine, for DuckDB-only tests."""
    with DuckDBEngine() as duck:
        yield duck


@pytest.fixture
def massalia_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``MASSALIA_HOME`` (the environment variable points at it for the test)."""
    folder = tmp_path / "massalia-home"
    folder.mkdir()
    monkeypatch.setenv("MASSALIA_HOME", str(folder))
    return folder


# -- a small generated oncology warehouse, built once per run -----------------------------------
DEMO_PATIENTS = 600
"""Patients of the shared demo warehouse: enough for every cancer, stage and treatment line to occur."""


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DuckDB OMOP warehouse file built by the real generator + ETL (seed 11, 600 patients, with documents).

    Read-only by convention: open it with ``DuckDBEngine(path, read_only=True)`` or copy it first
    (``shutil.copy``) before writing. The extracts (with ``ground_truth.json`` and ``truth/``) are in
    the sibling folder ``sources/``. The ETL's warnings (mapping constants missing from the
    vocabulary...) are in the sibling file ``etl_warnings.txt``, one a line.
    """
    from massalia.engine.duckdb import DuckDBEngine
    from massalia.health.etl import run_etl
    from massalia.health.synth import generate

    root = tmp_path_factory.mktemp("demo-warehouse")
    sources = root / "sources"
    generate(sources, DEMO_PATIENTS, seed=11, chunk_size=DEMO_PATIENTS, with_documents=True)
    path = root / "warehouse.duckdb"
    with DuckDBEngine(path) as engine:
        report = run_etl(engine, sources, metadata_url=f"sqlite:///{(root / 'metadata.sqlite').as_posix()}")
    (root / "etl_warnings.txt").write_text("".join(f"{w}\n" for w in report.warnings), encoding="utf-8")
    return path
