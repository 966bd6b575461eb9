"""Schema-first publishing and DCAT-AP routes of the open-data site (beside the CKAN Action API).

- ``GET /api/v1/opendata/resource/{id}/badge.svg``: the resource's validity badge (``lang`` fr or en,
  ``version`` for an earlier publication), an SVG served by the app itself.

The routes only parse and answer: the guarded services decide (:mod:`massalia.opendata.schemas`).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from massalia.api.deps import Caller, Context, action
from massalia.opendata import schemas
from massalia.opendata.catalog import Catalog

router = APIRouter(prefix="/opendata", tags=["opendata"])

READ = "opendata.catalog.read"


@router.get("/resource/{resource_id}/badge.svg", response_class=Response, **action(READ))
def validity_badge(
    resource_id: str,
    context: Context,
    caller: Caller,
    lang: Literal["fr", "en"] = "fr",
    version: int | None = Query(default=None, ge=1, le=10**9),
) -> Response:
    """The validity badge of a resource: valid, invalid (n errors), not validated or no schema."""
    svg = schemas.badge(caller, Catalog.for_home(context.home), resource_id[:36], version=version, lang=lang)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})
