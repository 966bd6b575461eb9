"""Build ``mart_patient`` (one row per person) from the OMOP warehouse, on any engine.

The catalogue's sources are materialized one after the other under staging names (a source reads
earlier ones), then joined to the base source into a staged mart; the mart and its build record
(``mart_build``) replace the old ones in one swap, so readers see the old mart until the new one is
complete. Every statement is a SQLGlot tree in the house dialect, rendered for the engine.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import dataclass
from importlib import metadata

import pyarrow as pa
import sqlglot
from sqlglot import exp

from massalia.engine import HOUSE_DIALECT, Engine, EngineError
from massalia.health.marts.catalogue import SOURCE_PREFIX, Catalogue, Variable, load_catalogue

MART_TABLE = "mart_patient"
BUILD_TABLE = "mart_build"
BASE_SOURCE = "base"

BUILD_SCHEMA = pa.schema(
    [
        ("build_id", pa.string()),
        ("mart_table", pa.string()),
        ("built_at", pa.timestamp("us")),
        ("duration_s", pa.float64()),
        ("engine", pa.string()),
        ("rows", pa.int64()),
        ("variables", pa.int64()),
        ("catalogue_version", pa.int64()),
        ("catalogue_sha256", pa.string()),
        ("cdm_version", pa.string()),
        ("vocabulary_version", pa.string()),
        ("source_release_date", pa.date32()),
        ("data_version", pa.string()),
        ("etl_run_id", pa.string()),
        ("massalia_version", pa.string()),
    ]
)
"""One row per build of the mart: when, from which data and vocabulary, with which catalogue."""


class MartError(EngineError):
    """The mart could not be built; the message names the source or the missing table."""


@dataclass(frozen=True)
class MartBuild:
    """What a build produced (also the row written to ``mart_build``)."""

    build_id: str
    table: str
    rows: int
    variables: int
    duration_s: float
    vocabulary_version: str | None
    data_version: str | None
    source_seconds: dict[str, float]
    """Seconds each source took to materialize (where a slow engine spends its time)."""


def catalogue_fingerprint(catalogue: Catalogue) -> str:
    """SHA-256 of the catalogue's canonical JSON: which definitions built a mart."""
    return hashlib.sha256(catalogue.model_dump_json().encode("utf-8")).hexdigest()


def mart_select(catalogue: Catalogue, tables: dict[str, str]) -> exp.Select:
    """The final SELECT joining every source table (``{source name: table}``) to the base source.

    Examples
    --------
    >>> catalogue = load_catalogue()
    >>> sql = mart_select(catalogue, {s.name: f"t_{s.name}" for s in catalogue.sources}).sql("duckdb")
    >>> sql.startswith("SELECT CAST(s_base.person_id AS BIGINT) AS person_id")
    True
    """
    used = [source.name for source in catalogue.sources if any(v.source == source.name for v in catalogue.variables)]
    if BASE_SOURCE not in tables:
        raise MartError(f"the catalogue needs a '{BASE_SOURCE}' source (one row per person)")
    query = exp.select(*(variable_column(v) for v in catalogue.variables)).from_(
        exp.to_table(tables[BASE_SOURCE]).as_(f"s_{BASE_SOURCE}")
    )
    for name in used:
        if name == BASE_SOURCE:
            continue
        alias = f"s_{name}"
        query = query.join(
            exp.to_table(tables[name]).as_(alias),
            on=exp.EQ(
                this=exp.column("person_id", table=alias), expression=exp.column("person_id", table=f"s_{BASE_SOURCE}")
            ),
            join_type="left",
        )
    return query


def variable_column(variable: Variable) -> exp.Expr:
    """``CAST(COALESCE(<expression>, <default>) AS <type>) AS <name>``, columns qualified by the source alias."""
    expression = sqlglot.parse_one(variable.sql_expression(), read=HOUSE_DIALECT)
    alias = f"s_{variable.source}"
    for column in list(expression.find_all(exp.Column)):
        if not column.table:
            column.set("table", exp.to_identifier(alias))
    if variable.missing.default is not None:
        expression = exp.Coalesce(this=expression, expressions=[_literal(variable.missing.default)])
    cast = exp.cast(expression, exp.DataType.build(variable.type.sql_type, dialect=HOUSE_DIALECT))
    return cast.as_(variable.name)


def _literal(value: bool | int | float | str) -> exp.Expr:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(value)
    return exp.Literal.string(value)


def _source_statement(query: exp.Query, staged: dict[str, str], target: str) -> exp.Create:
    """``CREATE TABLE target AS <query>`` with ``src_<name>`` tables renamed to their staging tables."""
    tree = query.copy()
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if table.name.startswith(SOURCE_PREFIX) and table.name not in ctes:
            source = table.name[len(SOURCE_PREFIX) :]
            alias = table.alias or table.name
            table.replace(exp.to_table(staged[source]).as_(alias))
    return exp.Create(this=exp.to_table(target), kind="TABLE", expression=tree)


def _provenance(engine: Engine) -> dict[str, object]:
    """CDM and vocabulary versions (CDM_SOURCE) and a fingerprint of the loaded ETL inputs."""
    found: dict[str, object] = {
        "cdm_version": None,
        "vocabulary_version": None,
        "source_release_date": None,
        "data_version": None,
        "etl_run_id": None,
    }
    tables = set(engine.list_tables())
    if "cdm_source" in tables:
        rows = engine.query(
            "SELECT cdm_version, vocabulary_version, source_release_date FROM cdm_source "
            "ORDER BY source_release_date DESC NULLS LAST LIMIT 1"
        ).to_pylist()
        if rows:
            found.update(rows[0])
    if "etl_loaded_file" in tables:
        files = engine.query("SELECT sha256, run_id, loaded_at FROM etl_loaded_file ORDER BY sha256").to_pylist()
        if files:
            digest = hashlib.sha256("\n".join(str(row["sha256"]) for row in files).encode("ascii")).hexdigest()
            found["data_version"] = f"{len(files)} files sha256:{digest[:16]}"
            found["etl_run_id"] = max(files, key=lambda row: row["loaded_at"])["run_id"]
    return found


def _text(value: object) -> str | None:
    """A provenance value as text (``None`` stays ``None``)."""
    return None if value is None else str(value)


def build_mart(engine: Engine, *, catalogue: Catalogue | None = None, table: str = MART_TABLE) -> MartBuild:
    """Build the mart table on ``engine`` from its OMOP tables, atomically, and record the build.

    Parameters
    ----------
    engine
        An engine holding an OMOP CDM v5.4 warehouse (PERSON, EPISODE, MEASUREMENT...).
    catalogue
        The variables to build; the shipped catalogue by default.
    table
        Name of the mart table (``mart_patient``).

    Returns
    -------
    MartBuild
        Rows, variables, duration and the data/vocabulary versions recorded in ``mart_build``.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> with connect("duckdb") as engine:  # doctest: +SKIP
    ...     build_mart(engine).rows
    600
    """
    catalogue = catalogue or load_catalogue()
    required = {"person", "episode", "episode_event", "concept", "concept_ancestor", "measurement"}
    missing = sorted(required - set(engine.list_tables()))
    if missing:
        raise MartError(f"not an OMOP warehouse: table(s) {', '.join(missing)} missing (run the ETL first)")
    started = time.perf_counter()
    built_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    staged: dict[str, str] = {}
    timings: dict[str, float] = {}
    mart_staging = engine.staging_name(table)
    build_staging = engine.staging_name(BUILD_TABLE)
    swapped = False
    try:
        for source in catalogue.sources:
            target = engine.staging_name(f"mart_{source.name}")
            statement = _source_statement(source.parsed(), staged, target)
            staged[source.name] = target
            began = time.perf_counter()
            try:
                engine.execute(statement)
            except EngineError as error:
                raise MartError(f"mart source {source.name!r} failed on {engine.name}: {error}") from error
            timings[source.name] = round(time.perf_counter() - began, 3)
        final = mart_select(catalogue, staged)
        engine.execute(exp.Create(this=exp.to_table(mart_staging), kind="TABLE", expression=final))
        rows = engine.row_count(mart_staging)
        provenance = _provenance(engine)
        fingerprint = catalogue_fingerprint(catalogue)
        build_id = hashlib.sha256(f"{built_at.isoformat()}|{fingerprint}".encode()).hexdigest()[:16]
        record = {
            "build_id": build_id,
            "mart_table": table,
            "built_at": built_at,
            "duration_s": round(time.perf_counter() - started, 3),
            "engine": engine.name,
            "rows": rows,
            "variables": len(catalogue.variables),
            "catalogue_version": catalogue.version,
            "catalogue_sha256": fingerprint,
            "massalia_version": _massalia_version(),
            **provenance,
        }
        history = pa.Table.from_pylist([], schema=BUILD_SCHEMA)
        if engine.table_exists(BUILD_TABLE):
            history = engine.query(f"SELECT * FROM {BUILD_TABLE}").select(BUILD_SCHEMA.names).cast(BUILD_SCHEMA)
        engine.write_new_table(
            build_staging, pa.concat_tables([history, pa.Table.from_pylist([record], schema=BUILD_SCHEMA)])
        )
        engine.swap({mart_staging: table, build_staging: BUILD_TABLE})
        swapped = True
    finally:
        leftovers = list(staged.values()) + ([] if swapped else [mart_staging, build_staging])
        for name in leftovers:
            engine.drop_table(name)
    return MartBuild(
        build_id=build_id,
        table=table,
        rows=rows,
        variables=len(catalogue.variables),
        duration_s=round(time.perf_counter() - started, 3),
        vocabulary_version=_text(provenance["vocabulary_version"]),
        data_version=_text(provenance["data_version"]),
        source_seconds=timings,
    )


def last_build(engine: Engine) -> dict[str, object] | None:
    """The most recent row of ``mart_build``, or ``None`` when the mart was never built."""
    if not engine.table_exists(BUILD_TABLE):
        return None
    rows = engine.query(f"SELECT * FROM {BUILD_TABLE} ORDER BY built_at DESC LIMIT 1").to_pylist()
    return rows[0] if rows else None


def _massalia_version() -> str:
    try:
        return metadata.version("massalia")
    except metadata.PackageNotFoundError:
        return "unknown"
