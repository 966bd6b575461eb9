"""The research mart over HTTP: its variables (definitions, no personal data) and filtered patient counts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.errors import ApiError
from massalia.health.dashboard import cohort_dashboard
from massalia.health.marts.filters import FilterError, FilterSpec, MartNotBuiltError

router = APIRouter(prefix="/mart", tags=["mart"])


class MartCountBody(BaseModel):
    """Filters on mart variables and the project the count is made under."""

    filters: FilterSpec = Field(default_factory=FilterSpec)
    project_id: int | None = Field(default=None, ge=1)


class MartBreakdownBody(MartCountBody):
    """A count broken down by the values of one category variable."""

    by: str = Field(min_length=1, max_length=128, description="A category variable of the mart.")


@router.get("/variables", **action("health.mart.variables"))
def variables(context: Context, caller: Caller) -> list[dict[str, Any]]:
    """The mart's variables: name, labels, type, values, unit, group, definition, disclosure, date grain, provenance.

    ``date_grain`` is the finest grain a count without an approved project may compare a date at (``year`` or
    ``month``; ``null`` for other types, and a date without one is compared by ``year``).
    """
    from massalia.health.services import mart_variables

    fields = ("name", "label_en", "label_fr", "type", "values", "unit", "group", "definition", "disclosure",
              "date_grain", "provenance")  # fmt: skip
    found = mart_variables(caller)
    return [jsonable_encoder(variable.model_dump(include=set(fields))) for variable in found]


@router.post("/count", **action("health.mart.count"))
def count(body: MartCountBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Patients of the mart matching ``filters``: exact for an approved project's members, otherwise noisy.

    A noisy count is rounded; ``null`` means under the threshold (a true 0 included); ``release`` says
    how it was released and how much privacy budget is left. Without an approved project, filters may
    not use identifiers, and dates only at their catalogue grain.
    """
    from massalia.health import research

    with _mart_errors():
        result = research.mart_count(caller, warehouse, body.filters, project_id=body.project_id)
    return jsonable_encoder(result)


@router.post("/breakdown", **action("health.mart.count"))
def breakdown(body: MartBreakdownBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Patients matching ``filters`` by value of the category ``by`` (every value a cell, plus the total).

    Exact for an approved project's members; otherwise one noisy release of every cell and the total.
    """
    from massalia.health import research

    with _mart_errors():
        result = research.mart_breakdown(caller, warehouse, body.filters, body.by, project_id=body.project_id)
    return {"variable": result.variable, "total": result.total, "total_shown": result.total_shown,
            "release": result.release,
            "cells": [{"value": value, "count": count, "shown": result.shown[value]}
                      for value, count in result.cells.items()]}  # fmt: skip


DashboardPanel = Literal["demographics", "cancer_sites", "stage", "biomarkers", "treatment_lines", "vital_status"]


class MartDashboardBody(MartCountBody):
    """A cohort (mart filters; a generated cohort by ``cohort_definition_id``), its project, and which panels."""

    panels: list[DashboardPanel] | None = Field(default=None, max_length=6, description="Default: every panel.")


@router.post("/dashboard", **action("health.mart.count"))
def dashboard(body: MartDashboardBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """A cohort's size and distributions (demographics, sites, stage, biomarkers, lines, vital status).

    Each number is released exactly as ``/mart/count`` and ``/mart/breakdown`` release it: exact for an
    approved project's members within its scope, otherwise noisy and charged to the privacy budget (one
    release per breakdown; the same answer again costs nothing).
    """
    with _mart_errors():
        return cohort_dashboard(caller, warehouse, body.filters, project_id=body.project_id,
                                panels=body.panels)  # fmt: skip


@router.post("/build", **action("health.mart.build"))
def build(context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Build or rebuild the research mart from the warehouse (admins and data engineers; audited)."""
    from massalia.health import research

    with _mart_errors():
        result = research.mart_build(caller, warehouse)
    return jsonable_encoder(result)


@contextmanager
def _mart_errors() -> Iterator[None]:
    """A filter that does not fit the catalogue is the client's 422; a missing mart a 409."""
    from massalia.health.marts.builder import MartError

    try:
        yield
    except MartNotBuiltError as error:  # the state, not the request, is wrong (docs/api.md: 409)
        raise ApiError(409, "conflict", f"The research mart is not available: {error}") from None
    except FilterError as error:
        raise ApiError(422, "invalid_request", f"The filter does not fit the mart: {error}",
                       details=[(["body", "filters"], str(error))]) from None  # fmt: skip
    except MartError as error:
        raise ApiError(409, "conflict", f"The research mart is not available: {error}") from None
