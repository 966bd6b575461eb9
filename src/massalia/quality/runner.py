"""Run the registered checks on a warehouse: plan, batch per table, evaluate, report."""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from rich.progress import Progress

from massalia.engine.base import Engine, EngineError
from massalia.quality.checks import (
    CheckDefinitionError,
    CheckType,
    Fragment,
    MetadataCheck,
    QueryCheck,
    ScanCheck,
    ident,
    scan_query,
)
from massalia.quality.definitions import CheckDescription, CheckInstance
from massalia.quality.history import record_run
from massalia.quality.registry import CheckRegistry
from massalia.quality.report import (
    ERROR,
    NOT_APPLICABLE,
    CheckResult,
    QualityReport,
    evaluate,
)

SCAN_CHUNK = 120
"""Fragments per scan query: PostgreSQL allows 1,664 output columns; smaller chunks isolate errors."""


@dataclass
class _Planned:
    check_type: CheckType
    description: CheckDescription
    instance: CheckInstance


@dataclass(frozen=True)
class Warehouse:
    """What the engine holds: the tables the checks may read, their columns and row counts."""

    columns: dict[str, frozenset[str]]
    rows: dict[str, int]
    types: dict[tuple[str, str], str]

    @classmethod
    def inspect(cls, engine: Engine, tables: Collection[str]) -> Warehouse:
        """Read the catalogue once (columns and row counts of those of ``tables`` that exist)."""
        known = {table.lower() for table in tables}
        present = [t for t in engine.list_tables() if t.lower() in known]
        described = {t.lower(): engine.describe(t) for t in present}
        columns = {t: frozenset(c.name.lower() for c in cols) for t, cols in described.items()}
        types = {(t, c.name.lower()): c.type for t, cols in described.items() for c in cols}
        rows = {t.lower(): engine.row_count(t) for t in present}
        return cls(columns, rows, types)

    def missing(self, requires: dict[str, tuple[str, ...]]) -> str | None:
        """Why a check cannot apply (absent or empty table, absent field), else ``None``."""
        for table, fields in requires.items():
            if table not in self.columns:
                return f"table {table} is absent"
            if self.rows.get(table, 0) == 0:
                return f"table {table} is empty"
            for name in fields:
                if name not in self.columns[table]:
                    return f"field {table}.{name} is absent"
        return None


def _result(
    planned: _Planned,
    *,
    violated: int | None = None,
    denominator: int | None = None,
    status: str | None = None,
    message: str | None = None,
    sql: str | None = None,
    seconds: float = 0.0,
) -> CheckResult:
    instance, description = planned.instance, planned.description
    percent = None
    if status is None:
        percent, status = evaluate(int(violated or 0), int(denominator or 0), instance.threshold)
        if status == NOT_APPLICABLE:
            message = "no record to evaluate"
    return CheckResult(
        check_id=instance.check_id,
        check_name=description.name,
        level=description.level,
        table=instance.table,
        field=instance.field,
        concept_id=instance.concept_id,
        unit_concept_id=instance.unit_concept_id,
        category=description.kahn_category,
        subcategory=description.kahn_subcategory,
        context=description.kahn_context,
        severity=description.severity,
        description=_describe(description.description, instance),
        num_violated_rows=None if violated is None else int(violated),
        num_denominator_rows=None if denominator is None else int(denominator),
        percent_violated=None if percent is None else round(percent, 4),
        threshold=instance.threshold,
        status=status,
        message=message,
        sql=sql,
        seconds=round(seconds, 4),
    )


def _describe(text: str, instance: CheckInstance) -> str:
    """Fill DQD's ``@placeholders`` from the instance's definition row."""
    values = {**instance.params, "cdmTableName": instance.table.upper(), "cdmFieldName": (instance.field or "")}
    for key in sorted(values, key=len, reverse=True):
        text = text.replace(f"@{key}", str(values[key]))
    return text


class _Run:
    def __init__(self, engine: Engine, warehouse: Warehouse, advance: Callable[[int], None]) -> None:
        self.engine = engine
        self.warehouse = warehouse
        self.advance = advance
        self.results: dict[int, CheckResult] = {}

    def run_scans(self, scans: dict[str, list[tuple[int, _Planned, Fragment]]]) -> dict[str, dict[str, int]]:
        """Run every table's fragments; return non-NULL counts per probed field."""
        non_null: dict[str, dict[str, int]] = defaultdict(dict)
        for table, items in scans.items():
            probes = sorted(
                {ident(p.instance.field) for _, p, _ in items if p.instance.field} & self.warehouse.columns[table]
            )
            probe_fragments = [Fragment(f"COUNT(t.{name})", "0") for name in probes]
            for start in range(0, max(len(items), 1), SCAN_CHUNK):
                chunk = items[start : start + SCAN_CHUNK]
                extra = probe_fragments if start == 0 else []
                values = self._scan(table, [f for _, _, f in chunk] + extra, chunk)
                if values is not None and extra:
                    offset = len(chunk)
                    for index, name in enumerate(probes):
                        non_null[table][name] = int(values[f"n{offset + index}"] or 0)
                self.advance(len(chunk))
        return non_null

    def _scan(
        self, table: str, fragments: list[Fragment], chunk: list[tuple[int, _Planned, Fragment]]
    ) -> dict[str, int] | None:
        started = time.perf_counter()
        try:
            row = self.engine.query(scan_query(table, fragments)).to_pylist()[0]
        except EngineError:
            if len(chunk) > 1:
                for item in chunk:
                    self._scan(table, [item[2]], [item])
                return None
            position, planned, fragment = chunk[0]
            self.results[position] = _result(
                planned, status=ERROR, message=_error_text(), sql=scan_query(table, [fragment])
            )
            return None
        seconds = (time.perf_counter() - started) / max(len(chunk), 1)
        for index, (position, planned, fragment) in enumerate(chunk):
            self.results[position] = _result(
                planned,
                violated=row[f"n{index}"] or 0,
                denominator=row[f"d{index}"] or 0,
                sql=scan_query(table, [fragment]),
                seconds=seconds,
            )
        return row

    def run_queries(self, batches: dict[tuple[str, ...], list[tuple[int, _Planned]]]) -> None:
        """Run each batch of query checks; a failing batch is retried one instance at a time."""
        for items in batches.values():
            self._query(items)
            self.advance(len(items))

    def _query(self, items: list[tuple[int, _Planned]]) -> None:
        check_type = cast(QueryCheck, items[0][1].check_type)
        started = time.perf_counter()
        try:
            sql = check_type.query([p.instance for _, p in items])
            rows = self.engine.query(sql).to_pylist()
        except (EngineError, CheckDefinitionError) as error:
            if len(items) > 1:
                for item in items:
                    self._query([item])
                return
            position, planned = items[0]
            self.results[position] = _result(planned, status=ERROR, message=str(error).split("\n")[0][:500])
            return
        seconds = (time.perf_counter() - started) / len(items)
        found = {int(r["k"]): r for r in rows}
        for k, (position, planned) in enumerate(items):
            row = found.get(k, {})
            self.results[position] = _result(
                planned,
                violated=row.get("num_violated_rows") or 0,
                denominator=row.get("num_denominator_rows") or 0,
                sql=check_type.query([planned.instance]),
                seconds=seconds,
            )


def _error_text() -> str:
    error = sys.exc_info()[1]
    return str(error).split("\n")[0][:500] if error else "unknown error"


def run_checks(
    engine: Engine,
    registry: CheckRegistry,
    *,
    tables: Collection[str],
    out_dir: Path | None = None,
    checks: Sequence[str] | None = None,
    progress: Progress | None = None,
) -> QualityReport:
    """Run the registered data-quality checks on a warehouse and report one result per check instance.

    Parameters
    ----------
    engine
        The warehouse engine.
    registry
        The check types to run (a domain's, e.g. :func:`massalia.health.quality.registry.default_registry`).
    tables
        The tables the checks may read (the domain's data model); others in the warehouse are not inspected.
    out_dir
        When given, ``quality.json`` and ``quality.html`` are written there.
    checks
        Check names to run; all by default (an unknown name raises ``KeyError`` naming the known ones).
    progress
        A Rich progress display to report on.

    Returns
    -------
    QualityReport
        One result per check instance, in registry order.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> with connect("duckdb") as engine:
    ...     report = run_checks(engine, CheckRegistry(), tables=["person"])
    >>> report.results
    []
    """
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    warehouse = Warehouse.inspect(engine, tables)
    planned = [
        _Planned(registered.check_type, registered.description, instance)
        for registered in registry.checks(checks)
        for instance in registered.instances
    ]
    task = progress.add_task("Quality checks", total=len(planned)) if progress is not None else None

    def advance(count: int) -> None:
        if progress is not None and task is not None:
            progress.advance(task, count)

    run = _Run(engine, warehouse, advance)
    scans: dict[str, list[tuple[int, _Planned, Fragment]]] = defaultdict(list)
    batches: dict[tuple[str, ...], list[tuple[int, _Planned]]] = defaultdict(list)
    for position, item in enumerate(planned):
        check_type = item.check_type
        if isinstance(check_type, MetadataCheck):
            violated = check_type.violated(item.instance, warehouse.columns)
            run.results[position] = _result(item, violated=int(violated), denominator=1)
            advance(1)
            continue
        try:
            reason = warehouse.missing(check_type.requires(item.instance))
            column_type = warehouse.types.get((item.instance.table, (item.instance.field or "").lower()), "")
            if (
                reason is None
                and isinstance(check_type, ScanCheck)
                and check_type.holds_by_type(item.instance, column_type)
            ):
                rows = warehouse.rows[item.instance.table]
                run.results[position] = _result(item, violated=0, denominator=rows, message=f"{column_type} column")
                advance(1)
                continue
            if reason is None and isinstance(check_type, ScanCheck):
                scans[item.instance.table].append((position, item, check_type.fragment(item.instance)))
            elif reason is None and isinstance(check_type, QueryCheck):
                batches[check_type.batch_key(item.instance)].append((position, item))
        except (CheckDefinitionError, ValueError) as error:
            run.results[position] = _result(item, status=ERROR, message=str(error))
            advance(1)
            continue
        if reason is not None:
            run.results[position] = _result(item, status=NOT_APPLICABLE, message=reason)
            advance(1)
    non_null = run.run_scans(scans)
    run.run_queries(batches)
    detect_empty = {item.description.name for item in planned if item.check_type.detects_empty_field}
    results = [_field_emptiness(run.results[i], non_null, detect_empty) for i in range(len(planned))]
    report = QualityReport(
        results=results,
        engine=engine.name,
        seconds=time.perf_counter() - started,
        started_at=started_at,
        metadata={"tables": warehouse.rows},
    )
    if out_dir is not None:
        report.to_json(Path(out_dir) / "quality.json")
        report.to_html(Path(out_dir) / "quality.html")
        record_run(Path(out_dir), report)  # the runs' history, for the trend between runs
    return report


def _field_emptiness(result: CheckResult, non_null: dict[str, dict[str, int]], detect_empty: set[str]) -> CheckResult:
    """DQD: a check on a field holding no value at all is not applicable (except those that detect it)."""
    if result.field is None or result.check_name in detect_empty or result.status == ERROR:
        return result
    if non_null.get(result.table, {}).get(result.field) == 0:
        return replace(result, status=NOT_APPLICABLE, percent_violated=None, message=f"{result.field} is empty")
    return result
