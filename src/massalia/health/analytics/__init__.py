"""Health analytics: survival and treatment effectiveness on the research mart, one module per analysis.

Each analysis is registered like any plug-in part (:meth:`massalia.plugins.Contributions.add_analysis`, from
:mod:`massalia.health.plugin`) as an :class:`Analysis`: its name, what it does, its request model and its
guarded entry point. The entry points load the estimators (lifelines, scikit-learn, statsmodels) when first
run, not when the command line starts.

Examples
--------
>>> [analysis.name for analysis in ANALYSES]
['survival', 'compare', 'similar', 'groups']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from massalia.engine import Engine
from massalia.governance import Caller
from massalia.health.analytics.requests import CompareRequest, GroupsRequest, SimilarRequest, SurvivalRequest


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

    return service.run_survival(caller, engine, request)


def run_compare(caller: Caller, engine: Engine, request: CompareRequest) -> dict[str, Any]:
    """The guarded treatment comparison (:func:`massalia.health.analytics.service.run_compare`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import service

    return service.run_compare(caller, engine, request)


def run_similar(caller: Caller, engine: Engine, request: SimilarRequest) -> dict[str, Any]:
    """The guarded similar-patients query (:func:`massalia.health.analytics.similar_service.run_similar`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import similar_service

    return similar_service.run_similar(caller, engine, request)


def run_groups(caller: Caller, engine: Engine, request: GroupsRequest) -> dict[str, Any]:
    """The guarded patient groups (:func:`massalia.health.analytics.groups_service.run_groups`)."""
    # start-up: the estimators' libraries take seconds to import; loaded when an analysis first runs
    from massalia.health.analytics import groups_service

    return groups_service.run_groups(caller, engine, request)


ANALYSES: tuple[Analysis, ...] = (
    Analysis("survival", "Kaplan–Meier, log-rank, Cox PH, cumulative incidence of one cohort", SurvivalRequest,
             run_survival),
    Analysis("compare", "Two treatment cohorts: propensity matching and weighting, balance, adjusted HR, "
             "negative controls and empirical calibration", CompareRequest, run_compare),
    Analysis("similar", "The k patients most similar to an index patient (Gower distance), what they share and "
             "their outcome", SimilarRequest, run_similar),
    Analysis("groups", "Homogeneous patient groups by clustering (k chosen by silhouette), their profiles and "
             "outcomes", GroupsRequest, run_groups),
)  # fmt: skip
"""The built-in analyses, registered by the health domain."""
