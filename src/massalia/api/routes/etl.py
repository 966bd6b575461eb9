"""ETL runs over HTTP: their history, one run's lineage, and its rejected source rows (for those allowed).

The routes call the guarded services the command line's ``massalia etl runs|show|rejects`` call
(:mod:`massalia.health.etl.service`): runs and lineage need ``health.etl.read`` (admins, data engineers,
DPOs); rejected rows hold raw source values, so they need ``health.etl.rejects`` (admins and data engineers),
are bounded per page and every page read is audited with its filters.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, encode_cursor
from massalia.health.etl.service import MAX_FILTER_LENGTH, etl_run, etl_run_page, rejected_rows
from massalia.health.records import json_value
from massalia.pipelines.lineage import RunSummary

router = APIRouter(prefix="/etl", tags=["etl"])

CHANNEL = "api"
RunSort = Literal["started_at", "ended_at", "status", "engine", "run_id"]
RunId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Filter = Annotated[str | None, Query(min_length=1, max_length=MAX_FILTER_LENGTH)]
RejectLimit = Annotated[int, Query(ge=1, le=500, description="Rejected rows per page (1 to 500).")]


def _counts(run: RunSummary) -> dict[str, int]:
    return {
        "files": len(run.inputs),
        "files_skipped": sum(1 for item in run.inputs if item.get("skipped")),
        "rows_read": sum(int(item.get("rows_read") or 0) for item in run.inputs),
        "rows_added": sum(int(rows) for rows in run.outputs.values()),
        "rows_rejected": sum(int(item.get("rows") or 0) for item in run.rejects if item.get("action") == "reject"),
        "rows_flagged": sum(int(item.get("rows") or 0) for item in run.rejects if item.get("action") != "reject"),
    }


def _run(run: RunSummary) -> dict[str, Any]:
    """A run as one line of the history: status, dates, engine, code version and counts."""
    return {
        "run_id": run.run_id, "pipeline": run.pipeline, "status": run.status,
        "started_at": json_value(run.started_at), "ended_at": json_value(run.ended_at), "engine": run.engine,
        "code_version": run.code_version, "message": run.message, "counts": _counts(run),
    }  # fmt: skip


@router.get("/runs", response_model=Page, **action("health.etl.read"))
def runs(
    context: Context,
    caller: Caller,
    status: Filter = None,
    sort: RunSort = "started_at",
    order: Literal["asc", "desc"] = "desc",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """ETL runs (default: newest first) with status, dates and counts, a page at a time (admins, engineers, DPOs)."""
    start = decode_cursor(cursor)
    found, total = etl_run_page(caller, context.home.metadata_url, offset=start, limit=limit,
                                sort=sort, descending=order == "desc", status=status)  # fmt: skip
    stop = start + len(found)
    return Page(items=[_run(run) for run in found], next=encode_cursor(stop) if stop < total else None, total=total)


@router.get("/runs/{run_id}", **action("health.etl.read"))
def run_lineage(run_id: RunId, context: Context, caller: Caller) -> dict[str, Any]:
    """One run's lineage: every input file (path, SHA-256, size, rows read), rows added per table, rejects."""
    found = etl_run(caller, context.home.metadata_url, run_id)
    return {**_run(found), "inputs": found.inputs, "outputs": found.outputs, "rejects": found.rejects}


@router.get("/runs/{run_id}/rejects", response_model=Page, **action("health.etl.rejects"))
def run_rejects(
    run_id: RunId,
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    site: Filter = None,
    reason: Filter = None,
    limit: RejectLimit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """A run's rejected source rows in file and line order, a bounded page at a time (audited: raw values)."""
    start = decode_cursor(cursor)
    # One row more than asked says whether a next page exists without counting every reject.
    rows = rejected_rows(caller, warehouse, run_id=run_id, site=site, reason=reason,
                         limit=limit + 1, offset=start)  # fmt: skip
    page = [{key: json_value(value) for key, value in row.items()} for row in rows[:limit]]
    return Page(items=page, next=encode_cursor(start + limit) if len(rows) > limit else None, total=None)
