"""Health analyses over HTTP: survival and treatment comparison of an approved project's cohort.

Each route declares its action; the guarded analytics service checks it (an approved member of the named
project only), applies the project's scope and returns aggregates with small cells protected, as JSON
ready for charts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.errors import ApiError
from massalia.health.analytics import run_compare, run_groups, run_similar, run_survival
from massalia.health.analytics.requests import CompareRequest, GroupsRequest, SimilarRequest, SurvivalRequest
from massalia.health.marts.filters import FilterError, MartNotBuiltError

router = APIRouter(prefix="/analyses", tags=["analyses"])


@router.post("/survival", **action("health.analysis.run"))
def survival(body: SurvivalRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Kaplan–Meier curves (overall and by group), log-rank, Cox model, cumulative incidence of a cohort.

    Only for approved members of the project named in ``project_id`` (403 otherwise); counts under the
    disclosure threshold read ``<10`` and curves are coarsened so that no single event time shows.
    """
    with _analysis_errors():
        result = run_survival(caller, warehouse, body)
    return jsonable_encoder(result)


@router.post("/compare", **action("health.analysis.run"))
def compare(body: CompareRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Treated versus comparator cohorts compared by propensity matching and weighting.

    Balance, adjusted KM and HR, negative controls and empirical calibration, and the assumptions in plain
    words; only for approved members of the project named in ``project_id`` (403 otherwise).
    """
    with _analysis_errors():
        result = run_compare(caller, warehouse, body)
    return jsonable_encoder(result)


@contextmanager
def _analysis_errors() -> Iterator[None]:
    """A missing mart is a 409 (the warehouse's state); a filter that does not fit the mart a 422."""
    try:
        yield
    except MartNotBuiltError as error:
        raise ApiError(409, "conflict", f"The research mart is not available: {error}") from None
    except FilterError as error:
        raise ApiError(422, "invalid_request", f"The filter does not fit the mart: {error}",
                       details=[(["body", "filters"], str(error))]) from None  # fmt: skip


@router.post("/similar", **action("health.analysis.similar"))
def similar(body: SimilarRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """The ``k`` patients most similar to an index patient (weighted Gower distance), what they share, their KM.

    Under a pseudonymized project the index is named by its project pseudonym (404 when it is not a person
    of the project's scope and cohort) and the neighbours are listed by theirs; under any other approved
    project the index is a described profile and only the neighbours' protected profile comes back.
    """
    with _analysis_errors():
        result = run_similar(caller, warehouse, body)
    return jsonable_encoder(result)


@router.post("/groups", **action("health.analysis.run"))
def groups(body: GroupsRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Homogeneous patient groups (k-means, k by silhouette), what distinguishes each, and its KM curve.

    Only for approved members of the project named in ``project_id``; a group under the disclosure
    threshold shows its size as ``<10`` and nothing else.
    """
    with _analysis_errors():
        result = run_groups(caller, warehouse, body)
    return jsonable_encoder(result)
