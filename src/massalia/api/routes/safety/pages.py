"""Data of the safety portal pages that no other route gives: the offline map background.

The aggregates the pages draw (statistics, grid, timeline) come from :mod:`massalia.api.routes.safety.incidents`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from massalia.api.deps import Caller, Context, action
from massalia.safety import services

router = APIRouter(prefix="/safety", tags=["safety"])


@router.get("/basemap", **action("safety.catalogue.read"))
def basemap(context: Context, caller: Caller) -> dict[str, Any]:
    """The commune outline and the districts as Lambert-93 rings, for a map drawn without any tile server."""
    return services.basemap_view(caller)
