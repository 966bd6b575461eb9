"""The guarded pattern discovery: the steps of :mod:`~massalia.health.analytics.service` around pattern mining.

Authorize ``health.analysis.run`` under the named project (audited before any row is read); read the
project's scoped mart rows of the mined variables (its variables, sites, period, cohort and the request's
filters); for sequences, read the care steps of those persons only, restricted to the project's sites and
period over each row's date (:func:`~massalia.health.analytics.pathways_service.scoped_row_filter`, the
pathways' restriction); mine (:mod:`~massalia.health.analytics.patterns`); release only patterns whose every
cell reaches the disclosure threshold; record the provenance. No person id nor row leaves.
"""

from __future__ import annotations

from typing import Any

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.health.analytics.pathways import pathway_steps, read_events
from massalia.health.analytics.pathways_service import scoped_row_filter
from massalia.health.analytics.patterns import associations, frequent_sequences, item_matrix, person_sequences
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import DEFAULT_PATTERN_VARIABLES, PatternsRequest
from massalia.health.analytics.service import ACTION, _authorize, _check_variables, _provenance, _rows, _threshold
from massalia.health.marts.catalogue import Disclosure, VariableType, load_catalogue
from massalia.health.research import project_scope

MINED_TYPES = {VariableType.BOOLEAN, VariableType.CATEGORY, VariableType.TEXT}
"""Types read as items (a text variable such as the care site code gives one item per frequent value)."""


def _variables(caller: Caller, request: PatternsRequest) -> tuple[list[str], list[str]]:
    """The variables mined and which of them are booleans; a text, number, date or identifier is refused."""
    if request.variables is None:
        # read after _authorize: the caller is an approved member of this project
        allowed = set(project_scope(caller, ACTION, request.project_id).variables)
        names = [name for name in DEFAULT_PATTERN_VARIABLES if not allowed or name in allowed]
    else:
        names = list(request.variables)
        _check_variables(names)
    catalogue = load_catalogue()
    booleans = []
    for name in names:
        variable = catalogue.variable(name)
        if variable.disclosure is Disclosure.IDENTIFIER or variable.type not in MINED_TYPES:
            raise InvalidRequest(f"variable {name!r} ({variable.type}, {variable.disclosure}): only booleans, "
                                 "categories and codes that do not identify a person are mined (group a number "
                                 "first)")  # fmt: skip
        if variable.type is VariableType.BOOLEAN:
            booleans.append(name)
    return names, booleans


def run_patterns(caller: Caller, engine: Engine, request: PatternsRequest) -> dict[str, Any]:
    """Association rules between the cohort's findings and treatments, frequent care sequences, unexpected ones.

    Examples
    --------
    >>> run_patterns(Caller(rita, gov), engine, PatternsRequest(project_id=1))  # doctest: +SKIP
    {'analysis': 'patterns', 'associations': {'rules': [...]}, 'sequences': {'sequences': [...]}, ...}
    """
    _authorize(caller, "patterns", request)
    names, booleans = _variables(caller, request)
    checked = ["diagnosis_date"] if request.sequences else []
    frame, spec = _rows(caller, engine, request, [*names, *checked], keys=["person_id"])
    threshold = _threshold()
    options: dict[str, Any] = {"min_count": request.min_count, "max_length": request.max_length, "threshold": threshold,
               "alpha": request.alpha, "min_lift": request.min_lift, "top": request.top}  # fmt: skip
    result: dict[str, Any] = {
        "analysis": "patterns",
        "threshold": threshold,
        "persons": protect_count(len(frame), threshold),
        "variables": names,
        "method": {
            "rules": "exact itemset counts (up to 3 items) and A ⇒ b rules, one-sided hypergeometric test, "
            "Benjamini–Hochberg over the candidates",
            "unexpected": f"lift ≥ {request.min_lift} and BH-adjusted p < {request.alpha}",
            "disclosure": f"a rule is shown only when each cell of its 2×2 table has at least {threshold} persons",
        },
        "associations": associations(item_matrix(frame, names, booleans), **options),
    }
    if request.sequences:
        row_filter, _ = scoped_row_filter(caller, engine, request, [*names, *checked])
        steps = pathway_steps(read_events(engine, row_filter), frame, "modality")
        paths = person_sequences(steps, frame["person_id"].astype(int).tolist(), max_steps=request.max_steps)
        result["sequences"] = {"time_unit": "days", **frequent_sequences(paths, **options)}
    result["provenance"] = _provenance(engine, "patterns", request, spec, len(frame))
    return result
