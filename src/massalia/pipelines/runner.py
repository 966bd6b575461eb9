"""The generic pipeline runner: hash → stage → transform and validate → publish atomically → record.

A :class:`Pipeline` says which files it reads and how staged rows become table changes; the runner
does the rest, the same way for every target model:

1. **hash** every input (SHA-256 of the content); files whose hash was already loaded by this
   pipeline are skipped, so re-running the same files changes nothing, whatever their name or mtime;
2. **stage** the new files of each dataset into one engine table through the connectors (Arrow
   batches streamed straight into the engine, with ``_source_file``, ``_source_line``, ``_file_no``);
3. **transform** and **validate** in set-based SQL (:meth:`RunContext.validate` turns rule
   violations into reject rows, never exceptions);
4. **publish** every change, the rejects and the list of loaded files at once (:func:`publish`);
5. **record** the run, its inputs, outputs and reject counts in the lineage store.

Any failure before the publish leaves the published tables exactly as they were.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from massalia.engine import Column, Engine
from massalia.pipelines.lineage import LineageStore
from massalia.pipelines.publish import TableChange, publish
from massalia.pipelines.rules import Rule, rejecting, violation_columns
from massalia.sources import SOURCE_FILE, SOURCE_LINE, SourceError, SourceOptions, get_connector

if TYPE_CHECKING:
    from rich.progress import Progress

FILE_NO = "_file_no"
"""Staging column: the warehouse-wide number of the file a row came from (stable row ids)."""

LOADED_FILES = "etl_loaded_file"
REJECTS = "etl_reject"

LOADED_FILE_COLUMNS = (
    Column("pipeline", "VARCHAR", False),
    Column("dataset", "VARCHAR", False),
    Column("path", "VARCHAR", False),
    Column("sha256", "VARCHAR", False),
    Column("size_bytes", "BIGINT", False),
    Column("rows_read", "BIGINT", False),
    Column("file_no", "BIGINT", False),
    Column("run_id", "VARCHAR", False),
    Column("loaded_at", "TIMESTAMP", False),
)
REJECT_COLUMNS = (
    Column("run_id", "VARCHAR", False),
    Column("site", "VARCHAR"),
    Column("source_file", "VARCHAR"),
    Column("source_line", "BIGINT"),
    Column("target_table", "VARCHAR", False),
    Column("field", "VARCHAR"),
    Column("target_field", "VARCHAR"),
    Column("value", "VARCHAR"),
    Column("reason", "VARCHAR", False),
    Column("action", "VARCHAR", False),
    Column("message", "VARCHAR"),
)


@dataclass(frozen=True)
class InputFile:
    """One file a pipeline reads, under a logical dataset name (e.g. ``chu_nord.patients``)."""

    dataset: str
    path: Path
    options: SourceOptions


@dataclass
class StagedFile:
    """An input after hashing (and staging, unless it was already loaded)."""

    input: InputFile
    sha256: str
    size_bytes: int
    file_no: int = 0
    rows_read: int = 0
    skipped: bool = False


@dataclass
class RunResult:
    """What a run did: rows added per table, rejects per reason, inputs, time, status."""

    run_id: str
    status: str
    seconds: float
    rows_added: dict[str, int] = field(default_factory=dict)
    rejects: list[tuple[str, str, str, int]] = field(default_factory=list)
    files: list[StagedFile] = field(default_factory=list)


def _share_expressions(
    columns: Sequence[tuple[str, str]], rules: Sequence[Rule]
) -> tuple[list[tuple[str, str]], list[Rule]]:
    """Name every distinct expression once; return the named expressions and rules that use names."""
    named = list(columns)
    by_text = {expression: name for name, expression in columns}

    def name_of(expression: str) -> str:
        if expression not in by_text:
            by_text[expression] = f"_e{len(by_text)}"
            named.append((by_text[expression], expression))
        return by_text[expression]

    rewritten = [
        dataclasses.replace(
            rule, value=name_of(rule.value), result=name_of(rule.result) if rule.result is not None else None
        )
        for rule in rules
    ]
    return named, rewritten


def file_sha256(path: Path, block: int = 8 * 1024 * 1024) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, read in blocks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def ensure_bookkeeping_tables(engine: Engine) -> None:
    """Create ``etl_loaded_file`` and ``etl_reject`` in the warehouse when absent."""
    existing = set(engine.list_tables())
    if LOADED_FILES not in existing:
        engine.create_empty_table(LOADED_FILES, LOADED_FILE_COLUMNS)
    if REJECTS not in existing:
        engine.create_empty_table(REJECTS, REJECT_COLUMNS)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", text.lower())[:40]


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class RunContext:
    """What a pipeline's transform sees: the engine, staged tables, and helpers to validate."""

    def __init__(self, engine: Engine, run_id: str, pipeline: str, files: list[StagedFile]) -> None:
        self.engine = engine
        self.run_id = run_id
        self.pipeline = pipeline
        self.files = files
        self.prefix = staging_prefix(run_id)
        self.staged: dict[str, str] = {}
        self.progress: Progress | None = None
        self.temporary: list[str] = []
        # Session-temporary tables skip the write-ahead log and the file: staging costs a third.
        self.temporary_tables = engine.capabilities.temporary_tables
        self.reject_table = self.table("rejects")
        engine.create_empty_table(self.reject_table, REJECT_COLUMNS)
        # Staged rows carry the file's number only (a path per row would be copied at every step).
        self.files_table = self.table("files")
        new = [f for f in files if not f.skipped]
        engine.write_new_table(
            self.files_table,
            pa.table(
                {
                    "file_no": pa.array([f.file_no for f in new], pa.int64()),
                    "path": [str(f.input.path) for f in new],
                },
                schema=pa.schema([("file_no", pa.int64()), ("path", pa.string())]),
            ),
        )

    def table(self, name: str) -> str:
        """A staging table name for this run (dropped at the end of the run)."""
        staging = (self.prefix + _slug(name))[:63]
        if staging not in self.temporary:
            self.temporary.append(staging)
        return staging

    def stage(self, dataset: str) -> str:
        """The staging table of ``dataset``'s new files, read through the connectors on first use.

        Staging on demand lets a pipeline map one group of datasets, free them, and go on, so
        memory follows the largest group rather than the whole delivery.
        """
        if dataset not in self.staged:
            files = [f for f in self.files if not f.skipped and f.input.dataset == dataset]
            if not files:
                raise LookupError(f"no new file for dataset {dataset}")
            table = self.table(f"src_{dataset}")
            task = self.progress.add_task(f"reading {dataset}", total=None) if self.progress else None
            stage_dataset(self, table, files)
            if self.progress and task is not None:
                self.progress.update(task, total=1, completed=1)
            self.staged[dataset] = table
        return self.staged[dataset]

    def path_of(self, file_no_sql: str) -> str:
        """SQL giving the path of the file numbered ``file_no_sql`` (rows carry numbers, not paths)."""
        return f"(SELECT f.path FROM {self.files_table} AS f WHERE f.file_no = {file_no_sql})"

    def create_as(self, name: str, select_sql: str) -> None:
        """Create staging table ``name`` from a query (temporary where the engine has them)."""
        kind = "TEMPORARY TABLE" if self.temporary_tables else "TABLE"
        self.engine.execute(f"CREATE {kind} {name} AS {select_sql}")

    def new_datasets(self) -> set[str]:
        """Datasets that have at least one new (not yet loaded) file in this run."""
        return {f.input.dataset for f in self.files if not f.skipped}

    def validate(
        self,
        *,
        source_sql: str,
        columns: Sequence[tuple[str, str]],
        rules: Sequence[Rule],
        target: str,
        site: str,
        into: str,
        contract: Sequence[Rule] = (),
        contract_target: str | None = None,
    ) -> tuple[int, int]:
        """Map, check and split rows in one pass; return ``(valid rows, rejected rows)``.

        Parameters
        ----------
        source_sql
            ``FROM`` clause body (house dialect) exposing the staged rows as ``s`` (with
            ``_source_file`` and ``_source_line``) and every lookup the column expressions need.
        columns
            ``(name, expression)`` pairs: the output columns.
        rules
            Rules evaluated on each row; ``reject`` rules keep a row out of ``into``.
        target, site
            Reported in reject rows.
        into
            Staging table created with the valid rows (``columns`` plus provenance).
        contract, contract_target
            Rules of the source file's own contract, checked in the same pass (what :meth:`check`
            does in a pass of its own), reported under ``contract_target``. A row they refuse is
            reported by them alone: ``rules`` are not evaluated on it, as if it had been left out
            before the mapping.
        """
        everything = [*contract, *rules]
        named, rewritten = _share_expressions(columns, everything)
        named = [(name, expression) for name, expression in named if name != FILE_NO]
        inner = [
            f"s.{FILE_NO} AS {FILE_NO}",
            f"s.{SOURCE_LINE} AS {SOURCE_LINE}",
            *(f"{expression} AS {name}" for name, expression in named),
        ]
        # Rules read the columns computed by the inner query, so a date is parsed once per row, not
        # once per rule. Only the output columns and the verdicts are kept; a rejected value is kept
        # only on the rows that break a rule (NULL elsewhere costs nothing to store).
        keep = [FILE_NO, SOURCE_LINE, *(name for name, _ in columns if name != FILE_NO)]
        count = len(everything)
        first = len(contract)
        checked = f"(SELECT {', '.join(inner)} FROM {source_sql}) AS m"
        if contract:
            verdicts = [f"coalesce({rule.predicate()}, false) AS _v{i}" for i, rule in enumerate(rewritten[:first])]
            checked = f"(SELECT m.*, {', '.join(verdicts)} FROM {checked}) AS m"
        refused = rejecting(contract)
        verdicts = [
            f"coalesce({rule.predicate()}, false){'' if not contract else f' AND NOT ({refused})'} AS _v{i}"
            for i, rule in enumerate(rewritten)
            if i >= first
        ]
        flagged = [
            f"CASE WHEN _v{i} THEN CAST({rule.value} AS VARCHAR) END AS _x{i}" for i, rule in enumerate(rewritten)
        ]
        self.create_as(
            into,
            f"SELECT {', '.join([*keep, *(f'_v{i}' for i in range(count)), *flagged]) or '*'} FROM ("
            f"SELECT m.*{''.join(', ' + v for v in verdicts)} FROM {checked}) AS checked",
        )
        rejected = 0
        if everything:
            targets = [contract_target or target] * first + [target] * len(rules)
            self._insert_rejects(into, everything, targets, site)
            rejected = self.engine.scalar_int(f"SELECT count(*) FROM {into} WHERE {rejecting(everything)}")
            if rejected:
                self.engine.execute(f"DELETE FROM {into} WHERE {rejecting(everything)}")
            self.drop_columns(into, [*(f"_v{i}" for i in range(count)), *(f"_x{i}" for i in range(count))])
        valid = self.engine.row_count(into)
        return valid, rejected

    def drop_columns(self, table: str, columns: Sequence[str]) -> None:
        """Drop working columns of a staging table where that frees their memory at once (DuckDB).

        The verdict and rejected-value columns are needed only until the rejects are recorded; a
        run keeps its valid rows until the publish, so at 100,000 patients these columns alone
        would hold gigabytes and push DuckDB to spill. Elsewhere the columns stay (harmless).
        """
        if not self.engine.capabilities.column_drops_free_memory:
            return
        for column in columns:
            self.engine.execute_native(f"ALTER TABLE {table} DROP COLUMN {column}")

    def _insert_rejects(self, table: str, rules: Sequence[Rule], targets: Sequence[str], site: str) -> None:
        """Record one reject (or flag) row per rule a row of ``table`` breaks (``_v<i>``, value ``_x<i>``)."""
        parts = [
            f"SELECT {_sql_text(self.run_id)}, {_sql_text(site)}, {self.path_of(f'{table}.{FILE_NO}')}, {SOURCE_LINE}, "
            f"{_sql_text(target)}, {_sql_text(rule.source_field or rule.field)}, {_sql_text(rule.field)}, "
            f"_x{i}, {_sql_text(rule.reason)}, {_sql_text(rule.action)}, {_sql_text(rule.message())} "
            f"FROM {table} WHERE _v{i}"
            for i, (rule, target) in enumerate(zip(rules, targets, strict=True))
        ]
        self.engine.execute(f"INSERT INTO {self.reject_table} " + " UNION ALL ".join(parts))

    def check(self, *, source_sql: str, rules: Sequence[Rule], target: str, site: str, into: str) -> int:
        """Record every violation of ``rules`` and create ``into`` with the refused rows' provenance.

        ``into`` holds ``(_file_no, _source_line)`` of the rows a ``reject`` rule refused, so later
        steps can leave them out with an anti-join instead of copying the good rows. Returns how
        many rows were refused.
        """
        checked = self.table(f"fchk_{into[len(self.prefix) :]}")
        named, rewritten = _share_expressions([], rules)
        inner = [
            f"s.{FILE_NO} AS {FILE_NO}",
            f"s.{SOURCE_LINE} AS {SOURCE_LINE}",
            *(f"{expression} AS {name}" for name, expression in named),
        ]
        any_violation = " OR ".join(f"_v{i}" for i in range(len(rules))) or "false"
        self.create_as(
            checked,
            f"SELECT * FROM (SELECT m.*, {', '.join(violation_columns(rewritten))} "
            f"FROM (SELECT {', '.join(inner)} FROM {source_sql}) AS m) AS c WHERE {any_violation}",
        )
        if rules:
            self._insert_rejects(checked, rules, [target] * len(rules), site)
        self.create_as(into, f"SELECT {FILE_NO}, {SOURCE_LINE} FROM {checked} WHERE {rejecting(rules)}")
        self.engine.drop_table(checked)
        return self.engine.row_count(into)

    def cleanup(self) -> None:
        """Drop every staging table of the run."""
        for name in self.temporary:
            self.engine.drop_table(name)


class Pipeline(ABC):
    """A declarative load: which files, and how staged rows become table changes."""

    name: str

    @abstractmethod
    def inputs(self) -> list[InputFile]:
        """Every file this pipeline reads (already-loaded ones are skipped by the runner)."""

    @abstractmethod
    def prepare(self, engine: Engine) -> None:
        """Make sure the target tables exist (called before anything is staged)."""

    @abstractmethod
    def transform(self, context: RunContext) -> list[TableChange]:
        """Turn the staged datasets into table changes (validation included)."""

    def published_tables(self) -> list[str]:
        """Tables whose row counts are reported (default: every table the changes touch)."""
        return []


def _stream(files: list[StagedFile]) -> Iterator[pa.RecordBatch]:
    schema: pa.Schema | None = None
    for staged in files:
        source = staged.input
        connector = get_connector(source.options.format)
        for batch in connector.read(source.path, source.options):
            if schema is None:
                schema = batch.schema
            elif batch.schema != schema:
                try:
                    batch = pa.RecordBatch.from_arrays(
                        [batch.column(name).cast(schema.field(name).type) for name in schema.names],
                        schema=schema,
                    )
                except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                    raise SourceError(
                        source.path, None, f"columns differ from the other files of {source.dataset}: {error}"
                    ) from None
            staged.rows_read += batch.num_rows
            file_no = pa.array(np.full(batch.num_rows, staged.file_no, dtype=np.int64))
            yield batch.drop_columns([SOURCE_FILE]).append_column(FILE_NO, file_no)


_SQL_TYPES: tuple[tuple[Callable[[pa.DataType], bool], str], ...] = (
    (pa.types.is_boolean, "BOOLEAN"),
    (pa.types.is_int8, "SMALLINT"),
    (pa.types.is_int16, "SMALLINT"),
    (pa.types.is_int32, "INTEGER"),
    (pa.types.is_integer, "BIGINT"),
    (pa.types.is_floating, "DOUBLE"),
    (pa.types.is_decimal, "DOUBLE"),
    (pa.types.is_date, "DATE"),
    (pa.types.is_timestamp, "TIMESTAMP"),
)


def _sql_type(arrow_type: pa.DataType) -> str:
    for test, sql in _SQL_TYPES:
        if test(arrow_type):
            return sql
    return "VARCHAR"  # strings, dictionaries of strings, nulls: text, as every source value may be


def stage_dataset(context: RunContext, table: str, files: list[StagedFile]) -> int:
    """Stream the files of one dataset into a new staging table; return the rows staged.

    The table is created empty (temporary where the engine allows) with the columns of the first
    batch, then filled by the engine's bulk append: batches go straight from the connector to the
    engine, never through Python rows.
    """
    batches = _stream(files)
    first = next(batches, None)
    if first is None:
        names = list(dict.fromkeys([*files[0].input.options.columns, SOURCE_LINE, FILE_NO]))
        columns = [Column(n, "BIGINT" if n in (SOURCE_LINE, FILE_NO) else "VARCHAR") for n in names]
    else:
        columns = [Column(f.name, _sql_type(f.type)) for f in first.schema]
    definition = ", ".join(f'"{c.name}" {c.type}' for c in columns)
    kind = "TEMPORARY TABLE" if context.temporary_tables else "TABLE"
    context.engine.execute(f"CREATE {kind} {table} ({definition})")
    if first is None:
        return 0

    def chained() -> Iterator[pa.RecordBatch]:
        yield first
        yield from batches

    return context.engine.insert(table, chained(), schema=first.schema)


def loaded_hashes(engine: Engine, pipeline: str) -> set[tuple[str, str]]:
    """``(dataset, sha256)`` of every file this pipeline already published."""
    rows = engine.query(
        f"SELECT DISTINCT dataset, sha256 FROM {LOADED_FILES} WHERE pipeline = {_sql_text(pipeline)}"
    ).to_pylist()
    return {(row["dataset"], row["sha256"]) for row in rows}


def staging_prefix(run_id: str) -> str:
    """The prefix of every staging table of run ``run_id`` (``etl_<first 8 hex digits>_``)."""
    return f"etl_{run_id.replace('-', '')[:8]}_"


def close_interrupted_runs(engine: Engine, pipeline: str, store: LineageStore) -> list[str]:
    """Mark the runs of ``pipeline`` whose process died as ``interrupted`` and drop their staging tables.

    A run killed with ``kill -9`` published nothing (the publish is atomic) but stayed ``running``
    in the lineage store forever, and its staging tables stayed in the warehouse. Returns the ids
    of the runs closed.
    """
    closed = []
    existing = engine.list_tables()
    for run in store.interrupted_runs(pipeline):
        prefix = staging_prefix(run.run_id)
        leftovers = [table for table in existing if table.startswith(prefix)]
        for table in leftovers:
            engine.drop_table(table)
        store.mark_interrupted(
            run.run_id,
            f"interrupted: its process ended without recording an end ({run.message}); nothing was published; "
            f"{len(leftovers)} staging table(s) dropped by the next run",
        )
        closed.append(run.run_id)
    return closed


def run_pipeline(
    engine: Engine, pipeline: Pipeline, *, store: LineageStore, progress: Progress | None = None
) -> RunResult:
    """Run ``pipeline`` once on ``engine``, atomically and incrementally, recording its lineage.

    Examples
    --------
    See :func:`massalia.health.etl.run_etl`, which runs the OMOP pipeline through this function.
    """
    start = time.perf_counter()
    close_interrupted_runs(engine, pipeline.name, store)
    run_id = store.start_run(pipeline.name, engine=engine.name, run_id=str(uuid.uuid4()))
    context: RunContext | None = None
    try:
        pipeline.prepare(engine)
        ensure_bookkeeping_tables(engine)
        inputs = pipeline.inputs()
        known = loaded_hashes(engine, pipeline.name)
        next_no = engine.scalar_int(f"SELECT coalesce(max(file_no), 0) FROM {LOADED_FILES}") + 1
        files: list[StagedFile] = []
        task = progress.add_task("hashing source files", total=len(inputs)) if progress else None
        # hashlib releases the GIL on large blocks: the files are hashed on every core at once.
        with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
            hashes = pool.map(file_sha256, [source.path for source in inputs])
            for source, (digest, size) in zip(inputs, hashes, strict=True):
                staged = StagedFile(source, digest, size, skipped=(source.dataset, digest) in known)
                if not staged.skipped:
                    known.add((source.dataset, digest))  # the same content twice in one run loads once
                    staged.file_no, next_no = next_no, next_no + 1
                files.append(staged)
                if progress and task is not None:
                    progress.advance(task)
        context = RunContext(engine, run_id, pipeline.name, files)
        new = [f for f in files if not f.skipped]
        if not new:
            result = RunResult(run_id, "unchanged", time.perf_counter() - start, files=files)
            _record(store, result)
            return result
        context.progress = progress
        changes = pipeline.transform(context)
        changes.append(TableChange(REJECTS, f"SELECT * FROM {context.reject_table}"))
        loaded = context.table("loaded")
        engine.write_new_table(
            loaded,
            pa.table(
                {
                    "pipeline": [pipeline.name] * len(new),
                    "dataset": [f.input.dataset for f in new],
                    "path": [str(f.input.path) for f in new],
                    "sha256": [f.sha256 for f in new],
                    "size_bytes": pa.array([f.size_bytes for f in new], pa.int64()),
                    "rows_read": pa.array([f.rows_read for f in new], pa.int64()),
                    "file_no": pa.array([f.file_no for f in new], pa.int64()),
                    "run_id": [run_id] * len(new),
                }
            ),
        )
        changes.append(TableChange(LOADED_FILES, f"SELECT *, CAST(current_timestamp AS TIMESTAMP) FROM {loaded}"))
        targets = sorted({c.target for c in changes} - {REJECTS, LOADED_FILES})
        before = {t: engine.row_count(t) for t in targets}
        with progress.console.status("publishing") if progress else nullcontext():
            publish(engine, changes)
        rows_added = {t: engine.row_count(t) - before[t] for t in targets}
        rejects = [
            (r["target_table"], r["reason"], r["action"], int(r["n"]))
            for r in engine.query(
                f"SELECT target_table, reason, action, count(*) AS n FROM {context.reject_table} "
                "GROUP BY target_table, reason, action ORDER BY target_table, reason, action"
            ).to_pylist()
        ]
        result = RunResult(run_id, "success", time.perf_counter() - start, rows_added, rejects, files)
        _record(store, result)
        return result
    except BaseException as error:
        store.finish_run(run_id, "failed", message=f"{type(error).__name__}: {error}"[:4000])
        raise
    finally:
        if context is not None:
            context.cleanup()


def _record(store: LineageStore, result: RunResult) -> None:
    for staged in result.files:
        store.add_input(
            result.run_id,
            dataset=staged.input.dataset,
            path=staged.input.path,
            sha256=staged.sha256,
            size_bytes=staged.size_bytes,
            rows_read=staged.rows_read,
            skipped=staged.skipped,
        )
    store.finish_run(result.run_id, result.status, outputs=result.rows_added, rejects=result.rejects)
