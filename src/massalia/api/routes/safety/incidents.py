"""The unified incident log over HTTP: catalogue, incidents, statistics, map grid, timeline, load quality.

Thin: each route parses bounded query parameters into an :class:`IncidentFilter` and calls one guarded service
of :mod:`massalia.safety.services` with the route's ``Caller``; rights, masking and audit happen there.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.safety import services
from massalia.safety.query import IncidentFilter

router = APIRouter(prefix="/safety", tags=["safety"])

Codes = list[Annotated[str, Query(min_length=1, max_length=64)]]


def incident_filter(
    start: Annotated[str | None, Query(max_length=32, description="ISO date or date-time, included")] = None,
    end: Annotated[str | None, Query(max_length=32, description="ISO date or date-time, excluded")] = None,
    zone: Annotated[Codes | None, Query(max_length=16, description="Zones D01..D16")] = None,
    family: Annotated[Codes | None, Query(max_length=32, description="Type families (VOL, BRU...)")] = None,
    type_: Annotated[Codes | None, Query(alias="type", max_length=200, description="Types (VOL.ARRACHAGE...)")] = None,
    source: Annotated[Codes | None, Query(max_length=3, description="Sources mc, csu, dtp")] = None,
) -> IncidentFilter:
    """The filter every route shares, validated against the catalogue (422 naming the field otherwise)."""
    return IncidentFilter(
        start=services.parse_day(start, "start"),
        end=services.parse_day(end, "end"),
        zones=tuple(zone or ()),
        families=tuple(family or ()),
        types=tuple(type_ or ()),
        sources=tuple(source or ()),
    )


Filter = Annotated[IncidentFilter, Depends(incident_filter)]
Include = Annotated[list[Literal["narrative", "parties"]] | None, Query(max_length=2)]


@router.get("/catalogue", **action("safety.catalogue.read"))
def catalogue(context: Context, caller: Caller) -> dict[str, Any]:
    """The incident-type catalogue: families, types and their crosswalks, each source's local codes."""
    return services.catalogue_view(caller)


@router.get("/incidents", **action("safety.incident.list"))
def incidents(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    where: Filter,
    include: Include = None,
    limit: Annotated[int, Query(ge=1, le=services.MAX_ROWS)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    sort: Literal["occurred_at", "zone", "type", "family", "source", "id"] = "occurred_at",
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """Incidents matching the filter, sorted server-side (newest first by default).

    ``include=narrative`` or ``parties`` needs its own right.
    """
    return services.list_incidents(caller, warehouse, where, include=tuple(include or ()), limit=limit,
                                   offset=offset, sort=sort, descending=order == "desc")  # fmt: skip


@router.get("/incidents/{incident_id}", **action("safety.incident.list"))
def incident(
    incident_id: Annotated[int, Path(ge=1, le=2**62)],
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    include: Include = None,
) -> dict[str, Any]:
    """One incident with every version of its reports (the history) and the dedup rule that joined each."""
    return services.incident_detail(caller, warehouse, incident_id, include=tuple(include or ()))


@router.get("/stats", **action("safety.stats.read"))
def stats(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    where: Filter,
    by: Annotated[Literal["zone", "family", "type", "month", "weekday", "hour"], Query()] = "zone",
) -> dict[str, Any]:
    """Counts by zone/time/type, the previous period (when start and end are given), rates per 10,000, bias notes."""
    return services.statistics(caller, warehouse, where, by)


@router.get("/map", **action("safety.map.read"))
def grid(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    where: Filter,
    cell: Annotated[int, Query(ge=50, le=10_000, description="Cell size in metres (Lambert-93)")] = 500,
) -> dict[str, Any]:
    """Incidents counted on a grid: every filter honoured, no cap on the number of incidents."""
    return services.map_grid(caller, warehouse, where, cell)


@router.get("/timeline", **action("safety.map.read"))
def timeline(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    where: Filter,
    bucket: Annotated[Literal["hour", "day", "week", "month"], Query()] = "day",
) -> dict[str, Any]:
    """Incident counts per time bucket under the same filter as the map."""
    return services.timeline(caller, warehouse, where, bucket)


@router.get("/quality", **action("safety.quality.read"))
def quality(context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Rejected rows by source and reason, unmapped local codes, dedup decisions by rule."""
    return services.quality(caller, warehouse)
