"""The guarded patient-groups analysis: the steps of :mod:`~massalia.health.analytics.service` around k-means.

Authorize ``health.analysis.run`` under the named project (audited before any row is read); read the
project's scoped rows of the grouping variables and the endpoint (its sites, period, cohort and the request's
filters); group them (:mod:`~massalia.health.analytics.groups`); release each group's size protected
(``<10``), the profile and the Kaplan–Meier curve of the groups of at least ``threshold`` persons only; record
the provenance. No person's group leaves: only aggregates.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.health.analytics import survival
from massalia.health.analytics.groups import encode, find_groups, profiles
from massalia.health.analytics.outcomes import ENDPOINTS
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import GroupsRequest
from massalia.health.analytics.service import ACTION, _authorize, _provenance, _rows, _threshold
from massalia.health.analytics.similar import SIMILARITY_WEIGHTS, features_of
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.research import project_scope


def run_groups(caller: Caller, engine: Engine, request: GroupsRequest) -> dict[str, Any]:
    """Homogeneous groups of the cohort, each with its size, what distinguishes it, and its survival.

    Examples
    --------
    >>> run_groups(Caller(rita, gov), engine, GroupsRequest(project_id=1, max_groups=6))  # doctest: +SKIP
    {'analysis': 'groups', 'k': 4, 'silhouette': {...}, 'groups': [...], 'provenance': {...}}
    """
    _authorize(caller, "groups", request)
    if request.variables is not None:
        weights = {name: SIMILARITY_WEIGHTS.get(name, 1.0) for name in request.variables}
    else:
        allowed = project_scope(caller, ACTION, request.project_id).variables
        weights = {name: w for name, w in SIMILARITY_WEIGHTS.items() if not allowed or name in allowed}
    try:
        features = features_of(load_catalogue(), weights)
    except (KeyError, ValueError) as error:
        raise InvalidRequest(f"grouping variables: {error.args[0]}") from None
    if not features:
        raise InvalidRequest("no grouping variable is in the project's scope: name them with variables")
    endpoint = ENDPOINTS[request.endpoint]
    frame, spec = _rows(caller, engine, request, [*(f.name for f in features), *endpoint.variables])
    threshold = _threshold()
    try:
        grouping = find_groups(encode(frame, features), range(request.min_groups, request.max_groups + 1),
                               seed=request.seed)  # fmt: skip
    except ValueError as error:
        raise InvalidRequest(f"groups: {error}") from None
    time, event = endpoint.time_event(frame)
    described = profiles(frame, features, grouping.labels, threshold=threshold, top=request.top)
    for group in described:
        member = (grouping.labels == group["group"] - 1) & ~np.isnan(time)
        if group["size"]["count"] is not None:
            group["km"] = survival.kaplan_meier(time[member], event[member], threshold=threshold,
                                                step=request.time_step_months,
                                                table_at=request.at_risk_months)  # fmt: skip
    return {
        "analysis": "groups",
        "threshold": threshold,
        "method": "k-means on one-hot categories and standardized numbers (weighted), k by mean silhouette",
        "variables": [{"variable": f.name, "kind": f.kind, "weight": f.weight} for f in features],
        "persons": protect_count(len(frame), threshold),
        "k": grouping.k,
        "silhouette": {str(k): score for k, score in grouping.silhouette.items()},
        "endpoint": {"name": endpoint.name, "label": endpoint.label, "time_unit": "months since diagnosis"},
        "groups": described,
        "provenance": _provenance(engine, "groups", request, spec, len(frame)),
    }
