"""The guarded hypothesis tests: the steps of :mod:`~massalia.health.analytics.service` around two-group tests.

Authorize ``health.analysis.run`` under the named project (audited before any row is read); read the
project's scoped rows of the compared variables with the two groups' flags (its sites, period, cohort and
the request's filters); leave out persons in both groups; withhold every comparison when a group is under
the disclosure threshold, and a variable's when fewer than ``threshold`` persons of a group have a value;
test (:mod:`~massalia.health.analytics.hypotheses`), adjust for multiplicity, protect counts; record the
provenance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.health.analytics.hypotheses import adjust, compare_levels, compare_numbers
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import HypothesesRequest
from massalia.health.analytics.service import _authorize, _check_variables, _provenance, _rows, _threshold
from massalia.health.marts.catalogue import Disclosure, VariableType, load_catalogue

NUMERIC = {VariableType.INTEGER, VariableType.NUMBER}
CATEGORICAL = {VariableType.BOOLEAN, VariableType.CATEGORY}


def run_hypotheses(caller: Caller, engine: Engine, request: HypothesesRequest) -> dict[str, Any]:
    """Compare ``variables`` between ``group_a`` and ``group_b``; BH and Holm adjusted p-values.

    Examples
    --------
    >>> request = HypothesesRequest(project_id=1, group_a=..., group_b=..., variables=["sex"])  # doctest: +SKIP
    >>> run_hypotheses(Caller(rita, gov), engine, request)  # doctest: +SKIP
    {'analysis': 'hypotheses', 'groups': {...}, 'comparisons': [...], 'provenance': {...}}
    """
    _authorize(caller, "hypotheses", request)
    _check_variables(request.variables)
    catalogue = load_catalogue()
    kinds: dict[str, Any] = {}
    for name in request.variables:
        variable = catalogue.variable(name)
        if variable.disclosure is Disclosure.IDENTIFIER or variable.type not in NUMERIC | CATEGORICAL:
            raise InvalidRequest(f"variable {name!r} ({variable.type}, {variable.disclosure}): only numbers, "
                                 "booleans and categories that do not identify a person can be compared")  # fmt: skip
        kinds[name] = variable
    arms = {"a": request.group_a, "b": request.group_b}
    frame, spec = _rows(caller, engine, request, request.variables, arms)
    threshold = _threshold()
    in_a, in_b = frame["_arm_a"].astype(bool).to_numpy(), frame["_arm_b"].astype(bool).to_numpy()
    both = in_a & in_b
    a_rows, b_rows = frame[in_a & ~both], frame[in_b & ~both]
    result: dict[str, Any] = {
        "analysis": "hypotheses",
        "threshold": threshold,
        "alpha": request.alpha,
        "groups": {"group_a": protect_count(len(a_rows), threshold), "group_b": protect_count(len(b_rows), threshold)},
        "excluded_in_both_groups": protect_count(int(both.sum()), threshold),
    }
    if len(a_rows) < threshold or len(b_rows) < threshold:
        result["withheld"] = f"a group has fewer than {threshold} persons: no comparison is released"
        result["comparisons"] = []
        result["provenance"] = _provenance(engine, "hypotheses", request, spec, len(frame))
        return result
    comparisons: list[dict[str, Any]] = []
    for name in request.variables:
        variable = kinds[name]
        a_values, b_values = a_rows[name].dropna(), b_rows[name].dropna()
        entry: dict[str, Any] = {"variable": name, "type": str(variable.type),
                                 "n": {"group_a": protect_count(len(a_values), threshold),
                                       "group_b": protect_count(len(b_values), threshold)}}  # fmt: skip
        if len(a_values) < threshold or len(b_values) < threshold:
            entry["withheld"] = f"fewer than {threshold} persons of a group have a value"
        elif variable.type in NUMERIC:
            entry |= compare_numbers(a_values.to_numpy(float), b_values.to_numpy(float))
        else:
            entry |= compare_levels(_labels(a_values), _labels(b_values), _levels(variable, a_values, b_values),
                                    threshold=threshold)  # fmt: skip
        comparisons.append(entry)
    tested = [entry for entry in comparisons if entry.get("p") is not None]
    adjusted = adjust([entry["p"] for entry in tested], request.alpha)
    for index, entry in enumerate(tested):
        entry["p_bh"], entry["p_holm"] = adjusted["bh"][index], adjusted["holm"][index]
        entry["significant_bh"] = entry["p_bh"] < request.alpha
        entry["significant_holm"] = entry["p_holm"] < request.alpha
    result["comparisons"] = comparisons
    result["multiplicity"] = {"tests": len(tested), "methods": ["benjamini_hochberg", "holm"]}
    result["provenance"] = _provenance(engine, "hypotheses", request, spec, len(frame))
    return result


def _labels(values: pd.Series) -> list[str]:
    return ["true" if v is True or v is np.True_ else "false" if v is False or v is np.False_ else str(v)
            for v in values]  # fmt: skip


def _levels(variable: Any, a_values: pd.Series, b_values: pd.Series) -> list[str]:
    """The catalogue's levels in order (booleans: true, false), then any other observed value, sorted."""
    known = ["true", "false"] if variable.type is VariableType.BOOLEAN else list(variable.values or ())
    seen = set(_labels(a_values)) | set(_labels(b_values))
    return [*known, *sorted(seen - set(known))]
