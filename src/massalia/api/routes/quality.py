"""Data-quality reports over HTTP (aggregates only: checks, statuses, counts of violating rows).

The row counts of the results are published coarsened by the release mechanism's post-processing
(:func:`massalia.governance.disclosure.coarsen_count`: rounded, ``null`` under the threshold, the
percentage recomputed from the published counts): the exact report stays in the operator's data folder.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from massalia.api.deps import Caller, Context, action
from massalia.api.errors import ApiError
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, paginate
from massalia.governance.disclosure import coarsen_count

router = APIRouter(prefix="/quality", tags=["quality"])

Status = Literal["passed", "failed", "not_applicable", "error"]


def _load_report(context: Context) -> dict[str, Any]:
    path = context.home.reports / "quality.json"
    if not path.is_file():
        raise ApiError(404, "not_found", "No quality report yet: run `massalia quality`.")
    try:
        report: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ApiError(409, "conflict", f"The quality report cannot be read: {type(error).__name__}") from None
    return report


@router.get("/report", **action("health.quality.read"))
def report_summary(context: Context, caller: Caller) -> dict[str, Any]:
    """The latest quality report's summary: counts per status, Kahn category, severity and level, pass rate."""
    context.governance.authorize(caller, "health.quality.read")
    report = _load_report(context)
    return {key: report.get(key) for key in ("schema_version", "engine", "started_at", "seconds", "summary")}


@router.get("/report/results", response_model=Page, **action("health.quality.read"))
def report_results(
    context: Context,
    caller: Caller,
    status: Annotated[Status | None, Query(description="Only results with this status.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """The latest report's check results, a page at a time, optionally of one status."""
    context.governance.authorize(caller, "health.quality.read")
    results = [r for r in _load_report(context).get("results", []) if status is None or r.get("status") == status]
    return paginate([_published(result) for result in results], limit, cursor)


def _count(value: Any) -> int | None:
    return coarsen_count(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _published(result: dict[str, Any]) -> dict[str, Any]:
    """One check result with its row counts coarsened (a small count of violating rows names few persons)."""
    violated, denominator = _count(result.get("num_violated_rows")), _count(result.get("num_denominator_rows"))
    percent = round(100.0 * violated / denominator, 1) if violated is not None and denominator else None
    return {**result, "num_violated_rows": violated, "num_denominator_rows": denominator, "percent_violated": percent,
            "counts": "rounded; null under the disclosure threshold"}  # fmt: skip
