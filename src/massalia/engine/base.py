"""The engine protocol: the only place in Massalia that knows a database engine exists.

Queries are written once, in the house dialect (DuckDB's SQL) or as SQLGlot expressions, and
rendered for each engine by SQLGlot. Results always come back as Arrow tables. Tables are created
or replaced atomically: data is written under a staging name, then swapped in.
"""

from __future__ import annotations

import re
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import ClassVar, TypeAlias

import pyarrow as pa
import pyarrow.dataset as pads
import sqlglot
from sqlglot import exp

HOUSE_DIALECT = "duckdb"

TableData: TypeAlias = pa.Table | pa.RecordBatchReader | Iterable[pa.RecordBatch] | Path
"""What a table can be created from: an Arrow table, a stream of record batches, or Parquet."""

Query: TypeAlias = str | exp.Expr

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


_HOLDERS: dict[str, list[Callable[[], bool]]] = {}
_HOLDERS_LOCK = threading.Lock()


def hold_open(path: str | Path, let_go: Callable[[], bool]) -> Callable[[], None]:
    """Declare that this process keeps ``path`` open, and how to ask it to let go (returns whether it did).

    DuckDB refuses, within one process, a second connection to a file already open with another configuration
    (read-only next to read-write). A holder that only keeps the file open for speed (the API's warehouse
    keeper) registers here; a :class:`DuckDBEngine` meeting that refusal asks the holders to let go and
    tries once more. Returns the function that withdraws the declaration.
    """
    key = str(Path(path).resolve())
    with _HOLDERS_LOCK:
        _HOLDERS.setdefault(key, []).append(let_go)

    def withdraw() -> None:
        with _HOLDERS_LOCK:
            holders = _HOLDERS.get(key, [])
            if let_go in holders:
                holders.remove(let_go)

    return withdraw


def ask_holders(path: str) -> bool:
    """Ask this process's holders of ``path`` to let go; whether any did."""
    with _HOLDERS_LOCK:
        holders = list(_HOLDERS.get(str(Path(path).resolve()), []))
    return any([let_go() for let_go in holders])  # noqa: C419 (every holder is asked, not only up to the first)


class EngineError(RuntimeError):
    """An engine refused an operation; the message says which and why."""


class UnsupportedOperation(EngineError):  # noqa: N818 (reads as a sentence: "raise UnsupportedOperation")
    """The engine cannot do this operation (see its capability flags)."""


class QueryTimeoutError(EngineError):
    """A block of queries ran longer than its time limit (:meth:`Engine.time_limit`) and was cancelled."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the query ran longer than its time limit of {seconds:g} s and was cancelled")
        self.seconds = seconds


class WarehouseBusyError(EngineError):
    """The warehouse is held by another process (an embedded file locked by a writer); retry later."""


@dataclass(frozen=True)
class Capabilities:
    """What an engine can do, so callers choose a path instead of failing late."""

    transactions: bool
    """Statements can be grouped in a transaction, DDL included."""
    atomic_swap: bool
    """Several tables can be replaced together, all or nothing."""
    primary_keys: bool
    """PRIMARY KEY constraints are enforced."""
    indexes: bool
    """Secondary indexes can be created."""
    temporary_tables: bool = False
    """Session-temporary tables exist (staging tables that skip the write-ahead log and vanish with
    the session)."""
    column_drops_free_memory: bool = False
    """``ALTER TABLE … DROP COLUMN`` releases the column's storage at once (worth doing mid-run)."""
    memory_resident_keys: bool = False
    """PRIMARY KEY indexes must fit in memory: large bulk loads go faster, and fit, without them."""
    materialized_steps: bool = False
    """The planner needs multi-step queries materialized as analyzed temporary tables (it keeps no
    statistics on CTEs): cohort steps run one table at a time."""
    french_full_text: bool = False
    """Full-text search in SQL with a French configuration (``tsvector``/``tsquery`` with ``'french'``,
    ``ts_headline``, GIN indexes): the text index's server backend (``massalia.text.postgres_index``)."""


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, its SQL type (house dialect) and nullability."""

    name: str
    type: str
    nullable: bool = True


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe, unquoted SQL identifier, else raise ``ValueError``.

    Examples
    --------
    >>> check_identifier("person")
    'person'
    """
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(f"invalid SQL identifier {name!r}: use letters, digits and '_' (max 63)")
    return name


def as_batches(data: TableData) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Turn any ``TableData`` into a schema and an iterator of record batches (streaming)."""
    if isinstance(data, Path):
        dataset = pads.dataset(data, format="parquet")
        return dataset.schema, iter(dataset.to_batches())
    if isinstance(data, pa.Table):
        return data.schema, iter(data.to_batches())
    if isinstance(data, pa.RecordBatchReader):
        return data.schema, iter(data)
    iterator = iter(data)
    try:
        first = next(iterator)
    except StopIteration:
        raise EngineError("cannot infer a schema from an empty stream of batches; pass schema=") from None

    def chained() -> Iterator[pa.RecordBatch]:
        yield first
        yield from iterator

    return first.schema, chained()


class Engine(ABC):
    """Run queries and hold tables on one database engine.

    Subclasses implement a handful of primitives (``_fetch_arrow``, ``_execute_sql``,
    ``_write_table``, ``list_tables``, ``describe``); everything else is shared.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> with connect("duckdb") as engine:
    ...     engine.query("SELECT 1 AS one").to_pylist()
    [{'one': 1}]
    """

    name: ClassVar[str]
    dialect: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    # -- primitives -----------------------------------------------------------------------
    @abstractmethod
    def _fetch_arrow(self, sql: str) -> pa.Table:
        """Run one statement already in this engine's dialect and return its rows."""

    @abstractmethod
    def _execute_sql(self, sql: str) -> None:
        """Run one statement already in this engine's dialect, discarding any result."""

    @abstractmethod
    def _write_table(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        """Create table ``name`` (which does not exist) from batches; return the row count."""

    @abstractmethod
    def _append(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        """Append batches to the existing table ``name``; return the row count."""

    @abstractmethod
    def list_tables(self) -> list[str]:
        """Names of the tables (not views) in the working schema, sorted."""

    @abstractmethod
    def describe(self, table: str) -> list[Column]:
        """Columns of ``table`` in order, with house-dialect type names."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection."""

    @classmethod
    def for_home(cls, root: Path, **options: object) -> Engine:
        """Open this engine for the home folder ``root``; where it keeps files, it keeps them there.

        ``options`` are the engine's own settings (a DSN, a session, a database name…); engines
        that keep nothing under the home ignore ``root``.
        """
        return cls(**options)

    @contextmanager
    def bounded_memory(self, limit: str | None) -> Iterator[None]:
        """Cap the engine's memory for a block where the engine can; a no-op elsewhere or when ``limit`` is None.

        Engines whose memory is set by their server or cluster (PostgreSQL, Spark) do nothing here.
        """
        yield

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group statements; committed on success, rolled back on error.

        A nested ``transaction()`` (``create_table`` inside a caller's transaction, for instance)
        joins the outer one: only the outermost commits or rolls back.
        """
        if not self.capabilities.transactions:
            raise UnsupportedOperation(f"{self.name} has no transactions")
        depth = getattr(self, "_transaction_depth", 0)
        if depth:
            self._transaction_depth = depth + 1
            try:
                yield
            finally:
                self._transaction_depth = depth
            return
        self._execute_sql("BEGIN")
        self._transaction_depth = 1
        try:
            yield
        except BaseException:
            self._transaction_depth = 0
            self._execute_sql("ROLLBACK")
            raise
        self._transaction_depth = 0
        self._execute_sql("COMMIT")

    # -- time limits ----------------------------------------------------------------------
    _limit: float | None = None
    _limit_expired: bool = False

    @contextmanager
    def time_limit(self, seconds: float | None) -> Iterator[None]:
        """Cancel the block's queries once it has run ``seconds``; :class:`QueryTimeoutError` is raised then.

        The running statement is cancelled by the engine itself (DuckDB's interrupt, PostgreSQL's cancel
        request, Spark's job-group cancellation); a statement started after the limit is refused, except
        ``DROP`` (clean-up of the block's own tables still runs). Nested limits: the outer one governs.
        ``None`` sets no limit. An engine is used by one thread at a time within a limit (the API opens one
        engine per request).

        Examples
        --------
        >>> from massalia.engine import connect
        >>> with connect("duckdb") as engine, engine.time_limit(0.2):
        ...     engine.query("SELECT count(*) AS n FROM range(1000000000000)")
        Traceback (most recent call last):
        ...
        massalia.engine.base.QueryTimeoutError: the query ran longer than its time limit of 0.2 s and was cancelled
        """
        if seconds is None or self._limit is not None:
            yield
            return
        if not seconds > 0:
            raise ValueError(f"a time limit is a positive number of seconds, got {seconds!r}")

        def expire() -> None:
            self._limit_expired = True
            with suppress(Exception):  # best effort: nothing may be running at that instant
                self._interrupt()

        timer = threading.Timer(seconds, expire)
        timer.daemon = True
        self._limit, self._limit_expired = seconds, False
        self._begin_limit()
        timer.start()
        try:
            yield
        except EngineError as error:
            if self._limit_expired and not isinstance(error, QueryTimeoutError):
                raise QueryTimeoutError(seconds) from error
            raise
        finally:
            timer.cancel()
            self._end_limit()
            self._limit, self._limit_expired = None, False

    def _interrupt(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Cancel the statement running now, from another thread (engines that can; a no-op otherwise)."""

    def _begin_limit(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Prepare the calling thread's statements to be cancellable (Spark tags them with a job group)."""

    def _end_limit(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Undo :meth:`_begin_limit`."""

    def _check_limit(self, sql: str) -> str:
        if self._limit_expired and not sql.lstrip()[:4].upper() == "DROP":
            raise QueryTimeoutError(self._limit or 0.0)
        return sql

    # -- SQL ------------------------------------------------------------------------------
    def render(self, query: Query) -> str:
        """Render a house-dialect query or a SQLGlot expression in this engine's dialect."""
        if self.dialect == HOUSE_DIALECT:
            return query.sql(dialect=self.dialect) if isinstance(query, exp.Expr) else query
        if isinstance(query, exp.Expr):
            tree = query.copy()
        else:
            try:
                trees = [tree for tree in sqlglot.parse(query, read=HOUSE_DIALECT) if tree is not None]
            except sqlglot.errors.ParseError as error:
                raise EngineError(f"cannot parse SQL: {error}\n{query}") from error
            if len(trees) != 1:
                raise EngineError(f"expected one SQL statement, got {len(trees)}")
            tree = trees[0]
        return self._rewrite(tree).sql(dialect=self.dialect)

    def _rewrite(self, tree: exp.Expr) -> exp.Expr:
        """Engine-specific fixes of a house-dialect tree before rendering (none by default)."""
        return tree

    def query(self, query: Query) -> pa.Table:
        """Run a query and return its result as an Arrow table."""
        return self._fetch_arrow(self._check_limit(self.render(query)))

    def execute(self, statement: Query) -> None:
        """Run a statement (DDL or DML) written in the house dialect or as an expression."""
        self._execute_sql(self._check_limit(self.render(statement)))

    def execute_native(self, sql: str) -> None:
        """Run SQL already written in this engine's own dialect (benchmarks, DDL scripts)."""
        self._execute_sql(self._check_limit(sql))

    def query_native(self, sql: str) -> pa.Table:
        """Run a query already written in this engine's own dialect."""
        return self._fetch_arrow(self._check_limit(sql))

    def scalar(self, query: Query) -> object:
        """Return the single value of a one-row, one-column query."""
        table = self.query(query)
        if table.num_rows != 1 or table.num_columns != 1:
            raise EngineError(f"expected one value, got {table.num_rows} rows × {table.num_columns} columns")
        return table.column(0)[0].as_py()

    def scalar_int(self, query: Query) -> int:
        """The single value of a one-row, one-column query as an integer (counts, ids); SQL NULL is 0.

        Raises
        ------
        EngineError
            The value is not a whole number (a query that should have been a count is not).

        Examples
        --------
        >>> from massalia.engine import connect
        >>> connect("duckdb").scalar_int("SELECT max(x) FROM (SELECT 1 AS x WHERE false)")
        0
        """
        value = self.scalar(query)
        if value is None:
            return 0
        # Engines differ: PostgreSQL may hand a whole-number NUMERIC as a Decimal, where DuckDB gives an int.
        if isinstance(value, int | Decimal | float) and not isinstance(value, bool) and value == int(value):
            return int(value)
        raise EngineError(f"expected a whole number, got {type(value).__name__} {str(value)[:40]}")

    # -- tables ---------------------------------------------------------------------------
    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists in the working schema."""
        return check_identifier(table).lower() in self.list_tables()

    def row_count(self, table: str) -> int:
        """Number of rows of ``table``."""
        return self.scalar_int(f"SELECT count(*) FROM {check_identifier(table)}")

    def drop_table(self, table: str, *, if_exists: bool = True) -> None:
        """Drop ``table``."""
        clause = "IF EXISTS " if if_exists else ""
        self._execute_sql(f"DROP TABLE {clause}{check_identifier(table)}")

    def create_table(self, table: str, data: TableData, *, schema: pa.Schema | None = None) -> int:
        """Create or replace ``table`` from ``data`` atomically; return the number of rows.

        The rows are written under a staging name first; readers see either the old table or the
        new one, never a half-written one. A failure leaves the previous table untouched.
        """
        return self.create_tables({table: data}, schemas={table: schema} if schema else None)[table]

    def create_tables(
        self, tables: Mapping[str, TableData], *, schemas: Mapping[str, pa.Schema] | None = None
    ) -> dict[str, int]:
        """Create or replace several tables; on engines with ``atomic_swap`` all or none change."""
        staged: dict[str, str] = {}
        counts: dict[str, int] = {}
        try:
            for table, data in tables.items():
                staging = self.staging_name(table)
                # Registered before writing: a write failing midway may leave a partial table to drop.
                staged[staging] = table
                counts[table] = self.write_new_table(staging, data, schema=(schemas or {}).get(table))
            self.swap(staged)
        except BaseException:
            for staging in staged:
                self.drop_table(staging)
            raise
        return counts

    def write_new_table(self, table: str, data: TableData, *, schema: pa.Schema | None = None) -> int:
        """Write ``data`` into a new table ``table`` (error if it exists); return the row count."""
        if self.table_exists(table):
            raise EngineError(f"table {table} already exists")
        batches: Iterator[pa.RecordBatch]
        if isinstance(data, list) and not data:
            inferred, batches = schema, iter(())
        else:
            inferred, batches = as_batches(data)
        if inferred is None:
            raise EngineError(f"no schema for table {table}: pass schema=")
        target = schema or inferred
        if schema is not None:
            batches = (batch.cast(schema) if batch.schema != schema else batch for batch in batches)
        return self._write_table(check_identifier(table), target, batches)

    def insert(self, table: str, data: TableData, *, schema: pa.Schema | None = None) -> int:
        """Append ``data`` to the existing ``table``; return the number of rows added."""
        inferred, batches = as_batches(data)
        target = schema or inferred
        if schema is not None:
            batches = (batch.cast(schema) if batch.schema != schema else batch for batch in batches)
        return self._append(check_identifier(table), target, batches)

    def create_empty_table(self, table: str, columns: Sequence[Column], *, primary_key: Sequence[str] = ()) -> None:
        """Create an empty table from column definitions (types in the house dialect)."""
        check_identifier(table)
        definitions: list[exp.Expr] = []
        for column in columns:
            definition = exp.ColumnDef(
                this=exp.to_identifier(check_identifier(column.name)),
                kind=exp.DataType.build(column.type, dialect=HOUSE_DIALECT),
            )
            if not column.nullable:
                definition.append("constraints", exp.ColumnConstraint(kind=exp.NotNullColumnConstraint()))
            definitions.append(definition)
        if primary_key and self.capabilities.primary_keys:
            definitions.append(
                exp.PrimaryKey(expressions=[exp.to_identifier(check_identifier(c)) for c in primary_key])
            )
        statement = exp.Create(this=exp.Schema(this=exp.to_table(table), expressions=definitions), kind="TABLE")
        self._execute_sql(statement.sql(dialect=self.dialect))

    def create_index(self, table: str, columns: Sequence[str], *, name: str | None = None) -> None:
        """Create a secondary index; raises ``UnsupportedOperation`` where the engine has none."""
        if not self.capabilities.indexes:
            raise UnsupportedOperation(f"{self.name} does not support secondary indexes")
        cols = ", ".join(check_identifier(c) for c in columns)
        index = check_identifier(name or f"idx_{table}_{'_'.join(columns)}"[:63])
        self._execute_sql(f"CREATE INDEX IF NOT EXISTS {index} ON {check_identifier(table)} ({cols})")

    def swap(self, renames: Mapping[str, str]) -> None:
        """Replace each target table by its staging table (``{staging: target}``).

        On engines with ``atomic_swap`` all renames happen in one transaction.
        """
        for staging, target in renames.items():
            check_identifier(staging)
            check_identifier(target)
        if self.capabilities.atomic_swap:
            with self.transaction():
                for staging, target in renames.items():
                    self._execute_sql(f"DROP TABLE IF EXISTS {target}")
                    self._execute_sql(f"ALTER TABLE {staging} RENAME TO {target}")
        else:
            for staging, target in renames.items():
                self._execute_sql(f"DROP TABLE IF EXISTS {target}")
                self._execute_sql(f"ALTER TABLE {staging} RENAME TO {target}")

    @staticmethod
    def staging_name(table: str) -> str:
        """A fresh staging name for ``table`` (never visible as the table itself)."""
        return f"stg_{uuid.uuid4().hex[:10]}_{check_identifier(table)}"[:63]

    @property
    def location(self) -> str:
        """Where this engine's data lives, the same for every connection to it (caches of derived results key on it).

        This connection object by default (nothing shared); engines whose data outlive a connection say where
        it is (a database file, a server's database and schema, a catalog database). Never holds a secret.
        """
        return f"{self.name}:{id(self):x}"

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
