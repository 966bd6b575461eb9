"""Schema-first publishing and DCAT-AP routes of the open-data site (beside the CKAN Action API).

- ``GET /api/v1/opendata/catalog.ttl|.rdf|.xml|.jsonld``: the public catalog in DCAT-AP 3 (Turtle, RDF/XML,
  JSON-LD), ``page`` and ``page_size`` with Hydra paging, as ckanext-dcat's ``/catalog.{format}`` (the CKAN site
  root is ``/api/v1/opendata``).
- ``GET /api/v1/opendata/dataset/{id}.ttl|.rdf|.xml|.jsonld``: one dataset in DCAT-AP 3 (ckanext-dcat's
  ``/dataset/{id}.{format}``).
- ``GET /api/v1/opendata/resource/{id}/badge.svg``: the resource's validity badge (``lang`` fr or en,
  ``version`` for an earlier publication), an SVG served by the app itself.

The routes only parse and answer: the guarded services decide (:mod:`massalia.opendata.schemas`,
:mod:`massalia.opendata.dcat`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from massalia.api.deps import Caller, Context, action
from massalia.opendata import dcat, schemas
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


def _catalog_route(fmt: str) -> Callable[..., Response]:
    def catalog(
        request: Request,
        context: Context,
        caller: Caller,
        page: int = Query(default=1, ge=1, le=10**6),
        page_size: int = Query(default=dcat.DEFAULT_PAGE_SIZE, ge=1, le=dcat.MAX_PAGE_SIZE),
    ) -> Response:
        site = str(request.base_url).rstrip("/")
        data, media = dcat.export(
            caller, Catalog.for_home(context.home), site=site, fmt=fmt, page=page, page_size=page_size
        )
        return Response(data, media_type=media)

    catalog.__name__ = f"dcat_catalog_{fmt}"
    catalog.__doc__ = f"The public catalog in DCAT-AP 3 ({dcat.FORMATS[fmt][1]}), a page at a time (Hydra paging)."
    return catalog


for _fmt in dcat.FORMATS:
    router.add_api_route(
        f"/catalog.{_fmt}",
        _catalog_route(_fmt),
        methods=["GET"],
        name=f"dcat_catalog_{_fmt}",
        response_class=Response,
        **action(READ),
    )


def _dataset_route(fmt: str) -> Callable[..., Response]:
    def dataset(dataset_id: str, request: Request, context: Context, caller: Caller) -> Response:
        site = str(request.base_url).rstrip("/")
        data, media = dcat.export_dataset(caller, Catalog.for_home(context.home), dataset_id[:100], site=site, fmt=fmt)
        return Response(data, media_type=media)

    dataset.__name__ = f"dcat_dataset_{fmt}"
    dataset.__doc__ = f"One dataset in DCAT-AP 3 ({dcat.FORMATS[fmt][1]})."
    return dataset


for _fmt in dcat.FORMATS:
    router.add_api_route(
        f"/dataset/{{dataset_id}}.{_fmt}",
        _dataset_route(_fmt),
        methods=["GET"],
        name=f"dcat_dataset_{_fmt}",
        response_class=Response,
        **action(READ),
    )
