"""The ETL's service functions: what ``massalia load`` and ``massalia etl ...`` call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from massalia.config import home
from massalia.engine import Engine
from massalia.health.etl.mapping import find_mappings
from massalia.health.etl.pipeline import OmopPipeline
from massalia.pipelines.lineage import LineageStore, RunSummary
from massalia.pipelines.runner import REJECTS, RunResult, run_pipeline

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.progress import Progress

BOOKKEEPING = ("etl_id_map", "etl_loaded_file", "etl_reject")
DEFAULT_MEMORY_LIMIT = "3GB"
"""Keeps a large load (1M patients) under 4 GB of resident memory: DuckDB spills beyond it."""


@dataclass
class EtlReport:
    """What one ETL run did.

    Attributes
    ----------
    run_id
        Identifier of the run in the lineage store and in ``etl_reject``.
    status
        ``success``, or ``unchanged`` when every file had already been loaded.
    seconds
        Wall time of the run.
    rows_added
        OMOP table → net rows added (bookkeeping tables excluded).
    rejects
        ``(table, reason, action, rows)``: ``reject`` rows were not loaded, ``flag`` rows were.
    files_loaded, files_skipped
        Input files read in this run, and files skipped because their content was already loaded.
    rows_read
        Source rows read.
    warnings
        Mapping constants missing from the vocabulary (written as concept 0), and similar notes.
    """

    run_id: str
    status: str
    seconds: float
    rows_added: dict[str, int] = field(default_factory=dict)
    rejects: list[tuple[str, str, str, int]] = field(default_factory=list)
    files_loaded: int = 0
    files_skipped: int = 0
    rows_read: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """Source rows refused (flags not counted)."""
        return sum(n for _, _, action, n in self.rejects if action == "reject")

    @property
    def omop_rows(self) -> int:
        """Rows added to OMOP tables in total."""
        return sum(self.rows_added.values())

    def __str__(self) -> str:
        lines = [
            f"ETL run {self.run_id}: {self.status} in {self.seconds:.1f} s; {self.files_loaded} file(s) loaded, "
            f"{self.files_skipped} already loaded; {self.rows_read:,} rows read, {self.omop_rows:,} OMOP rows "
            f"added, {self.rows_rejected:,} rejected"
        ]
        lines += [f"  {table}: +{rows:,}" for table, rows in sorted(self.rows_added.items())]
        lines += [f"  {action} {table} {reason}: {rows:,}" for table, reason, action, rows in self.rejects]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Render as tables in a terminal (``console.print(report)``)."""
        from rich.table import Table

        yield (
            f"[bold]ETL run[/bold] {self.run_id}: {self.status} in {self.seconds:.1f} s — "
            f"{self.files_loaded} file(s) loaded, {self.files_skipped} already loaded, "
            f"{self.rows_read:,} rows read"
        )
        added = Table(title="Rows added")
        added.add_column("table")
        added.add_column("rows", justify="right")
        for table, rows in sorted(self.rows_added.items()):
            added.add_row(table, f"{rows:,}")
        yield added
        if self.rejects:
            rejected = Table(title="Rejected / flagged rows")
            for name in ("table", "reason", "action"):
                rejected.add_column(name)
            rejected.add_column("rows", justify="right")
            for table, reason, action, rows in self.rejects:
                rejected.add_row(table, reason, action, f"{rows:,}")
            yield rejected
        for warning in self.warnings:
            yield f"[yellow]warning[/yellow]: {warning}"


def run_etl(
    engine: Engine,
    sources_dir: Path,
    *,
    sites: Sequence[str] | None = None,
    metadata_url: str | None = None,
    progress: Progress | None = None,
    memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
) -> EtlReport:
    """Load the site extracts under ``sources_dir`` into the OMOP warehouse on ``engine``.

    Each sub-folder of ``sources_dir`` is a site, mapped by its own ``mapping.yaml`` or by the
    built-in mapping of the same name. The CDM schema is created when absent and the demo
    vocabulary loaded when the CONCEPT table is empty. The load is atomic (all or nothing),
    incremental (files whose content was loaded before are skipped) and recorded in the lineage
    store at ``metadata_url`` (default: ``home().metadata_url``).

    Parameters
    ----------
    engine
        The warehouse.
    sources_dir
        Folder of site folders (``chu_nord/``, ``clcc_sud/``...).
    sites
        Only these sites (default: every site folder with a mapping).
    metadata_url
        SQLAlchemy URL of the metadata database.
    progress
        Optional Rich progress display.
    memory_limit
        Memory the engine may use during the run where it can be capped (DuckDB spills to disk
        beyond it; see ``Engine.bounded_memory``), restored afterwards; ``None`` leaves the setting.

    Returns
    -------
    EtlReport
        Rows added per table, rejects per reason, timing and run id.

    Raises
    ------
    massalia.sources.SourceError
        A file is malformed beyond row-level repair (names file and line); nothing was published.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> report = run_etl(connect("duckdb"), Path("massalia-data/sources"))  # doctest: +SKIP
    >>> report.rows_added["person"]  # doctest: +SKIP
    10000
    """
    mappings = find_mappings(Path(sources_dir), list(sites) if sites else None)
    pipeline = OmopPipeline(Path(sources_dir), mappings)
    store = LineageStore(metadata_url or home().metadata_url)
    try:
        with engine.bounded_memory(memory_limit):
            result: RunResult = run_pipeline(engine, pipeline, store=store, progress=progress)
    finally:
        store.close()
    loaded = [f for f in result.files if not f.skipped]
    return EtlReport(
        run_id=result.run_id,
        status=result.status,
        seconds=result.seconds,
        rows_added={t: n for t, n in result.rows_added.items() if t not in BOOKKEEPING},
        rejects=result.rejects,
        files_loaded=len(loaded),
        files_skipped=len(result.files) - len(loaded),
        rows_read=sum(f.rows_read for f in loaded),
        warnings=list(pipeline.warnings),
    )


def list_runs(
    metadata_url: str | None = None,
    *,
    limit: int = 20,
    offset: int = 0,
    sort: str = "started_at",
    descending: bool = True,
    status: str | None = None,
) -> list[RunSummary]:
    """ETL runs (default: the most recent first), with inputs, outputs and reject counts; one page."""
    store = LineageStore(metadata_url or home().metadata_url)
    try:
        return store.list_runs(limit, pipeline=OmopPipeline.name, offset=offset, sort=sort, descending=descending,
                               status=status)  # fmt: skip
    finally:
        store.close()


def count_runs(metadata_url: str | None = None, *, status: str | None = None) -> int:
    """How many ETL runs :func:`list_runs` pages through (with the same ``status``)."""
    store = LineageStore(metadata_url or home().metadata_url)
    try:
        return store.count_runs(pipeline=OmopPipeline.name, status=status)
    finally:
        store.close()


def get_run(run_id: str, metadata_url: str | None = None) -> RunSummary:
    """One run's lineage (``KeyError`` if unknown)."""
    store = LineageStore(metadata_url or home().metadata_url)
    try:
        return store.get_run(run_id)
    finally:
        store.close()


def show_rejects(
    engine: Engine,
    *,
    run_id: str | None = None,
    site: str | None = None,
    reason: str | None = None,
    action: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Reject (and flag) rows of the warehouse's ``etl_reject`` table, filtered, in file/line order (from ``offset``).

    Each row names ``site``, ``source_file``, ``source_line``, ``target_table``, ``field`` (source
    column), ``target_field``, ``value``, ``reason``, ``action`` and a ``message``.
    """
    if REJECTS not in engine.list_tables():
        return []
    filters = []
    for column, value in (("run_id", run_id), ("site", site), ("reason", reason), ("action", action)):
        if value is not None:
            filters.append(f"{column} = '" + value.replace("'", "''") + "'")
    where = f"WHERE {' AND '.join(filters)}" if filters else ""
    table: pa.Table = engine.query(
        f"SELECT * FROM {REJECTS} {where} ORDER BY source_file, source_line, field"
        f" LIMIT {int(limit)} OFFSET {int(offset)}"
    )
    return table.to_pylist()


def format_reject(row: dict[str, Any]) -> str:
    """One reject row as a sentence naming file, line and field.

    Examples
    --------
    >>> format_reject({"source_file": "p.csv", "source_line": 3, "field": "date_naissance",
    ...                "value": "31/02/1950", "message": "not a valid date (expected %d/%m/%Y)",
    ...                "action": "reject"})
    "p.csv, line 3, field 'date_naissance': not a valid date (expected %d/%m/%Y): '31/02/1950' (reject)"
    """
    return (
        f"{row['source_file']}, line {row['source_line']}, field {row['field']!r}: {row['message']}: "
        f"{row['value']!r} ({row['action']})"
    )
