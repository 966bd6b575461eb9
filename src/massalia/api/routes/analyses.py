"""Health analyses over HTTP: survival and treatment comparison of an approved project's cohort.

Each route declares its action; the guarded analytics service checks it (an approved member of the named
project only), applies the project's scope and returns aggregates with small cells protected, as JSON
ready for charts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.encoders import jsonable_encoder

from massalia.api.deps import Caller, Context, Warehouse, action
from massalia.api.errors import ApiError
from massalia.health.analytics import (
    list_prediction_models,
    run_compare,
    run_conformance,
    run_control_arm,
    run_groups,
    run_hypotheses,
    run_pathways,
    run_patterns,
    run_prediction_score,
    run_prediction_train,
    run_similar,
    run_survival,
)
from massalia.health.analytics.requests import (
    CompareRequest,
    ConformanceRequest,
    ControlArmRequest,
    GroupsRequest,
    HypothesesRequest,
    PathwaysRequest,
    PatternsRequest,
    PredictionRequest,
    PredictionScoreRequest,
    SimilarRequest,
    SurvivalRequest,
)
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


ModelId = Annotated[str, Path(pattern="^[0-9a-f]{16}$", description="A stored model's id (16 hex digits).")]


@router.post("/prediction", **action("health.analysis.run"))
def prediction(body: PredictionRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Develop risk models (lasso, gradient boosting) for an outcome and time at risk, and store them.

    Returns each model's card: test AUC with its CI, Brier score, calibration bins (small cells merged),
    feature importance. Only for approved members of the project named in ``project_id`` (403 otherwise).
    """
    with _analysis_errors():
        result = run_prediction_train(caller, warehouse, context.home, body)
    return jsonable_encoder(result)


@router.post("/prediction/{model_id}/score", **action("health.prediction.score"))
def prediction_score(
    model_id: ModelId, body: PredictionScoreRequest, context: Context, caller: Caller, warehouse: Warehouse
) -> Any:
    """Score the project's persons (or the pseudonyms listed) with a model trained under the same project.

    Per-person risks under a pseudonymized project; the risks' distribution (counts protected) otherwise; a
    model of another project is refused (403).
    """
    with _analysis_errors():
        result = run_prediction_score(caller, warehouse, context.home, model_id, body)
    return jsonable_encoder(result)


@router.get("/prediction/models", **action("health.analysis.run"))
def prediction_models(
    project_id: Annotated[int, Query(ge=1, description="The project whose models to list.")],
    context: Context,
    caller: Caller,
    warehouse: Warehouse,
) -> Any:
    """The project's stored prediction models and their cards (approved members only)."""
    return jsonable_encoder(list_prediction_models(caller, warehouse, context.home, project_id))


@router.post("/pathways", **action("health.analysis.run"))
def pathways(body: PathwaysRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """The most frequent treatment pathways of a cohort: ranked sequences, Sankey nodes and links, step timing.

    Only for approved members of the project named in ``project_id`` (403 otherwise); pathways of fewer
    than the disclosure threshold are folded into ``other``.
    """
    with _analysis_errors():
        result = run_pathways(caller, warehouse, body)
    return jsonable_encoder(result)


@router.post("/conformance", **action("health.analysis.run"))
def conformance(body: ConformanceRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Conformance to reference-practice rules: rates per site and period (CI), deviations, outcomes.

    Only for approved members of the project named in ``project_id`` (403 otherwise); a rule set of one's
    own may be sent as YAML in ``rules_yaml`` (a 422 names the rule and field at fault).
    """
    with _analysis_errors():
        result = run_conformance(caller, warehouse, body)
    return jsonable_encoder(result)


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


@router.post("/control-arm", **action("health.analysis.run"))
def control_arm(body: ControlArmRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """A synthetic control arm for a single-arm trial: real-world persons meeting its eligibility, not treated.

    With ``trial`` (its patients in the warehouse): ATT propensity weighting, balance, effective sample size,
    weighted KM and Cox HR (robust errors). With ``trial_summary`` (its baseline table): MAIC weights, the
    weighted real-world outcome beside the trial's. Only for approved members of the project named in
    ``project_id`` (403 otherwise); a table that cannot be matched is a 422 naming the row at fault.
    """
    with _analysis_errors():
        result = run_control_arm(caller, warehouse, body)
    return jsonable_encoder(result)


@router.post("/hypotheses", **action("health.analysis.run"))
def hypotheses(body: HypothesesRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Mart variables compared between two cohorts: the test by type, effect sizes, BH and Holm p-values.

    Only for approved members of the project named in ``project_id``; a group under the disclosure
    threshold withholds every comparison, and counts under it read ``<10``.
    """
    with _analysis_errors():
        result = run_hypotheses(caller, warehouse, body)
    return jsonable_encoder(result)


@router.post("/patterns", **action("health.analysis.run"))
def patterns(body: PatternsRequest, context: Context, caller: Caller, warehouse: Warehouse) -> Any:
    """Unexpected patterns: association rules between findings and treatments, frequent care sequences.

    Each pattern has its support, confidence, lift and a Benjamini–Hochberg adjusted one-sided hypergeometric
    p. Only for approved members of the project named in ``project_id`` (403 otherwise); a pattern is shown
    only when every cell of its table reaches the disclosure threshold, and counts under it read ``<10``.
    """
    with _analysis_errors():
        result = run_patterns(caller, warehouse, body)
    return jsonable_encoder(result)
