"""PostgreSQL: the shared-server engine of standard OHDSI deployments (psycopg 3, COPY bulk loads)."""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
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

# Result types read through COPY … TO STDOUT and pyarrow's CSV parser (others take the cursor path).
_COPY_TYPES = {oid: _ARROW_TYPES[oid] for oid in (16, 18, 19, 20, 21, 23, 25, 26, 700, 701, 1042, 1043, 1082, 1114)}
_COPYABLE_QUERY = re.compile(r"^\s*\(*\s*(SELECT|WITH|VALUES|TABLE)\b", re.IGNORECASE)

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


_TRY_NUMBER = r"^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$"
_TRY_WHOLE = r"^\s*[-+]?[0-9]{1,%d}\s*$"

# DuckDB's TRY_CAST and TRY_STRPTIME give NULL where a value does not parse; PostgreSQL 15 has
# neither (SQLGlot renders TRY_CAST as a CAST that aborts the statement on the first bad value).
# These functions give DuckDB's answer; they are created in the working schema on first use.
# Whole numbers and floats are checked by pattern (inlined by the planner, no subtransaction);
# dates, timestamps and decimals by the server's own parser under an exception handler.
_TRY_FUNCTIONS: dict[str, str] = {
    "massalia_try_smallint": "smallint",
    "massalia_try_integer": "integer",
    "massalia_try_bigint": "bigint",
    "massalia_try_double": "double precision",
    "massalia_try_real": "real",
    "massalia_try_numeric": "numeric",
    "massalia_try_date": "date",
    "massalia_try_timestamp": "timestamp",
    "massalia_try_boolean": "boolean",
}
_TRY_CAST_TYPES = {
    exp.DataType.Type.SMALLINT: "massalia_try_smallint",
    exp.DataType.Type.TINYINT: "massalia_try_smallint",
    exp.DataType.Type.INT: "massalia_try_integer",
    exp.DataType.Type.BIGINT: "massalia_try_bigint",
    exp.DataType.Type.DOUBLE: "massalia_try_double",
    exp.DataType.Type.FLOAT: "massalia_try_real",
    exp.DataType.Type.DATE: "massalia_try_date",
    exp.DataType.Type.TIMESTAMP: "massalia_try_timestamp",
    exp.DataType.Type.BOOLEAN: "massalia_try_boolean",
}
_TRY_STRPTIME = "massalia_try_strptime"


def _try_function_sql(name: str) -> str:
    """``CREATE FUNCTION`` statement of one helper of :data:`_TRY_FUNCTIONS` (or the strptime one)."""
    if name == _TRY_STRPTIME:
        # to_timestamp is lenient (it skips what the format does not cover): the value must print
        # back to itself, as DuckDB's strptime requires the whole text to match.
        return (
            f"CREATE FUNCTION {name}(value text, format text) RETURNS timestamp LANGUAGE plpgsql IMMUTABLE "
            "PARALLEL SAFE AS $$ DECLARE parsed timestamp; BEGIN "
            "IF value IS NULL OR format IS NULL THEN RETURN NULL; END IF; "
            "parsed := to_timestamp(value, format) AT TIME ZONE 'UTC'; "
            "IF to_char(parsed, format) <> value THEN RETURN NULL; END IF; RETURN parsed; "
            "EXCEPTION WHEN others THEN RETURN NULL; END $$"
        )
    target = _TRY_FUNCTIONS[name]
    digits = {"smallint": 4, "integer": 9, "bigint": 18}.get(target)
    pattern = (_TRY_WHOLE % digits) if digits else _TRY_NUMBER if target in ("double precision", "real") else None
    if pattern is not None:
        return (
            f"CREATE FUNCTION {name}(value text) RETURNS {target} LANGUAGE sql IMMUTABLE PARALLEL SAFE AS "
            f"$$ SELECT CASE WHEN value ~ '{pattern}' THEN CAST(value AS {target}) END $$"
        )
    # PostgreSQL also reads '20230115' as a date; DuckDB only reads ISO dates with dashes.
    iso_date = r"'^\s*[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}\s*$'"
    guard = f"IF value !~ {iso_date} THEN RETURN NULL; END IF; " if target == "date" else ""
    return (
        f"CREATE FUNCTION {name}(value text) RETURNS {target} LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS "
        f"$$ BEGIN {guard}RETURN CAST(value AS {target}); EXCEPTION WHEN others THEN RETURN NULL; END $$"
    )


_PG_TIME_CODES = {
    "Y": "YYYY", "y": "YY", "m": "MM", "d": "DD", "H": "HH24", "I": "HH12", "M": "MI", "S": "SS",
    "f": "US", "j": "DDD", "p": "AM", "b": "Mon", "B": "Month", "%": "%",
}  # fmt: skip


def _postgres_time_format(duckdb_format: str) -> str:
    """PostgreSQL's ``to_timestamp`` format for a DuckDB ``strptime`` format.

    Letters outside a ``%`` code are quoted: unquoted, PostgreSQL reads some as patterns
    (``T`` after ``DD`` makes the ``TH`` ordinal suffix).

    Examples
    --------
    >>> _postgres_time_format("%d/%m/%Y %H:%M")
    'DD/MM/YYYY HH24:MI'
    >>> _postgres_time_format("%Y-%m-%dT%H:%M:%S")
    'YYYY-MM-DD"T"HH24:MI:SS'
    """
    parts: list[str] = []
    characters = iter(duckdb_format)
    for character in characters:
        if character == "%":
            code = next(characters, "")
            if code not in _PG_TIME_CODES:
                raise EngineError(f"strptime format {duckdb_format!r}: %{code} has no PostgreSQL equivalent here")
            parts.append(_PG_TIME_CODES[code])
        elif character.isalpha() or character == '"':
            parts.append('"' + character.replace('"', '\\"') + '"')
        else:
            parts.append(character)
    return "".join(parts)


def _fix_for_postgres(tree: exp.Expr) -> exp.Expr:
    """Rewrite house-dialect constructs whose plain SQLGlot rendering fails on PostgreSQL 15."""
    annotated = annotate_types(tree, dialect=HOUSE_DIALECT)

    def fix(node: exp.Expr) -> exp.Expr:
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

    # The TRY_ rewrites go first, in a pass of their own: a node the pass below replaces (EXTRACT,
    # for one) is not visited again, so a TRY_STRPTIME inside it would stay as it is.
    return annotated.transform(_fix_try_functions).transform(fix)


def _fix_try_functions(node: exp.Expression) -> exp.Expression:
    """DuckDB-only functions → PostgreSQL: TRY_CAST, TRY_STRPTIME (NULL where a value does not parse) and others."""
    # TRY_CAST → a helper giving NULL for values that do not parse (see _TRY_FUNCTIONS).
    if isinstance(node, exp.TryCast) and node.to.this in _TRY_CAST_TYPES:
        text = exp.cast(node.this.copy(), exp.DataType.build("text"))
        return exp.Anonymous(this=_TRY_CAST_TYPES[node.to.this], expressions=[text])
    if isinstance(node, exp.TryCast) and node.to.this == exp.DataType.Type.DECIMAL:
        text = exp.cast(node.this.copy(), exp.DataType.build("text"))
        return exp.cast(exp.Anonymous(this="massalia_try_numeric", expressions=[text]), node.to.copy())
    if (
        isinstance(node, exp.Anonymous)
        and node.name.upper() == "TRY_STRPTIME"
        and len(node.expressions) == 2
        and isinstance(node.expressions[1], exp.Literal)
    ):
        pg_format = exp.Literal.string(_postgres_time_format(node.expressions[1].this))
        return exp.Anonymous(this=_TRY_STRPTIME, expressions=[node.expressions[0].copy(), pg_format])
    # DuckDB's regexp_full_match must match the whole text; PostgreSQL's ~ matches anywhere.
    if isinstance(node, exp.RegexpFullMatch) and isinstance(node.expression, exp.Literal):
        anchored = exp.Literal.string(f"^(?:{node.expression.this})$")
        return exp.RegexpLike(this=node.this.copy(), expression=anchored)
    # DuckDB's regexp_extract(text, pattern[, group]) gives '' when nothing matches; PostgreSQL's
    # substring(text, pattern) gives the first parenthesized group (or NULL): group 0, the whole
    # match, is the pattern in parentheses. Other groups stay as they are (and fail loudly).
    if isinstance(node, exp.RegexpExtract) and isinstance(node.expression, exp.Literal):
        group = node.args.get("group")
        index = int(group.this) if isinstance(group, exp.Literal) else 0
        if index in (0, 1):
            pattern = node.expression.this if index else f"({node.expression.this})"
            match = exp.Anonymous(this="SUBSTRING", expressions=[node.this.copy(), exp.Literal.string(pattern)])
            return exp.Coalesce(this=match, expressions=[exp.Literal.string("")])
    # DuckDB's to_seconds(n) is an interval of n seconds.
    if isinstance(node, exp.Anonymous) and node.name.upper() == "TO_SECONDS" and len(node.expressions) == 1:
        seconds = exp.cast(node.expressions[0].copy(), exp.DataType.build("double"))
        one_second = exp.Interval(this=exp.Literal.string("1"), unit=exp.var("SECOND"))
        return exp.paren(exp.Mul(this=seconds, expression=one_second))
    return node


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
    capabilities = Capabilities(
        transactions=True,
        atomic_swap=True,
        primary_keys=True,
        indexes=True,
        temporary_tables=True,
        materialized_steps=True,
        french_full_text=True,
    )

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
        self._helpers: set[str] = set()
        self._execute_sql("SET TIME ZONE 'UTC'")
        self._execute_sql("SET DateStyle = 'ISO, YMD'")  # what the COPY result reader parses
        if schema is not None:
            check_identifier(schema)
            self._execute_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            self._execute_sql(f"SET search_path TO {schema}, public")
        self.schema = str(self.scalar("SELECT current_schema()"))

    @property
    def location(self) -> str:
        """The server, database and schema (no user, no password)."""
        info = self.connection.info
        return f"postgres:{info.host}:{info.port}/{info.dbname}/{self.schema}"

    # -- SQL ------------------------------------------------------------------------------
    def _rewrite(self, tree: exp.Expr) -> exp.Expr:
        """Fix the known gaps between DuckDB's SQL and PostgreSQL's in SQLGlot's rendering (no connection needed)."""
        return _fix_for_postgres(tree)

    def query(self, query: Query) -> pa.Table:
        """Run a house-dialect query, creating first the helper functions its rendering calls."""
        sql = self._check_limit(self.render(query))
        self._ensure_helpers(sql)
        return self._fetch_arrow(sql)

    def execute(self, statement: Query) -> None:
        """Run a house-dialect statement, creating first the helper functions its rendering calls."""
        sql = self._check_limit(self.render(statement))
        self._ensure_helpers(sql)
        self._execute_sql(sql)

    def execute_native(self, sql: str) -> None:
        """Run PostgreSQL SQL (it may be a house query rendered earlier, calling the helpers)."""
        self._ensure_helpers(self._check_limit(sql))
        self._execute_sql(sql)

    def query_native(self, sql: str) -> pa.Table:
        """Run a PostgreSQL query (it may be a house query rendered earlier, calling the helpers)."""
        self._ensure_helpers(self._check_limit(sql))
        return self._fetch_arrow(sql)

    def _ensure_helpers(self, sql: str) -> None:
        """Create the ``massalia_try_*`` functions ``sql`` calls that this connection has not checked yet."""
        if "massalia_try_" not in sql.lower():
            return
        lowered = sql.lower()
        for name in sorted({*_TRY_FUNCTIONS, _TRY_STRPTIME} - self._helpers):
            if f"{name}(" in lowered:
                self._install_helper(name)

    def _install_helper(self, name: str) -> None:
        """Create helper function ``name`` in the working schema unless it is there already."""
        exists = self._run(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            f"WHERE n.nspname = current_schema() AND p.proname = '{check_identifier(name)}'",
            lambda cursor: (cursor.fetchone() or (0,))[0],
        )
        if not exists:
            try:
                self._execute_sql(_try_function_sql(name))
            except EngineError as error:
                # Another connection created it meanwhile: that is the function wanted.
                if not isinstance(error.__cause__, psycopg.errors.DuplicateFunction | psycopg.errors.UniqueViolation):
                    raise
        self._helpers.add(name)

    def _interrupt(self) -> None:
        # A cancel request on its own connection: safe from another thread while a statement runs.
        self.connection.cancel_safe(timeout=5.0)

    def _run(self, sql: str, action: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        with self._lock:
            try:
                with self.connection.cursor() as cursor:
                    cursor.execute(sql.encode("utf-8"))  # bytes: no client-side placeholder parsing
                    return action(cursor)
            except psycopg.Error as error:
                raise EngineError(f"PostgreSQL failed: {error}\n{sql}") from error

    def _fetch_arrow(self, sql: str) -> pa.Table:
        with self._lock:
            types = self._result_types(sql)
            if types is not None:
                try:
                    return self._fetch_by_copy(sql, types)
                except pa.ArrowInvalid:
                    pass  # values pyarrow's CSV parser does not read (BC dates, year 10000+)
            return self._run(sql, _cursor_to_arrow)

    def _result_types(self, sql: str) -> list[tuple[str, pa.DataType]] | None:
        """Result columns of a query with only COPY-friendly types (prepared, not run), else ``None``."""
        if not _COPYABLE_QUERY.match(sql):
            return None
        pgconn = self.connection.pgconn
        prepared = pgconn.prepare(b"", sql.encode("utf-8"))
        if prepared.status != psycopg.pq.ExecStatus.COMMAND_OK:
            # Report it now: inside a transaction, running the statement again would only say
            # "current transaction is aborted".
            message = (prepared.error_message or b"").decode("utf-8", "replace").strip()
            raise EngineError(f"PostgreSQL failed: {message}\n{sql}")
        described = pgconn.describe_prepared(b"")
        if described.status != psycopg.pq.ExecStatus.COMMAND_OK or described.nfields == 0:
            return None
        columns = []
        for index in range(described.nfields):
            arrow_type = _COPY_TYPES.get(described.ftype(index))
            if arrow_type is None:
                return None
            columns.append(((described.fname(index) or b"?").decode("utf-8"), arrow_type))
        return columns

    def _fetch_by_copy(self, sql: str, types: list[tuple[str, pa.DataType]]) -> pa.Table:
        """Run ``sql`` through ``COPY (…) TO STDOUT (FORMAT csv)`` and parse it with pyarrow (fast)."""
        buffer = io.BytesIO()
        inner = sql.rstrip().rstrip(";")
        try:
            with self.connection.cursor() as cursor, cursor.copy(f"COPY ({inner}) TO STDOUT (FORMAT csv)") as copy:
                for data in copy:
                    buffer.write(data)
        except psycopg.Error as error:
            raise EngineError(f"PostgreSQL failed: {error}\n{sql}") from error
        keys = [f"c{index}" for index in range(len(types))]
        if buffer.tell() == 0:
            return pa.Table.from_arrays(
                [pa.array([], type=arrow_type) for _, arrow_type in types], names=[name for name, _ in types]
            )
        buffer.seek(0)
        table = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(column_names=keys),
            # A row of one NULL column is an empty line in COPY's CSV: a row, not a blank line to skip.
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(zip(keys, (arrow_type for _, arrow_type in types), strict=True)),
                true_values=["t"],
                false_values=["f"],
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,  # "" is an empty string, a bare empty field is NULL
            ),
        )
        return table.rename_columns([name for name, _ in types])

    def _execute_sql(self, sql: str) -> None:
        self._run(sql, lambda cursor: None)

    # -- bulk load ------------------------------------------------------------------------
    def _write_table(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        columns = ", ".join(f"{_column_name(f.name)} {pg_type_for(f.type)}" for f in schema)
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
        """Stream batches into ``name`` with ``COPY ... FROM STDIN``, binary when the types allow.

        Binary COPY is encoded column-wise with numpy (about 2-3x faster than CSV, which the
        server parses row by row); tables with types the encoder does not write (decimals, times,
        unsigned 64-bit) go through pyarrow's CSV writer instead, which quotes every string so an
        empty string arrives as ``""`` while a NULL arrives as an unquoted empty field.
        """
        binary = all(_binary_encodable(f.type) for f in schema)
        columns = pgsql.SQL(", ").join(pgsql.SQL(_column_name(f.name)) for f in schema)
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT {})").format(
            pgsql.Identifier(name), columns, pgsql.SQL("binary" if binary else "csv")
        )
        with self._lock:
            try:
                with self.connection.cursor() as cursor:
                    with cursor.copy(statement) as copy:
                        if binary:
                            copy.write(_BINARY_HEADER)
                        for batch in batches:
                            if batch.schema != schema:
                                batch = batch.cast(schema)
                            for start in range(0, batch.num_rows, COPY_CHUNK_ROWS):
                                chunk = batch.slice(start, COPY_CHUNK_ROWS)
                                copy.write(_binary_rows(chunk) if binary else _csv_rows(chunk))
                        if binary:
                            copy.write(_BINARY_TRAILER)
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


# -- binary COPY -------------------------------------------------------------------------------
_BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, header extension length
_BINARY_TRAILER = b"\xff\xff"  # field count -1
_PG_EPOCH_DAYS = 10_957  # 2000-01-01, PostgreSQL's epoch, in days since 1970-01-01
_PG_EPOCH_MICROS = _PG_EPOCH_DAYS * 86_400_000_000

# Arrow type → big-endian numpy type of PostgreSQL's binary form for the column pg_type_for() picks.
_BINARY_FIXED: dict[pa.DataType, str] = {
    pa.bool_(): ">u1",
    pa.int8(): ">i2",
    pa.int16(): ">i2",
    pa.int32(): ">i4",
    pa.int64(): ">i8",
    pa.uint8(): ">i2",
    pa.uint16(): ">i4",
    pa.uint32(): ">i8",
    pa.float16(): ">f4",
    pa.float32(): ">f4",
    pa.float64(): ">f8",
}


def _binary_encodable(arrow_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(arrow_type):
        return _binary_encodable(arrow_type.value_type)
    return (
        arrow_type in _BINARY_FIXED
        or pa.types.is_string(arrow_type)
        or pa.types.is_large_string(arrow_type)
        or pa.types.is_binary(arrow_type)
        or pa.types.is_large_binary(arrow_type)
        or pa.types.is_date(arrow_type)
        or pa.types.is_timestamp(arrow_type)
        or pa.types.is_null(arrow_type)
    )


def _binary_field(array: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One column in binary COPY form: validity, byte size per row (0 if NULL), payload bytes."""
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    rows = len(array)
    if pa.types.is_null(array.type):
        return np.zeros(rows, dtype=bool), np.zeros(rows, dtype=np.int64), np.empty(0, dtype=np.uint8)
    valid = np.ones(rows, dtype=bool) if array.null_count == 0 else array.is_valid().to_numpy(zero_copy_only=False)
    arrow_type = array.type
    if arrow_type == pa.string_view():
        array, arrow_type = array.cast(pa.string()), pa.string()
    # 32-bit offsets for string/binary, 64-bit for their large variants.
    offsets: np.ndarray[tuple[int, ...], np.dtype[np.int32 | np.int64]]
    if pa.types.is_string(arrow_type) or pa.types.is_binary(arrow_type):
        array = array.fill_null(b"" if pa.types.is_binary(arrow_type) else "")
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + rows + 1]
    elif pa.types.is_large_string(arrow_type) or pa.types.is_large_binary(arrow_type):
        array = array.fill_null(b"" if pa.types.is_large_binary(arrow_type) else "")
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + rows + 1]
    else:
        if pa.types.is_date(arrow_type):
            values = array.cast(pa.date32()).cast(pa.int32()).fill_null(0).to_numpy(zero_copy_only=False)
            big_endian = (values.astype(np.int64) - _PG_EPOCH_DAYS).astype(">i4")
        elif pa.types.is_timestamp(arrow_type):
            micros = array.cast(pa.timestamp("us", tz=arrow_type.tz), safe=False).cast(pa.int64()).fill_null(0)
            big_endian = (micros.to_numpy(zero_copy_only=False) - _PG_EPOCH_MICROS).astype(">i8")
        else:
            filled = array.fill_null(False if pa.types.is_boolean(arrow_type) else 0)
            big_endian = filled.to_numpy(zero_copy_only=False).astype(_BINARY_FIXED[arrow_type])
        width = big_endian.dtype.itemsize
        payload = big_endian[valid].view(np.uint8)
        return valid, valid.astype(np.int64) * width, payload
    sizes = np.diff(offsets).astype(np.int64)
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8) if array.buffers()[2] else np.empty(0, np.uint8)
    return valid, sizes, data[offsets[0] : offsets[-1]]


def _scatter(out: np.ndarray, starts: np.ndarray, sizes: np.ndarray, payload: np.ndarray) -> None:
    """Copy ``payload`` (row after row, ``sizes`` bytes each) to ``out`` at each row's start."""
    if payload.size == 0:
        return
    source_starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    out[np.repeat(starts - source_starts, sizes) + np.arange(payload.size)] = payload


def _binary_rows(batch: pa.RecordBatch) -> bytes:
    """Rows of ``batch`` in PostgreSQL's binary COPY tuple format, built column by column."""
    rows, width = batch.num_rows, batch.num_columns
    fields = [_binary_field(column) for column in batch.columns]
    row_sizes = 2 + sum(4 + sizes for _, sizes, _ in fields) if fields else np.full(rows, 2, dtype=np.int64)
    row_starts = np.concatenate(([0], np.cumsum(row_sizes)[:-1])).astype(np.int64)
    out = np.empty(int(np.sum(row_sizes)), dtype=np.uint8)
    two, four = np.full(rows, 2, dtype=np.int64), np.full(rows, 4, dtype=np.int64)
    _scatter(out, row_starts, two, np.full(rows, width, dtype=">i2").view(np.uint8))
    position = row_starts + 2
    for valid, sizes, payload in fields:
        lengths = np.where(valid, sizes, -1).astype(">i4")
        _scatter(out, position, four, lengths.view(np.uint8))
        _scatter(out, position + 4, sizes, payload)
        position = position + 4 + sizes
    return out.tobytes()


def _column_name(name: str) -> str:
    """Quote a column name for PostgreSQL, reserved words included (NOTE_NLP's ``offset``).

    The name is folded to lower case first, as an unquoted name would be, so that house-dialect
    SQL (unquoted) still finds it.
    """
    return f'"{check_identifier(name).lower()}"'


def _csv_rows(batch: pa.RecordBatch) -> bytes:
    r"""One chunk of rows as COPY CSV (bytea as PostgreSQL's ``\x`` hex text)."""
    for index, field in enumerate(batch.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            values = batch.column(index).to_pylist()
            hexed = pa.array([None if v is None else "\\x" + v.hex() for v in values], type=pa.string())
            batch = batch.set_column(index, field.name, hexed)
    buffer = io.BytesIO()
    pacsv.write_csv(batch, buffer, _CSV_OPTIONS)
    return buffer.getvalue()


def _cursor_to_arrow(cursor: psycopg.Cursor[Any]) -> pa.Table:
    """Fetch a cursor's rows into an Arrow table typed from the result's column OIDs."""
    description = cursor.description
    if description is None:
        return pa.table({})
    rows = cursor.fetchall()
    names = [column.name for column in description]
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = []
    for column, column_values in zip(description, columns, strict=True):
        values = list(column_values)
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
