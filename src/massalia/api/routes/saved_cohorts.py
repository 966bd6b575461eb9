"""A project's saved cohort definitions over HTTP: save, list, read, new versions, share within the project.

The routes call :mod:`massalia.health.saved_cohorts`, which checks ``health.definition.save`` /
``health.definition.read`` (members of the project), audits the decision, and only then reads or writes
the metadata database. Definitions arrive in Massalia JSON or as an ATLAS/Circe export and are stored in
Massalia JSON with their definition hash; versions are immutable.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, action
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, decode_cursor, encode_cursor
from massalia.api.routes.cohorts import parse_definition
from massalia.health import saved_cohorts
from massalia.health.saved_cohorts import MAX_NAME, MAX_NOTE, SavedCohort, SavedVersion

router = APIRouter(prefix="/projects/{project_id}/cohorts", tags=["saved cohorts"])

CHANNEL = "api"
ProjectId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SavedId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class SaveBody(BaseModel):
    """A new saved cohort: its name, its definition (Massalia or ATLAS/Circe JSON), and a note."""

    name: str = Field(min_length=1, max_length=MAX_NAME)
    definition: dict[str, Any]
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class VersionBody(BaseModel):
    """A new version's definition and a note saying what changed."""

    definition: dict[str, Any]
    note: str | None = Field(default=None, max_length=MAX_NOTE)


class ShareBody(BaseModel):
    """Whether the project's members may see (and add versions to) the saved cohort."""

    shared: bool


def _version(version: SavedVersion) -> dict[str, Any]:
    out = {"version": version.version, "definition_hash": version.definition_hash, "created_by": version.created_by,
           "created_at": version.created_at.isoformat(), "note": version.note}  # fmt: skip
    if version.definition is not None:
        out["definition"] = version.definition
    return out


def _saved(saved: SavedCohort) -> dict[str, Any]:
    out = {"id": saved.id, "project_id": saved.project_id, "name": saved.name, "owner": saved.owner,
           "shared": saved.shared, "latest_version": saved.latest_version,
           "created_at": saved.created_at.isoformat(), "updated_at": saved.updated_at.isoformat()}  # fmt: skip
    if saved.versions:
        out["versions"] = [_version(version) for version in saved.versions]
    return out


@router.post("", status_code=201, **action("health.definition.save"))
def save(project_id: ProjectId, body: SaveBody, context: Context, caller: Caller) -> dict[str, Any]:
    """Save a cohort definition in the project as version 1, private to its author until shared (members)."""
    definition = parse_definition(body.definition)
    saved = saved_cohorts.save_definition(caller, context.home.metadata_url, project_id,
                                          body.name, definition, note=body.note)  # fmt: skip
    return _saved(saved)


@router.get("", response_model=Page, **action("health.definition.read"))
def list_saved(
    project_id: ProjectId,
    context: Context,
    caller: Caller,
    sort: Literal["updated_at", "created_at", "name", "id"] = "updated_at",
    order: Literal["asc", "desc"] = "desc",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page:
    """The project's saved cohorts the caller sees (their own and the shared ones), a page at a time."""
    start = decode_cursor(cursor)
    found, total = saved_cohorts.list_definitions(caller, context.home.metadata_url, project_id, sort=sort,
                                                  descending=order == "desc", offset=start, limit=limit)  # fmt: skip
    stop = start + len(found)
    return Page(items=[_saved(s) for s in found], next=encode_cursor(stop) if stop < total else None, total=total)


@router.get("/{cohort_id}", **action("health.definition.read"))
def get_saved(
    project_id: ProjectId,
    cohort_id: SavedId,
    context: Context,
    caller: Caller,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Default: the newest.")] = None,
) -> dict[str, Any]:
    """A saved cohort, its versions (hash, author, date, note) and one version's definition (default: newest)."""
    saved, chosen = saved_cohorts.get_definition(caller, context.home.metadata_url, project_id,
                                                 cohort_id, version=version)  # fmt: skip
    return {**_saved(saved), "version": _version(chosen)}


@router.post(
    "/{cohort_id}/versions",
    status_code=201,
    responses={200: {"description": "The definition is the newest version's: no version added."}},
    **action("health.definition.save"),
)
def new_version(
    project_id: ProjectId, cohort_id: SavedId, body: VersionBody, context: Context, caller: Caller, response: Response
) -> dict[str, Any]:
    """Add a version (201); a definition identical to the newest version adds none (200, ``added: false``)."""
    definition = parse_definition(body.definition)
    saved, added = saved_cohorts.add_version(caller, context.home.metadata_url, project_id,
                                             cohort_id, definition, note=body.note)  # fmt: skip
    response.status_code = 201 if added else 200
    return {**_saved(saved), "added": added}


@router.put("/{cohort_id}/sharing", **action("health.definition.save"))
def sharing(
    project_id: ProjectId, cohort_id: SavedId, body: ShareBody, context: Context, caller: Caller
) -> dict[str, Any]:
    """Share the saved cohort with the project's members, or take it back (its author only)."""
    saved = saved_cohorts.share_definition(caller, context.home.metadata_url, project_id,
                                           cohort_id, body.shared)  # fmt: skip
    return _saved(saved)
