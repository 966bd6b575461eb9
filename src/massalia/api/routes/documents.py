"""Full-text search of the clinical documents over HTTP (``health.document.search``).

A ``POST``, like the patient view: a search may hold a patient's name, and a body stays out of the URLs
that proxies and access logs keep. The route only reads the bounded body and calls the guarded service
:func:`massalia.health.documents.search.search_notes`, which decides what the caller sees (a clinician's own
site, a project's scope by pseudonym without text, else a noisy count of persons) and audits the search.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.health.documents.search import NoteFilters, search_notes
from massalia.text import MAX_PAGE_SIZE, MAX_QUERY_CHARS

router = APIRouter(prefix="/documents", tags=["documents"])

MAX_PAGE = 1000


class DocumentSearchBody(BaseModel):
    """The query, the filters and the page (every field bounded)."""

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS,
                       description='Words, "phrases", "phrase"~N, AND, OR, NOT (or -), parentheses.')  # fmt: skip
    site: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    note_type: str | None = Field(default=None, min_length=1, max_length=100)
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    project_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    page_size: int = Field(default=10, ge=1, le=MAX_PAGE_SIZE)


class DocumentSearchOut(BaseModel):
    """What the caller may see: see ``mode`` (identified, pseudonymized, aggregate, count)."""

    mode: Literal["identified", "pseudonymized", "aggregate", "count"]
    total: int | None
    persons: int | None
    hits: list[dict[str, Any]]
    facets: dict[str, dict[str, int]]
    page: int
    page_size: int
    audit_index: int | None
    release: dict[str, Any]
    withheld: list[str]


@router.post("/search", response_model=DocumentSearchOut, **action("health.document.search"))
def search(body: DocumentSearchBody, context: Context, caller: Caller, warehouse: Warehouse) -> DocumentSearchOut:
    """Search the notes (audited), answering as much as the caller may see.

    Hits with snippets of a clinician's own site, pseudonymized hits in an approved project's scope (no text),
    else only the number of persons with a matching note, released noisy.
    """
    filters = NoteFilters(site=body.site, note_type=body.note_type, date_from=body.date_from, date_to=body.date_to)
    found = search_notes(caller, warehouse, context.home.indexes, body.query, filters=filters,
                         project_id=body.project_id, page=body.page, page_size=body.page_size)  # fmt: skip
    return DocumentSearchOut(mode=found.mode, total=found.total, persons=found.persons, hits=found.hits,
                             facets=found.facets, page=found.page, page_size=found.page_size,
                             audit_index=found.audit_index, release=found.release,
                             withheld=list(found.withheld))  # fmt: skip
