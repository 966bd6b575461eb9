"""Health analytics: survival and treatment effectiveness on the research mart, one module per analysis.

Each analysis is registered like any plug-in part (:meth:`massalia.plugins.Contributions.add_analysis`, from
:mod:`massalia.health.plugin`) as an :class:`Analysis`: its name, what it does, its request model and its
guarded entry point. The entry points load the estimators (lifelines, scikit-learn, statsmodels) when first
run, not when the command line starts.

Examples
--------
>>> [analysis.name for analysis in ANALYSES]  # doctest: +NORMALIZE_WHITESPACE
['survival', 'compare', 'prediction', 'pathways', 'conformance', 'similar', 'groups', 'control_arm', 'hypotheses',
 'patterns']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from massalia.config import Home
from massalia.engine import Engine
from massalia.governance import Caller
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


@contextmanager
def _one_native_thread() -> Iterator[None]:
    """Run the estimators on one native (BLAS, OpenMP) thread.

    Measured on this 2-core machine under load: a propensity model of 10,000 persons × 100 covariates took
    1.4 s with the default threads and 0.19 s with one (spinning OpenMP threads compete with the other
    requests and jobs); the server runs analyses side by side, one per request.
    """
    # start-up: threadpoolctl inspects the native libraries when imported; loaded when an analysis first runs
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@dataclass(frozen=True)
class Analysis:
    """One registered analysis: what it does, what it is asked, and its guarded entry point."""

    name: str
    description: str
    request: type[BaseModel]
    run: Callable[..., dict[str, Any]]


def run_survival(caller: Caller, engine: Engine, request: SurvivalRequest) -> dict[str, Any]:
    """The guarded survival analysis (:func:`massalia.health.analytics.service.run_survival`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import service

    with _one_native_thread():
        return service.run_survival(caller, engine, request)


def run_compare(caller: Caller, engine: Engine, request: CompareRequest) -> dict[str, Any]:
    """The guarded treatment comparison (:func:`massalia.health.analytics.service.run_compare`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import service

    with _one_native_thread():
        return service.run_compare(caller, engine, request)


def run_prediction_train(caller: Caller, engine: Engine, home: Home, request: PredictionRequest) -> dict[str, Any]:
    """Develop and store risk models (:func:`massalia.health.analytics.prediction_service.run_prediction_train`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import prediction_service
    from massalia.health.analytics.model_store import ModelStore

    with _one_native_thread():
        return prediction_service.run_prediction_train(caller, engine, ModelStore.of_home(home), request)


def run_prediction_score(
    caller: Caller, engine: Engine, home: Home, model_id: str, request: PredictionScoreRequest
) -> dict[str, Any]:
    """Score persons with a stored model (:func:`.prediction_service.run_prediction_score`)."""
    from massalia.health.analytics import prediction_service
    from massalia.health.analytics.model_store import ModelStore

    with _one_native_thread():
        return prediction_service.run_prediction_score(caller, engine, ModelStore.of_home(home), model_id, request)


def list_prediction_models(caller: Caller, engine: Engine, home: Home, project_id: int) -> dict[str, Any]:
    """A project's stored models (:func:`~massalia.health.analytics.prediction_service.list_prediction_models`)."""
    from massalia.health.analytics import prediction_service
    from massalia.health.analytics.model_store import ModelStore

    with _one_native_thread():
        return prediction_service.list_prediction_models(caller, engine, ModelStore.of_home(home), project_id)


def run_pathways(caller: Caller, engine: Engine, request: PathwaysRequest) -> dict[str, Any]:
    """The guarded care pathways (:func:`massalia.health.analytics.pathways_service.run_pathways`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import pathways_service

    with _one_native_thread():
        return pathways_service.run_pathways(caller, engine, request)


def run_conformance(caller: Caller, engine: Engine, request: ConformanceRequest) -> dict[str, Any]:
    """The guarded conformance to reference practice (:func:`~.pathways_service.run_conformance`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import pathways_service

    with _one_native_thread():
        return pathways_service.run_conformance(caller, engine, request)


def run_similar(caller: Caller, engine: Engine, request: SimilarRequest) -> dict[str, Any]:
    """The guarded similar-patients query (:func:`massalia.health.analytics.similar_service.run_similar`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import similar_service

    with _one_native_thread():
        return similar_service.run_similar(caller, engine, request)


def run_groups(caller: Caller, engine: Engine, request: GroupsRequest) -> dict[str, Any]:
    """The guarded patient groups (:func:`massalia.health.analytics.groups_service.run_groups`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import groups_service

    with _one_native_thread():
        return groups_service.run_groups(caller, engine, request)


def run_control_arm(caller: Caller, engine: Engine, request: ControlArmRequest) -> dict[str, Any]:
    """The guarded synthetic control arm (:func:`~.control_arm_service.run_control_arm`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import control_arm_service

    with _one_native_thread():
        return control_arm_service.run_control_arm(caller, engine, request)


def run_hypotheses(caller: Caller, engine: Engine, request: HypothesesRequest) -> dict[str, Any]:
    """The guarded two-cohort hypothesis tests (:func:`~.hypotheses_service.run_hypotheses`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import hypotheses_service

    with _one_native_thread():
        return hypotheses_service.run_hypotheses(caller, engine, request)


def run_patterns(caller: Caller, engine: Engine, request: PatternsRequest) -> dict[str, Any]:
    """The guarded pattern discovery (:func:`~.patterns_service.run_patterns`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import patterns_service

    with _one_native_thread():
        return patterns_service.run_patterns(caller, engine, request)


ANALYSES: tuple[Analysis, ...] = (
    Analysis("survival", "Kaplan–Meier, log-rank, Cox PH, cumulative incidence of one cohort", SurvivalRequest,
             run_survival),
    Analysis("compare", "Two treatment cohorts: propensity matching and weighting, balance, adjusted HR, "
             "negative controls and empirical calibration", CompareRequest, run_compare),
    Analysis("prediction", "Patient-level risk models (lasso, gradient boosting): AUC, calibration, importance, "
             "stored per project to score new persons", PredictionRequest, run_prediction_train),
    Analysis("pathways", "Treatment pathways: most frequent sequences of regimens, surgery and radiotherapy, "
             "Sankey nodes and links, days between steps", PathwaysRequest, run_pathways),
    Analysis("conformance", "Conformance to reference-practice rules (YAML): rates per site and period with CIs, "
             "deviations, outcomes of conforming versus deviating persons", ConformanceRequest, run_conformance),
    Analysis("similar", "The k patients most similar to an index patient (Gower distance), what they share and "
             "their outcome", SimilarRequest, run_similar),
    Analysis("groups", "Homogeneous patient groups by clustering (k chosen by silhouette), their profiles and "
             "outcomes", GroupsRequest, run_groups),
    Analysis("control_arm", "Synthetic control arm of a single-arm trial: propensity-weighted (ATT) real-world "
             "controls, or MAIC to the trial's published baseline table; balance, ESS, weighted KM and HR",
             ControlArmRequest, run_control_arm),
    Analysis("hypotheses", "Variables compared between two cohorts: Welch t / Mann–Whitney or Fisher / chi-square "
             "by type, effect sizes with CIs, Benjamini–Hochberg and Holm adjusted p-values", HypothesesRequest,
             run_hypotheses),
    Analysis("patterns", "Unexpected patterns: association rules between findings and treatments and frequent care "
             "sequences with support, confidence, lift, hypergeometric p and Benjamini–Hochberg control",
             PatternsRequest, run_patterns),
)  # fmt: skip
"""The built-in analyses, registered by the health domain."""
