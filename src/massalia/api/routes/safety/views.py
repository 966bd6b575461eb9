"""Saved views over HTTP: a filter and a layout for the dashboard, map and timeline, shared within a role.

Each route calls one guarded service of :mod:`massalia.safety.views` (owner and role checks, audit there).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.routes.safety.search import FilterBody
from massalia.safety import views

router = APIRouter(prefix="/safety", tags=["safety"])

Panel = Literal["stats", "map", "heatmap", "timeline", "bias"]
DEFAULT_PANELS: tuple[Panel, ...] = ("stats", "map", "timeline")


class Layout(BaseModel):
    """What a view shows: the grouping of its statistics, its timeline bucket, its map cell, its panels."""

    by: Literal["zone", "family", "type", "month", "weekday", "hour"] = "zone"
    bucket: Literal["hour", "day", "week", "month"] = "day"
    cell: int = Field(default=500, ge=50, le=10_000)
    panels: list[Panel] = Field(default_factory=lambda: list(DEFAULT_PANELS), max_length=5)
    rate: bool = False


class ViewBody(BaseModel):
    """A view to keep: its name, filter and layout, and the role to share it with (one of the caller's)."""

    name: str = Field(min_length=1, max_length=views.MAX_NAME_CHARS)
    filter: FilterBody = Field(default_factory=FilterBody)
    layout: Layout = Field(default_factory=Layout)
    share: Literal["safety_operator", "safety_analyst", "safety_manager"] | None = None


ViewId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/views", **action(views.VIEW_ACTION))
def list_views(context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """The caller's views and those shared with one of their roles."""
    return views.list_views(caller, warehouse)


@router.post("/views", **action(views.VIEW_ACTION))
def save_view(body: ViewBody, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Keep a view (optionally shared with one of the caller's safety roles)."""
    return views.save_view(caller, warehouse, body.name, body.filter.incident_filter(), body.layout.model_dump(),
                           share=body.share)  # fmt: skip


@router.get("/views/{view_id}", **action(views.VIEW_ACTION))
def get_view(view_id: ViewId, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """One view the caller may open."""
    return views.get_view(caller, warehouse, view_id)


@router.delete("/views/{view_id}", **action(views.VIEW_ACTION))
def delete_view(view_id: ViewId, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Delete one of the caller's own views."""
    return views.delete_view(caller, warehouse, view_id)
