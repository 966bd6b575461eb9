"""Spark: the scale-out engine (pyspark; local mode in tests), tables as managed Parquet tables."""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession, functions
from pyspark.sql import types as st
from pyspark.sql.pandas.types import to_arrow_schema
from sqlglot import exp

from massalia.engine.base import (
    Capabilities,
    Column,
    Engine,
    EngineError,
    TableData,
    check_identifier,
)

# Spark type names (``DataType.simpleString()``) → house-dialect (DuckDB) names.
_HOUSE_TYPES = {
    "tinyint": "TINYINT",
    "smallint": "SMALLINT",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp_ntz": "TIMESTAMP",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "binary": "BLOB",
    "void": "NULL",
}

SESSION_CONF = {
    # Naive timestamps everywhere, as in DuckDB and PostgreSQL's ``timestamp``.
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.sources.default": "parquet",
}
"""SQL settings every SparkEngine applies to its own session."""


_BOUNDARY_UNITS = frozenset(("year", "quarter", "month", "day", "hour", "minute", "second"))


_JAVA_TIME_CODES = {"Y": "yyyy", "y": "yy", "m": "MM", "d": "dd", "H": "HH", "I": "hh", "M": "mm", "S": "ss",
                    "f": "SSSSSS", "j": "DDD", "p": "a", "b": "MMM", "B": "MMMM"}  # fmt: skip


def java_time_format(duckdb_format: str) -> str:
    """Spark's (Java) datetime pattern for a DuckDB ``strptime`` format; letters outside codes are quoted.

    Examples
    --------
    >>> java_time_format("%Y-%m-%dT%H:%M:%S")
    "yyyy-MM-dd'T'HH:mm:ss"
    """
    parts: list[str] = []
    characters = iter(duckdb_format)
    for character in characters:
        if character == "%":
            code = next(characters, "")
            if code == "%":
                parts.append("%")
            elif code in _JAVA_TIME_CODES:
                parts.append(_JAVA_TIME_CODES[code])
            else:
                raise EngineError(f"strptime format {duckdb_format!r}: %{code} has no Spark equivalent here")
        elif character.isalpha():
            parts.append(f"'{character}'")
        elif character == "'":
            parts.append("''")
        else:
            parts.append(character)
    return "".join(parts)


def _fix_duckdb_functions(node: exp.Expr) -> exp.Expr:
    """DuckDB-only functions → Spark: TRY_STRPTIME, regexp_full_match, regexp_extract's default group, to_seconds."""
    # DuckDB's TRY_STRPTIME gives NULL where the text does not parse: Spark's try_to_timestamp does too.
    if (
        isinstance(node, exp.Anonymous)
        and node.name.upper() == "TRY_STRPTIME"
        and len(node.expressions) == 2
        and isinstance(node.expressions[1], exp.Literal)
    ):
        pattern = exp.Literal.string(java_time_format(node.expressions[1].this))
        return exp.Anonymous(this="TRY_TO_TIMESTAMP", expressions=[node.expressions[0].copy(), pattern])
    # regexp_full_match must match the whole text; RLIKE matches anywhere.
    if isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
        anchored = exp.Literal.string(f"^(?:{node.expression.this})$")
        return exp.RegexpLike(this=node.this.copy(), expression=anchored)
    # DuckDB's regexp_extract defaults to group 0 (the whole match), Spark's to group 1.
    if isinstance(node, exp.RegexpExtract) and node.args.get("group") is None:
        node = node.copy()
        node.set("group", exp.Literal.number(0))
        return node
    # DuckDB's to_seconds(n) is an interval of n seconds.
    if isinstance(node, exp.Anonymous) and node.name.upper() == "TO_SECONDS" and len(node.expressions) == 1:
        seconds = exp.cast(node.expressions[0].copy(), exp.DataType.build("double"))
        one_second = exp.Interval(this=exp.Literal.string("1"), unit=exp.var("SECOND"))
        return exp.paren(exp.Mul(this=seconds, expression=one_second))
    return node


def _fix_for_spark(tree: exp.Expr) -> exp.Expr:
    """Rewrite house-dialect constructs whose plain SQLGlot rendering means something else on Spark."""
    tree = tree.transform(_fix_duckdb_functions)

    def fix(node: exp.Expr) -> exp.Expr:
        # DuckDB's date_diff counts unit boundaries crossed; Spark's DATEDIFF(unit, …) counts whole
        # elapsed units. Truncating both ends to the unit first gives DuckDB's answer.
        if isinstance(node, exp.DateDiff) and node.args.get("unit") is not None:
            unit = node.args["unit"].name.lower()
            if unit in _BOUNDARY_UNITS:
                for key in ("this", "expression"):
                    truncated = exp.Anonymous(
                        this="DATE_TRUNC", expressions=[exp.Literal.string(unit.upper()), node.args[key].copy()]
                    )
                    node.set(key, truncated)
            return node
        # DuckDB numbers weekdays 0 (Sunday) to 6; Spark's DAYOFWEEK gives 1 (Sunday) to 7.
        if isinstance(node, exp.DayOfWeek):
            return exp.paren(
                exp.Sub(
                    this=exp.Anonymous(this="DAYOFWEEK", expressions=[node.this.copy()]),
                    expression=exp.Literal.number(1),
                )
            )
        return node

    return tree.transform(fix)


def build_session(
    folder: str | Path | None = None,
    *,
    master: str = "local[2]",
    shuffle_partitions: int = 4,
    java_options: str = "",
    persistent_catalog: bool = False,
) -> SparkSession:
    """Start (or reuse) a local SparkSession bound to 127.0.0.1 with its files under ``folder``.

    Parameters
    ----------
    folder
        Holds the warehouse (managed tables) and Derby's metastore files; a new temporary
        folder when ``None``.
    master
        Spark master URL; ``local[2]`` uses two cores of this machine.
    shuffle_partitions
        Partitions after a shuffle: the default 200 only adds overhead on small local data.
    java_options
        Extra options for the driver JVM (tests use a quick-start JIT and GC, for instance).
    persistent_catalog
        Keep the table catalog in a metastore under ``folder`` (Hive's, on embedded Derby), so the
        tables one process writes are there for the next (``massalia init`` then ``massalia load``).
        Without it the catalog lives as long as the session. Embedded Derby admits one process at a
        time: a shared deployment points Spark at its own metastore instead.

    Examples
    --------
    >>> session = build_session()  # doctest: +SKIP
    >>> SparkEngine(session, database="demo").scalar("SELECT 1 + 1")  # doctest: +SKIP
    2
    """
    root = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="massalia-spark-"))
    root.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master(master)
        .appName("massalia")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.sql.warehouse.dir", str((root / "warehouse").resolve()))
        .config(
            "spark.driver.extraJavaOptions", f"-Dderby.system.home={(root / 'derby').resolve()} {java_options}".strip()
        )
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
    )
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    if persistent_catalog:
        metastore = (root / "metastore_db").resolve()
        builder = builder.config(
            "spark.hadoop.javax.jdo.option.ConnectionURL", f"jdbc:derby:;databaseName={metastore};create=true"
        ).enableHiveSupport()
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def house_type_name(data_type: st.DataType) -> str:
    """House-dialect name of a Spark SQL type.

    Examples
    --------
    >>> house_type_name(st.LongType()), house_type_name(st.DecimalType(18, 3))
    ('BIGINT', 'DECIMAL(18,3)')
    """
    if isinstance(data_type, st.DecimalType):
        return f"DECIMAL({data_type.precision},{data_type.scale})"
    if isinstance(data_type, st.ArrayType):
        return f"{house_type_name(data_type.elementType)}[]"
    name = data_type.simpleString()
    return _HOUSE_TYPES.get(name, name.upper())


class SparkEngine(Engine):
    """Engine on Spark SQL, in one database (namespace) of a SparkSession.

    Spark has no multi-statement transactions, no enforced keys and no indexes: the capability
    flags say so, ``transaction()`` and ``create_index()`` raise ``UnsupportedOperation``, and
    ``create_tables`` swaps tables one after the other (a failure while *writing* still leaves
    every old table intact, because nothing is swapped before all tables are written).

    Parameters
    ----------
    session
        An existing SparkSession; the engine works in a child session (``newSession()``) so its
        current database and settings never leak into the caller's. ``None`` builds a local one.
    database
        Working database, created if absent; default ``default``.
    folder
        Where a session built here keeps its warehouse and metastore (see :func:`build_session`); a new
        temporary folder when ``None``. Ignored when ``session`` is given.
    """

    name = "spark"
    dialect = "spark"
    capabilities = Capabilities(transactions=False, atomic_swap=False, primary_keys=False, indexes=False)

    def __init__(
        self, session: SparkSession | None = None, *, database: str | None = None, folder: str | Path | None = None
    ) -> None:
        self._owns_session = session is None
        parent = session if session is not None else build_session(folder)
        self.spark = parent.newSession()
        for key, value in SESSION_CONF.items():
            self.spark.conf.set(key, value)
        self.database = check_identifier(database or "default").lower()
        self._lock = threading.RLock()
        self._execute_sql(f"CREATE DATABASE IF NOT EXISTS {self.database}")
        self._execute_sql(f"USE {self.database}")

    @classmethod
    def for_home(cls, root: Path, **options: object) -> SparkEngine:
        """Spark for the home folder ``root``: a local session keeping its tables under ``root/spark``.

        ``session=`` reuses a running SparkSession (a cluster's, or the tests' shared one) instead.
        """
        if options.get("session") is None:
            options["session"] = build_session(Path(root) / "spark", persistent_catalog=True)
        return cls(**options)  # type: ignore[arg-type]

    @property
    def location(self) -> str:
        """The catalog's warehouse folder and database."""
        return f"spark:{self.spark.conf.get('spark.sql.warehouse.dir')}/{self.database}"

    def _rewrite(self, tree: exp.Expr) -> exp.Expr:
        """Fix the known gaps between DuckDB's SQL and Spark's in SQLGlot's rendering."""
        return _fix_for_spark(tree)

    _job_group: str = ""

    def _begin_limit(self) -> None:
        # Jobs started by this thread from now on belong to one group, which the time limit cancels.
        self._job_group = f"massalia-limit-{uuid.uuid4().hex}"
        self.spark.sparkContext.setJobGroup(self._job_group, "Massalia query under a time limit", True)

    def _interrupt(self) -> None:
        # Spark stops a cancelled job's tasks at their interruption points (between batches of rows); a
        # stage that has none runs on until it ends, and the limit then refuses the block's next statement.
        self.spark.sparkContext.cancelJobGroup(self._job_group)

    def _end_limit(self) -> None:
        self.spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]

    def _sql(self, sql: str) -> DataFrame:
        try:
            return self.spark.sql(sql)
        except (PySparkException, ValueError) as error:
            raise EngineError(f"Spark failed: {error}\n{sql}") from error

    def _fetch_arrow(self, sql: str) -> pa.Table:
        with self._lock:
            frame = self._sql(sql)
            try:
                if self._limit is None:
                    return frame.toArrow()
                # Under a time limit: collect on this thread, whose job group the limit cancels (toArrow
                # runs its job on a server thread of its own, outside the group).
                schema = to_arrow_schema(frame.schema)
                return pa.Table.from_pylist([row.asDict() for row in frame.collect()], schema=schema)
            except (PySparkException, Py4JJavaError) as error:
                raise EngineError(f"Spark failed: {error}\n{sql}") from error

    def _execute_sql(self, sql: str) -> None:
        # spark.sql() runs DDL and DML eagerly; a SELECT is analysed (errors raised) but not run.
        with self._lock:
            self._sql(sql)

    def _frame(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> tuple[DataFrame, int]:
        # Spark 4 builds a DataFrame straight from Arrow; the batches are gathered in the
        # driver first (the local mode this engine targets); a cluster would read Parquet instead.
        table = pa.Table.from_batches(list(batches), schema=schema)
        try:
            return self.spark.createDataFrame(table), table.num_rows
        except (PySparkException, TypeError, ValueError) as error:
            raise EngineError(f"Spark cannot take this Arrow data: {error}") from error

    def write_new_table(self, table: str, data: TableData, *, schema: pa.Schema | None = None) -> int:
        """Write ``data`` into a new table; Parquet files are read by Spark itself, not via the driver."""
        if not isinstance(data, Path) or schema is not None:
            return super().write_new_table(table, data, schema=schema)
        if self.table_exists(table):
            raise EngineError(f"table {table} already exists")
        with self._lock:
            try:
                frame = self.spark.read.parquet(str(data))
                frame.write.format("parquet").mode("errorifexists").saveAsTable(
                    f"{self.database}.{check_identifier(table)}"
                )
            except PySparkException as error:
                raise EngineError(f"Spark could not load {data} into table {table}: {error}") from error
        return self.row_count(table)

    def _write_table(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        frame, rows = self._frame(schema, batches)
        with self._lock:
            try:
                frame.write.format("parquet").mode("errorifexists").saveAsTable(f"{self.database}.{name}")
            except PySparkException as error:
                raise EngineError(f"Spark could not write table {name}: {error}") from error
        return rows

    def _append(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        frame, rows = self._frame(schema, batches)
        target = f"{self.database}.{check_identifier(name)}"
        with self._lock:
            try:
                fields = self.spark.table(target).schema.fields
                unknown = set(frame.columns) - {f.name for f in fields}
                if unknown:
                    raise EngineError(f"table {name} has no column(s) {', '.join(sorted(unknown))}")
                # insertInto matches columns by position: order by name, NULL for absent columns
                # (as INSERT INTO t (columns…) does on the other engines).
                projection = [
                    functions.col(f.name)
                    if f.name in frame.columns
                    else functions.lit(None).cast(f.dataType).alias(f.name)
                    for f in fields
                ]
                frame.select(*projection).write.insertInto(target)
            except PySparkException as error:
                raise EngineError(f"Spark could not append to table {name}: {error}") from error
        return rows

    def list_tables(self) -> list[str]:
        """Names of the tables (not views) of the working database, sorted."""
        with self._lock:
            tables = self.spark.catalog.listTables(self.database)
        return sorted(t.name.lower() for t in tables if not t.isTemporary and t.tableType != "VIEW")

    def describe(self, table: str) -> list[Column]:
        """Columns of ``table`` with house-dialect type names."""
        target = f"{self.database}.{check_identifier(table)}"
        with self._lock:
            try:
                schema = self.spark.table(target).schema
            except PySparkException as error:
                raise EngineError(f"no table named {table} in Spark database {self.database}") from error
        return [Column(f.name, house_type_name(f.dataType), f.nullable) for f in schema.fields]

    def drop_database(self) -> None:
        """Drop the working database and its tables (throwaway test databases)."""
        if self.database == "default":
            raise EngineError("refusing to drop Spark's default database")
        self._execute_sql("USE default")
        self._execute_sql(f"DROP DATABASE IF EXISTS {self.database} CASCADE")

    def close(self) -> None:
        """Release the engine; stops the SparkSession only if this engine started it."""
        if self._owns_session:
            self.spark.stop()


__all__ = ["SESSION_CONF", "SparkEngine", "build_session", "house_type_name"]
