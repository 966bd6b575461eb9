"""The vocabulary browser over HTTP: concept search, and one concept with its hierarchy and mappings.

Reference metadata, no personal data: every signed-in role may read it (``health.vocabulary.read``); the
guarded service :mod:`massalia.health.concepts` checks the right, bounds and paginates.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, encode_cursor
from massalia.health.concepts import MAX_TEXT, ConceptSearch, ConceptSort, concept_detail, search_concepts

router = APIRouter(prefix="/vocabulary", tags=["vocabulary"])

CHANNEL = "api"
Text = Annotated[str | None, Query(max_length=MAX_TEXT)]
Order = Literal["asc", "desc"]


@router.get("/concepts", response_model=Page, **action("health.vocabulary.read"))
def concepts(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    q: Annotated[str | None, Query(max_length=MAX_TEXT, description="Name (anywhere), code (prefix) or id.")] = None,
    domain: Text = None,
    vocabulary: Text = None,
    concept_class: Text = None,
    standard: Annotated[bool, Query(description="Only standard concepts.")] = False,
    sort: ConceptSort = "concept_name",
    order: Order = "asc",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """Concepts by name, code or id, of a domain, vocabulary or class, standard only or not; a page at a time."""
    start = decode_cursor(cursor)
    search = ConceptSearch(text=q, domain=domain, vocabulary=vocabulary, concept_class=concept_class,
                           standard_only=standard, sort=sort, descending=order == "desc", offset=start,
                           limit=limit)  # fmt: skip
    found = search_concepts(caller, warehouse, search)
    stop = start + len(found.items)
    return Page(items=found.items, next=encode_cursor(stop) if stop < found.total else None, total=found.total)


@router.get("/concepts/{concept_id}", **action("health.vocabulary.read"))
def concept(
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
    concept_id: Annotated[int, Path(ge=-(2**31), le=2**31 - 1)],
    limit: Annotated[int, Query(ge=1, le=500, description="Most ancestors, descendants, relationships.")] = 100,
) -> dict[str, Any]:
    """One concept, its ancestors and descendants (closest first) and its relationships (mappings first)."""
    detail = concept_detail(caller, warehouse, concept_id, limit=limit)
    return {"concept": detail.concept, "ancestors": detail.ancestors, "descendants": detail.descendants,
            "relationships": detail.relationships, "totals": detail.totals}  # fmt: skip
