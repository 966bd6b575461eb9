"""Search over incident narratives and attachments over HTTP, and the saved searches that notify on new matches.

``POST`` for searches, like health's document search: a query may hold a person's name, and a body stays out
of the URLs that proxies and access logs keep. Each route reads a bounded body and calls one guarded service
(:mod:`massalia.safety.search`, :mod:`massalia.safety.views`), which decides what the caller sees and audits.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.safety import notify, services, views
from massalia.safety import search as safety_search
from massalia.safety.query import IncidentFilter
from massalia.text import MAX_PAGE_SIZE, MAX_QUERY_CHARS

router = APIRouter(prefix="/safety", tags=["safety"])

MAX_PAGE = 1000
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class FilterBody(BaseModel):
    """The incident filter every safety body shares (validated against the catalogue by the service)."""

    start: str | None = Field(default=None, max_length=32, description="ISO date or date-time, included")
    end: str | None = Field(default=None, max_length=32, description="ISO date or date-time, excluded")
    zones: list[Code] = Field(default_factory=list, max_length=16)
    families: list[Code] = Field(default_factory=list, max_length=32)
    types: list[Code] = Field(default_factory=list, max_length=200)
    sources: list[Code] = Field(default_factory=list, max_length=3)

    def incident_filter(self) -> IncidentFilter:
        """The :class:`IncidentFilter` (422 naming the field when a code or a date is unknown)."""
        start, end = services.parse_day(self.start, "start"), services.parse_day(self.end, "end")
        return IncidentFilter(
            start, end, tuple(self.zones), tuple(self.families), tuple(self.types), tuple(self.sources)
        )


class SearchBody(FilterBody):
    """A search: the query, the filter, the page."""

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS,
                       description='Words, "phrases", "phrase"~N, AND, OR, NOT (or -), parentheses.')  # fmt: skip
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    page_size: int = Field(default=10, ge=1, le=MAX_PAGE_SIZE)


class SavedSearchBody(FilterBody):
    """A search to keep: its name, the query and the filter."""

    name: str = Field(min_length=1, max_length=views.MAX_NAME_CHARS)
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)


class ReadBody(BaseModel):
    """Notifications to mark read (the caller's own)."""

    notification_ids: list[Annotated[int, Field(ge=1, le=2**62)]] = Field(min_length=1, max_length=notify.MAX_MARKED)


class IndexBody(BaseModel):
    """Whether to rebuild the whole index (otherwise: the reports loaded since the last run)."""

    rebuild: bool = False


@router.post("/search", **action(safety_search.ACTION))
def search(body: SearchBody, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Search narratives and attachments (audited): hits with snippets for narrative readers, else a noisy count."""
    where = body.incident_filter()
    found = safety_search.search_reports(
        caller, warehouse, context.home.indexes, body.query, where=where, page=body.page, page_size=body.page_size
    )
    return found.as_dict()


@router.post("/search/index", **action(safety_search.INDEX_ACTION))
def index(body: IndexBody, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Index the reports loaded since the last run (or rebuild), then notify the saved searches of new matches."""
    return notify.index_and_notify(caller, warehouse, context.home.indexes, rebuild=body.rebuild)


@router.get("/saved-searches", **action(views.SEARCH_ACTION))
def saved_searches(context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """The caller's own saved searches."""
    return views.list_searches(caller, warehouse)


@router.post("/saved-searches", **action(views.SEARCH_ACTION))
def save_search(body: SavedSearchBody, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Keep a search; what is already indexed is not "new" for it."""
    return views.save_search(caller, warehouse, context.home.indexes, body.name, body.query, body.incident_filter())


@router.post("/saved-searches/check", **action(views.SEARCH_ACTION))
def check_searches(context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Run each of the caller's saved searches over the reports indexed since its last check."""
    return views.check_searches(caller, warehouse, context.home.indexes)


@router.delete("/saved-searches/{search_id}", **action(views.SEARCH_ACTION))
def delete_search(
    search_id: Annotated[int, Path(ge=1, le=2**62)], context: Context, caller: Caller, warehouse: Warehouse
) -> dict[str, Any]:
    """Delete one of the caller's saved searches (another user's is not found)."""
    return views.delete_search(caller, warehouse, search_id)


@router.get("/notifications", **action(views.SEARCH_ACTION))
def notifications(context: Context, caller: Caller, warehouse: Warehouse, unread: bool = False) -> dict[str, Any]:
    """The caller's own notifications of new matches of their saved searches (newest first) and the unread count."""
    return notify.list_notifications(caller, warehouse, unread_only=unread)


@router.post("/notifications/read", **action(views.SEARCH_ACTION))
def read_notifications(body: ReadBody, context: Context, caller: Caller, warehouse: Warehouse) -> dict[str, Any]:
    """Mark some of the caller's notifications read (another user's is not found)."""
    return notify.mark_read(caller, warehouse, body.notification_ids)
