"""The research mart over HTTP: its variables (definitions, no personal data) and filtered patient counts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action

router = APIRouter(prefix="/mart", tags=["mart"])


class MartCountBody(BaseModel):
    """Filters on mart variables (the mart's filter language) and the project the count is made under."""

    filters: dict[str, Any] = Field(default_factory=dict)
    project_id: int | None = Field(default=None, ge=1)


@router.get("/variables", **action("mart.variables"))
def variables(context: Context, caller: Caller) -> Any:
    """The mart's variables with their definitions."""
    from massalia.health import marts

    context.governance.authorize(caller, "mart.variables")
    return jsonable_encoder(marts.variables())


@router.post("/count", **action("mart.count"))
def count(body: MartCountBody, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Patients of the mart matching ``filters`` (counts under 10 masked unless an approved project allows)."""
    from massalia.health import research

    result = research.mart_count(context.governance, warehouse, caller, body.filters, project_id=body.project_id)
    return jsonable_encoder(result)
