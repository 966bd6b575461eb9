"""Pseudonymized extracts of a project's cohort: create one, list them, download their files.

Creation goes through ``research.create_extract`` (authorize ``health.extract.create`` → audit → build the
keyed-pseudonym, date-shifted, k-anonymous extract). Listing and downloading are checked against the
same action for the same project, and every download is audited.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.errors import ApiError
from massalia.api.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, paginate
from massalia.health import services
from massalia.health.extracts import ExtractNotReadyError

router = APIRouter(prefix="/projects/{project_id}/extracts", tags=["extracts"])


class ExtractBody(BaseModel):
    """The extract's cohort (a generated ``cohort_definition_id`` of the project's definition), format and k."""

    cohort_id: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Generated cohort to extract.")
    format: Literal["parquet", "csv"] = "parquet"
    k_min: int = Field(default=5, ge=2, le=1000, description="Smallest group size on the quasi-identifiers.")
    on_low_k: Literal["refuse", "generalize"] = Field(default="refuse", description="When k cannot be met.")


def _extracts_dir(context: Context, project_id: int) -> Path:
    return context.home.root / "extracts" / f"project-{int(project_id)}"


@router.post("", status_code=201, **action("health.extract.create"))
def create_extract(
    project_id: int, body: ExtractBody, context: Context, caller: Caller, warehouse: Warehouse
) -> dict[str, Any]:
    """Build a pseudonymized extract of the project's cohort (members of an approved pseudonymized project)."""
    from massalia.health import research

    extract_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    out_dir = _extracts_dir(context, project_id) / extract_id
    try:
        result = research.create_extract(
            caller, warehouse, project_id, out_dir=out_dir, fmt=body.format,
            cohort_definition_id=body.cohort_id, k_min=body.k_min, on_low_k=body.on_low_k,
        )  # fmt: skip
    except ExtractNotReadyError as error:  # an unbuilt mart or ungenerated cohort: the state conflicts (docs/api.md)
        raise ApiError(409, "conflict", f"The extract cannot be built yet: {error}") from None
    files = sorted(p.name for p in out_dir.iterdir() if p.is_file()) if out_dir.is_dir() else []
    # Server paths stay on the server: the answer names files relative to the extract.
    return {
        "extract_id": extract_id, "files": files,
        "rows": getattr(result, "rows", None), "k": getattr(result, "k", None),
        "manifest": jsonable_encoder(getattr(result, "manifest", None), custom_encoder={Path: lambda p: p.name}),
    }  # fmt: skip


@router.get("", response_model=Page, **action("health.extract.create"))
def list_extracts(
    project_id: int, context: Context, caller: Caller, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page:
    """The project's extracts and their files, oldest first, a page at a time."""
    found = services.list_extracts(caller, project_id, _extracts_dir(context, project_id))
    return paginate(found, limit, cursor, render=lambda p: {
        "extract_id": p.name, "files": sorted(f.name for f in p.iterdir() if f.is_file())})  # fmt: skip


@router.get("/{extract_id}/files/{name}", response_class=FileResponse, **action("health.extract.create"))
def download(project_id: int, extract_id: str, name: str, context: Context, caller: Caller) -> FileResponse:
    """Download one file of an extract (audited)."""
    path = services.extract_file(caller, project_id, _extracts_dir(context, project_id), extract_id, name)
    return FileResponse(path, filename=name, media_type="application/octet-stream")
