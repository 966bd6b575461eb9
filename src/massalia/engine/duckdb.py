"""DuckDB: the embedded default engine (a single file under ``MASSALIA_HOME``, no server)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from massalia.engine.base import (
    Capabilities,
    Column,
    Engine,
    EngineError,
    WarehouseBusyError,
    ask_holders,
    check_identifier,
)

WAREHOUSE_FILE = "warehouse.duckdb"
"""The warehouse file's name inside a home folder."""

_UNITS = {"b": 1, "bytes": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}  # fmt: skip


def memory_bytes(size: str) -> float:
    """``'3GB'``, ``'18.8 GiB'`` → bytes (DuckDB's memory settings; unknown forms count as unlimited).

    Examples
    --------
    >>> memory_bytes("2GB"), memory_bytes("1 KiB")
    (2000000000.0, 1024.0)
    """
    match = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", size)
    if not match or match.group(2).lower() not in _UNITS:
        return float("inf")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


class DuckDBEngine(Engine):
    """Engine on an embedded DuckDB database (a file, or ``:memory:``).

    Parameters
    ----------
    path
        Database file; ``None`` or ``":memory:"`` for an in-memory database.
    threads, memory_limit
        Resource limits passed to DuckDB (``None`` keeps DuckDB's defaults).
    read_only
        Open the file read-only (several processes may then read it).
    """

    name = "duckdb"
    dialect = "duckdb"
    capabilities = Capabilities(
        transactions=True,
        atomic_swap=True,
        primary_keys=True,
        indexes=True,
        temporary_tables=True,
        column_drops_free_memory=True,
        memory_resident_keys=True,
    )

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        read_only: bool = False,
    ) -> None:
        database = ":memory:" if path in (None, ":memory:") else str(path)
        if database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # Extensions are never downloaded: hospitals (and CI) have no internet.
        config: dict[str, str | bool | int | float | list[str]] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if threads:
            config["threads"] = threads
        if memory_limit:
            config["memory_limit"] = memory_limit
        try:
            try:
                self.connection = duckdb.connect(database, read_only=read_only, config=config)
            except duckdb.ConnectionException as error:
                # The file is open in this process with another configuration: a holder kept only for speed
                # may let go (see hold_open), then this open is tried once more.
                if "different configuration" not in str(error) or not ask_holders(database):
                    raise
                self.connection = duckdb.connect(database, read_only=read_only, config=config)
        except duckdb.IOException as error:
            # Another process holds the file (DuckDB allows one writer): say so, callers may retry.
            if "lock" in str(error).lower():
                raise WarehouseBusyError(
                    f"the DuckDB warehouse {database} is in use by another process; retry when it is done"
                ) from error
            raise EngineError(f"cannot open DuckDB database {database}: {error}") from error
        except duckdb.Error as error:
            raise EngineError(f"cannot open DuckDB database {database}: {error}") from error
        self.path = database
        self._lock = threading.RLock()

    @property
    def location(self) -> str:
        """The database file (an in-memory database is this connection's own)."""
        if self.path == ":memory:":
            return super().location
        return f"duckdb:{Path(self.path).resolve()}"

    @classmethod
    def for_home(cls, root: Path, **options: object) -> DuckDBEngine:
        """The DuckDB warehouse of the home folder ``root`` (its ``warehouse.duckdb`` file)."""
        options.setdefault("path", Path(root) / WAREHOUSE_FILE)
        return cls(**options)  # type: ignore[arg-type]

    @contextmanager
    def bounded_memory(self, limit: str | None) -> Iterator[None]:
        """Lower DuckDB's memory limit (never raise it) and drop insertion order for a block, then restore both.

        Callers whose rows carry their own order (the ETL's file and line) lose nothing without
        insertion order, and DuckDB then streams large joins in far less memory.
        """
        if limit is None:
            yield
            return
        settings = {name: self.scalar(f"SELECT current_setting('{name}')")
                    for name in ("memory_limit", "preserve_insertion_order")}  # fmt: skip
        if memory_bytes(str(limit)) < memory_bytes(str(settings["memory_limit"])):
            self._execute_sql(f"SET memory_limit = '{limit}'")  # the pattern above admits no quote
        self._execute_sql("SET preserve_insertion_order = false")
        try:
            yield
        finally:
            self._execute_sql(f"SET memory_limit = '{settings['memory_limit']}'")
            self._execute_sql(f"SET preserve_insertion_order = {str(settings['preserve_insertion_order']).lower()}")

    def _interrupt(self) -> None:
        self.connection.interrupt()

    def _fetch_arrow(self, sql: str) -> pa.Table:
        with self._lock:
            try:
                relation = self.connection.sql(sql)
                return relation.to_arrow_table() if relation is not None else pa.table({})
            except duckdb.Error as error:
                raise EngineError(f"DuckDB query failed: {error}\n{sql}") from error

    def _execute_sql(self, sql: str) -> None:
        with self._lock:
            try:
                self.connection.execute(sql)
            except duckdb.Error as error:
                raise EngineError(f"DuckDB statement failed: {error}\n{sql}") from error

    def _write_table(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        with self._lock:
            view = f"__massalia_src_{name}"[:63]
            self.connection.register(view, reader)
            try:
                # DuckDB answers CREATE TABLE AS with the number of rows written: no count(*) round trip.
                written = self.connection.execute(f"CREATE TABLE {name} AS SELECT * FROM {view}").fetchall()
            except duckdb.Error as error:
                raise EngineError(f"DuckDB could not write table {name}: {error}") from error
            finally:
                self.connection.unregister(view)
        return int(written[0][0]) if written else self.row_count(name)

    def _append(self, name: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        # Quoted: column names may be reserved words (NOTE_NLP's "offset").
        columns = ", ".join(f'"{check_identifier(field.name)}"' for field in schema)
        with self._lock:
            view = f"__massalia_src_{name}"[:63]
            self.connection.register(view, reader)
            try:
                # DuckDB answers INSERT with the number of rows added: no count(*) before and after (two round
                # trips per insert, which the live ingest paid six times a batch).
                statement = f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {view}"
                added = self.connection.execute(statement).fetchall()
                return int(added[0][0]) if added else 0
            except duckdb.Error as error:
                raise EngineError(f"DuckDB could not append to table {name}: {error}") from error
            finally:
                self.connection.unregister(view)

    def list_tables(self) -> list[str]:
        """Names of the base tables in the current schema, sorted."""
        rows = self._fetch_arrow(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name"
        )
        return [name.lower() for name in rows.column(0).to_pylist()]

    def describe(self, table: str) -> list[Column]:
        """Columns of ``table`` with DuckDB's type names."""
        rows = self._fetch_arrow(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            f"WHERE table_schema = current_schema() AND table_name = '{check_identifier(table)}' "
            "ORDER BY ordinal_position"
        ).to_pylist()
        if not rows:
            raise EngineError(f"no table named {table}")
        return [Column(r["column_name"], r["data_type"], r["is_nullable"] == "YES") for r in rows]

    def copy_parquet(self, table: str, path: Path) -> None:
        """Export ``table`` to a Parquet file (DuckDB writes it natively)."""
        self._execute_sql(f"COPY {check_identifier(table)} TO '{path.as_posix()}' (FORMAT parquet)")

    def close(self) -> None:
        """Close the connection (the database file stays)."""
        with self._lock:
            self.connection.close()
