"""Data-quality reports over HTTP (aggregates only: checks, statuses, counts of violating rows).

The row counts of the results are published coarsened by the release mechanism's post-processing
(:func:`massalia.governance.disclosure.coarsen_count`: rounded, ``null`` under the threshold, the
percentage recomputed from the published counts): the exact report stays in the operator's data folder.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from massalia.api.deps import Caller, Context, action
from massalia.api.errors import ApiError
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, paginate
from massalia.governance import AccessDenied
from massalia.governance import Caller as ServiceCaller
from massalia.governance.disclosure import coarsen_count
from massalia.health.services import quality_report, quality_runs

router = APIRouter(prefix="/quality", tags=["quality"])

Status = Literal["passed", "failed", "not_applicable", "error"]
RunSort = Literal["started_at", "pass_rate"]


def _load_report(context: Context, caller: ServiceCaller) -> dict[str, Any]:
    """The latest report through the guarded service (``health.quality.read``); unreadable is a 409."""
    try:
        return quality_report(caller, context.home.reports)
    except AccessDenied:  # a PermissionError, hence an OSError: a refusal stays a refusal
        raise
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise ApiError(409, "conflict", f"The quality report cannot be read: {type(error).__name__}") from None


@router.get("/report", **action("health.quality.read"))
def report_summary(context: Context, caller: Caller) -> dict[str, Any]:
    """The latest quality report's summary: counts per status, Kahn category, severity and level, pass rate."""
    report = _load_report(context, caller)
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
    results = [
        r for r in _load_report(context, caller).get("results", []) if status is None or r.get("status") == status
    ]
    return paginate([_published(result) for result in results], limit, cursor)


def _count(value: Any) -> int | None:
    return coarsen_count(value) if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _published(result: dict[str, Any]) -> dict[str, Any]:
    """One check result with its row counts coarsened (a small count of violating rows names few persons)."""
    violated, denominator = _count(result.get("num_violated_rows")), _count(result.get("num_denominator_rows"))
    percent = round(100.0 * violated / denominator, 1) if violated is not None and denominator else None
    return {**result, "num_violated_rows": violated, "num_denominator_rows": denominator, "percent_violated": percent,
            "counts": "rounded; null under the disclosure threshold"}  # fmt: skip


@router.get("/runs", response_model=Page, **action("health.quality.read"))
def runs(
    context: Context,
    caller: Caller,
    sort: RunSort = "started_at",
    order: Literal["asc", "desc"] = "desc",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """Every quality run's summary (per status, Kahn category, severity) and its trend since the previous run."""
    try:
        found = quality_runs(caller, context.home.reports)
    except AccessDenied:  # a PermissionError, hence an OSError: a refusal stays a refusal
        raise
    except (OSError, ValueError) as error:
        raise ApiError(409, "conflict", f"The quality history cannot be read: {type(error).__name__}") from None

    def value(run: dict[str, Any]) -> Any:
        return (run.get("summary") or {}).get("pass_rate") if sort == "pass_rate" else run.get("started_at")

    known = sorted((run for run in found if value(run) is not None), key=lambda run: (value(run), run["run"]),
                   reverse=order == "desc")  # fmt: skip
    return paginate([*known, *(run for run in found if value(run) is None)], limit, cursor)
