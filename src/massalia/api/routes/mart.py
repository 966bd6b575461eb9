"""The research mart over HTTP: its variables (definitions, no personal data) and filtered patient counts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.errors import ApiError
from massalia.health.marts.filters import FilterError, FilterSpec

router = APIRouter(prefix="/mart", tags=["mart"])


class MartCountBody(BaseModel):
    """Filters on mart variables and the project the count is made under."""

    filters: FilterSpec = Field(default_factory=FilterSpec)
    project_id: int | None = Field(default=None, ge=1)


@router.get("/variables", **action("mart.variables"))
def variables(context: Context, caller: Caller) -> list[dict[str, Any]]:
    """The mart's variables: name, labels, type, allowed values, unit, group, definition, disclosure class."""
    from massalia.health.marts.catalogue import load_catalogue

    context.governance.authorize(caller, "mart.variables")
    fields = ("name", "label_en", "label_fr", "type", "values", "unit", "group", "definition", "disclosure")
    return [jsonable_encoder(variable.model_dump(include=set(fields))) for variable in load_catalogue().variables]


@router.post("/count", **action("mart.count"))
def count(body: MartCountBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Patients of the mart matching ``filters`` (counts under 10 masked unless an approved project allows)."""
    from massalia.health import research
    from massalia.health.marts.builder import MartError

    try:
        result = research.mart_count(
            context.governance, warehouse, caller, body.filters, project_id=body.project_id, channel="api"
        )
    except FilterError as error:
        raise ApiError(422, "invalid_request", f"The filter does not fit the mart: {error}",
                       details=[(["body", "filters"], str(error))]) from None  # fmt: skip
    except MartError as error:
        raise ApiError(409, "conflict", f"The research mart is not available: {error}") from None
    return jsonable_encoder(result)
