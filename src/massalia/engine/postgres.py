"""PostgreSQL: the shared-server engine of standard OHDSI deployments (psycopg 3, COPY bulk loads)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlglot
from psycopg import sql as pgsql
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader
from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from massalia.engine.base import (
    HOUSE_DIALECT,
    Capabilities,
    Column,
    Engine,
    EngineError,
    Query,
    check_identifier,
)

DSN_ENV = "MASSALIA_PG_DSN"
"""Environment variable holding the default connection string."""

COPY_CHUNK_ROWS = 65_536
"""Rows per CSV chunk sent through COPY: bounds memory whatever the batch size."""

_CSV_OPTIONS = pacsv.WriteOptions(include_header=False, batch_size=COPY_CHUNK_ROWS)

# Arrow → PostgreSQL column types for tables created from Arrow data.
_PG_TYPES: dict[pa.DataType, str] = {
    pa.bool_(): "boolean",
    pa.int8(): "smallint",
    pa.int16(): "smallint",
    pa.int32(): "integer",
    pa.int64(): "bigint",
    pa.uint8(): "smallint",
    pa.uint16(): "integer",
    pa.uint32(): "bigint",
    pa.uint64(): "numeric(20)",
    pa.float16(): "real",
    pa.float32(): "real",
    pa.float64(): "double precision",
    pa.string(): "text",
    pa.large_string(): "text",
    pa.string_view(): "text",
    pa.binary(): "bytea",
    pa.large_binary(): "bytea",
    pa.date32(): "date",
    pa.date64(): "date",
    pa.null(): "text",
}

# PostgreSQL type OID → Arrow type for query results (numeric and unknown types handled apart).
_ARROW_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    17: pa.binary(),
    18: pa.string(),
    19: pa.string(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    25: pa.string(),
    26: pa.int64(),
    114: pa.string(),
    700: pa.float32(),
    701: pa.float64(),
    1042: pa.string(),
    1043: pa.string(),
    1082: pa.date32(),
    1083: pa.time64("us"),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1186: pa.duration("us"),
    2950: pa.string(),
    3802: pa.string(),
}
_NUMERIC_OID = 1700

# PostgreSQL type names (format_type) → house-dialect (DuckDB) names, as DuckDB's describe reports them.
_HOUSE_TYPES = {
    "smallint": "SMALLINT",
    "integer": "INTEGER",
    "bigint": "BIGINT",
    "real": "FLOAT",
    "double precision": "DOUBLE",
    "boolean": "BOOLEAN",
    "text": "VARCHAR",
    "character varying": "VARCHAR",
    "character": "VARCHAR",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "time without time zone": "TIME",
    "interval": "INTERVAL",
    "bytea": "BLOB",
    "uuid": "UUID",
    "json": "JSON",
    "jsonb": "JSON",
}


def pg_type_for(arrow_type: pa.DataType) -> str:
    """PostgreSQL column type able to hold values of ``arrow_type``.

    Examples
    --------
    >>> pg_type_for(pa.int64())
    'bigint'
    """
    if pa.types.is_dictionary(arrow_type):
        return pg_type_for(arrow_type.value_type)
    if pa.types.is_timestamp(arrow_type):
        return "timestamptz" if arrow_type.tz else "timestamp"
    if pa.types.is_time(arrow_type):
        return "time"
    if pa.types.is_decimal(arrow_type):
        return f"numeric({arrow_type.precision},{arrow_type.scale})"
    try:
        return _PG_TYPES[arrow_type]
    except KeyError:
        raise EngineError(f"no PostgreSQL column type for Arrow type {arrow_type}") from None


def house_type_name(pg_type: str) -> str:
    """House-dialect name of a PostgreSQL type as ``format_type`` spells it.

    Examples
    --------
    >>> house_type_name("character varying(50)"), house_type_name("numeric(18,3)")
    ('VARCHAR', 'DECIMAL(18,3)')
    """
    base, _, modifier = pg_type.partition("(")
    if base == "numeric":
        return f"DECIMAL({modifier.rstrip(')')})" if modifier else "DECIMAL"
    if base.endswith("[]"):
        return f"{house_type_name(base[:-2])}[]"
    return _HOUSE_TYPES.get(base.strip(), pg_type.upper())


_WHOLE_DATE_PARTS = frozenset(
    ("year", "month", "day", "hour", "minute", "quarter", "week", "dow", "doy", "isodow", "isoyear",
     "decade", "century", "millennium", "yearofweek", "dayofweek", "dayofyear")
)  # fmt: skip


def _fix_for_postgres(tree: exp.Expression) -> exp.Expression:
    """Rewrite house-dialect constructs whose plain SQLGlot rendering fails on PostgreSQL 15."""
    annotated = annotate_types(tree, dialect=HOUSE_DIALECT)

    def fix(node: exp.Expression) -> exp.Expression:
        # PostgreSQL only has round(numeric, int); DuckDB rounds doubles and returns a double.
        if isinstance(node, exp.Round) and node.args.get("decimals") is not None:
            argument = node.this
            if argument.type is not None and argument.type.is_type(*exp.DataType.INTEGER_TYPES, "decimal"):
                return node
            rounded = exp.Round(
                this=exp.cast(argument.copy(), exp.DataType.build("decimal")),
                decimals=node.args["decimals"].copy(),
            )
            return exp.cast(rounded, exp.DataType.build("double"))
        # PostgreSQL has no GROUP BY ALL: group by the position of every non-aggregate output.
        if isinstance(node, exp.Select) and node.args.get("group") and node.args["group"].args.get("all"):
            positions = [
                exp.Literal.number(index)
                for index, projection in enumerate(node.expressions, start=1)
                if not projection.find(exp.AggFunc, exp.Window)
            ]
            node.set("group", exp.Group(expressions=positions) if positions else None)
            return node
        # PostgreSQL 14+ returns numeric from EXTRACT; DuckDB returns BIGINT for whole-number parts.
        if isinstance(node, exp.Extract) and node.this.name.lower() in _WHOLE_DATE_PARTS:
            return exp.cast(node.copy(), exp.DataType.build("bigint"))
        # SQLGlot renders dayofweek as DAY_OF_WEEK, which PostgreSQL lacks (DOW is 0 = Sunday, as DuckDB).
        if isinstance(node, exp.DayOfWeek):
            part = exp.Extract(this=exp.var("DOW"), expression=node.this.copy())
            return exp.cast(part, exp.DataType.build("bigint"))
        # SQLGlot renders make_date as DATE_FROM_PARTS, which PostgreSQL lacks.
        if isinstance(node, exp.DateFromParts):
            return exp.Anonymous(
                this="MAKE_DATE",
                expressions=[node.args[key].copy() for key in ("year", "month", "day")],
            )
        return node

    return annotated.transform(fix)


def _numeric_array(values: list[Any], precision: int | None, scale: int | None) -> pa.Array:
    """Arrow array for a ``numeric`` column: its declared precision/scale, else the data's scale."""
    if precision is not None:
        scale = scale or 0
        decimal_type = pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale)
        return pa.array(values, type=decimal_type)
    finite = [v for v in values if v is not None and v.is_finite()]
    if len(finite) != sum(v is not None for v in values):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    scale = max((max(0, -int(v.as_tuple().exponent)) for v in finite), default=0)
    whole_digits = max((len(v.as_tuple().digits) + int(v.as_tuple().exponent) for v in finite), default=1)
    if scale + max(whole_digits, 1) > 38:
        # Unconstrained numerics beyond 38 digits have no exact Arrow decimal128: keep a double.
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    quantum = Decimal(1).scaleb(-scale)
    exact = [None if v is None else v.quantize(quantum) for v in values]
    return pa.array(exact, type=pa.decimal128(38, scale))


class PostgresEngine(Engine):
    """Engine on a PostgreSQL server (15 or later) through psycopg 3.

    Parameters
    ----------
    dsn
        libpq connection string or URL; default ``$MASSALIA_PG_DSN``.
    schema
        Working schema, created if absent and put first on ``search_path`` (tests use a throwaway
        schema per test); default the server's ``current_schema()`` (usually ``public``).

    Examples
    --------
    >>> dsn = "postgresql://postgres@127.0.0.1:5432/postgres"
    >>> engine = PostgresEngine(dsn, schema="demo")  # doctest: +SKIP
    >>> engine.scalar("SELECT round(2.345::double, 2)")  # doctest: +SKIP
    2.35
    """

    name = "postgres"
    dialect = "postgres"
    capabilities = Capabilities(transactions=True, atomic_swap=True, primary_keys=True, indexes=True)

    def __init__(self, dsn: str | None = None, *, schema: str | None = None) -> None:
        dsn = dsn or os.environ.get(DSN_ENV)
        if not dsn:
            raise EngineError(f"no PostgreSQL connection string: pass dsn= or set {DSN_ENV}")
        try:
            # Autocommit: each statement stands alone unless Engine.transaction() sends BEGIN.
            self.connection = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as error:
            raise EngineError(f"cannot connect to PostgreSQL: {error}") from error
        # Results become Arrow, not Python JSON objects: keep json as text.
        for type_name in ("json", "jsonb"):
            self.connection.adapters.register_loader(type_name, TextLoader)
        self._lock = threading.RLock()
        self._execute_sql("SET TIME ZONE 'UTC'")
        if schema is not None:
            check_identifier(schema)
            self._execute_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._execute_sql(f"SET search_path TO {schema}, public")
        self.schema = str(self.scalar("SELECT current_schema()"))

    # -- SQL ------------------------------------------------------------------------------
    def render(self, query: Query) -> str:
        """Render house-dialect SQL (or an expression) for PostgreSQL, fixing known gaps."""
        if isinstance(query, exp.Expression):
            trees = [query.copy()]
        else:
            try:
                trees = [tree for tree in sqlglot.parse(query, read=HOUSE_DIALECT) if tree is not None]
            except sqlglot.errors.ParseError as error:
                raise EngineError(f"cannot parse SQL: {error}\n{query}") from error
        if len(trees) != 1:
            raise EngineError(f"expected one SQL statement, got {len(trees)}")
        return _fix_for_postgres(trees[0]).sql(dialect=self.dialect)

    def _run(self, sql: str, action: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        with self._lock:
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute(sql.encode("utf-8"))  # bytes: no client-side placeholder parsing
                    return action(cursor)
            except psycopg.Error as error:
                raise EngineError(f"PostgreSQL failed: {error}\n{sql}") from error

    def _fetch_arrow(self, sql: str) -> pa.Table:
        return self._run(sql, _cursor_to_arrow)

    def _execute_sql(self, sql: str) -> None:
        self._run(sql, lambda cursor: None)

    # -- bulk load ------------------------------------------------------------------------
    def _write_table(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        columns = ", ".join(f"{check_identifier(f.name)} {pg_type_for(f.type)}" for f in schema)
        with self._lock:
            # CREATE and COPY in one transaction: a load failing midway leaves no table behind.
            # Inside a caller's transaction, that transaction already gives the guarantee.
            own_transaction = self.connection.info.transaction_status == TransactionStatus.IDLE
            if own_transaction:
                self._execute_sql("BEGIN")
            try:
                self._execute_sql(f"CREATE TABLE {name} ({columns})")
                count = self._copy(name, schema, batches)
            except BaseException:
                if own_transaction:
                    self._execute_sql("ROLLBACK")
                raise
            if own_transaction:
                self._execute_sql("COMMIT")
            return count

    def _append(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        return self._copy(name, schema, batches)

    def _copy(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        """Stream batches into ``name`` with ``COPY ... FROM STDIN (FORMAT csv)``.

        pyarrow's CSV writer quotes every string, so an empty string arrives as ``""`` while a
        NULL arrives as an unquoted empty field, which is exactly how COPY tells them apart.
        """
        columns = pgsql.SQL(", ").join(pgsql.Identifier(check_identifier(f.name)) for f in schema)
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(pgsql.Identifier(name), columns)
        binary_columns = [i for i, f in enumerate(schema) if pa.types.is_binary(f.type)]
        with self._lock:
            try:
                with self.connection.cursor() as cursor:
                    with cursor.copy(statement) as copy:
                        for batch in batches:
                            if batch.schema != schema:
                                batch = batch.cast(schema)
                            for index in binary_columns:
                                hexed = _bytea_hex(batch.column(index))
                                batch = batch.set_column(index, schema[index].name, hexed)
                            buffer = io.BytesIO()
                            pacsv.write_csv(batch, buffer, _CSV_OPTIONS)
                            copy.write(buffer.getbuffer())
                    return cursor.rowcount
            except psycopg.Error as error:
                raise EngineError(f"PostgreSQL COPY into {name} failed: {error}") from error
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise EngineError(f"cannot convert data for PostgreSQL table {name}: {error}") from error

    # -- catalog --------------------------------------------------------------------------
    def list_tables(self) -> list[str]:
        """Names of the base tables in the working schema, sorted."""
        rows = self._fetch_arrow(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        return [name.lower() for name in rows.column(0).to_pylist()]

    def describe(self, table: str) -> list[Column]:
        """Columns of ``table`` in the working schema, with house-dialect type names."""
        rows = self._fetch_arrow(
            "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, "
            "NOT a.attnotnull AS nullable FROM pg_attribute a "
            "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE n.nspname = current_schema() AND c.relname = '{check_identifier(table).lower()}' "
            "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ).to_pylist()
        if not rows:
            raise EngineError(f"no table named {table} in schema {self.schema}")
        return [Column(r["name"], house_type_name(r["type"]), r["nullable"]) for r in rows]

    def drop_schema(self) -> None:
        """Drop the working schema and everything in it (throwaway test schemas)."""
        self._execute_sql(f"DROP SCHEMA IF EXISTS {check_identifier(self.schema)} CASCADE")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self.connection.close()


def _bytea_hex(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    r"""Binary values in PostgreSQL's ``\x…`` hex text form, for CSV COPY."""
    values = column.to_pylist()
    return pa.array([None if v is None else "\\x" + v.hex() for v in values], type=pa.string())


def _cursor_to_arrow(cursor: psycopg.Cursor[Any]) -> pa.Table:
    """Fetch a cursor's rows into an Arrow table typed from the result's column OIDs."""
    description = cursor.description
    if description is None:
        return pa.table({})
    rows = cursor.fetchall()
    names = [column.name for column in description]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for column, values in zip(description, columns, strict=True):
        values = list(values)
        if column.type_code == _NUMERIC_OID:
            arrays.append(_numeric_array(values, column.precision, column.scale))
            continue
        arrow_type = _ARROW_TYPES.get(column.type_code)
        try:
            if arrow_type is not None:
                arrays.append(pa.array(values, type=arrow_type))
            else:
                arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
    return pa.Table.from_arrays(arrays, names=names)


__all__ = ["DSN_ENV", "PostgresEngine", "house_type_name", "pg_type_for"]
