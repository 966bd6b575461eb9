"""The guarded synthetic control arm: the steps of :mod:`massalia.health.analytics.service`, for a trial.

Authorize ``health.analysis.run`` under the named project (audited before any row is read), read the mart
rows of the project's scope (variables, cohort, sites and period: :func:`~.service._rows`), compute
(:mod:`massalia.health.analytics.control_arm`), protect (counts under the threshold read ``<10``, curves
coarsened, an arm smaller than the threshold is refused rather than described) and record the provenance.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.health.analytics.control_arm import MaicError, Target, external_control, maic
from massalia.health.analytics.design import baseline_covariates, covariate_matrix
from massalia.health.analytics.outcomes import ENDPOINTS
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import BaselineRow, ControlArmRequest
from massalia.health.analytics.service import (
    ACTION,
    _authorize,
    _check_variables,
    _provenance,
    _rows,
    _threshold,
)
from massalia.health.marts.catalogue import Catalogue, VariableType, load_catalogue
from massalia.health.marts.filters import FilterSpec
from massalia.health.research import project_scope

ASSUMPTIONS = [
    "Exchangeability: the weighted controls stand for the trial's patients only on the covariates used; a "
    "prognostic factor missing from them (or from the trial's table) biases the comparison.",
    "Comparable endpoints: time zero is the diagnosis date for both; a trial measuring from enrolment or "
    "assessing progression by protocol scans differs from routine care.",
    "Positivity: every kind of trial patient must have real-world counterparts; a large maximum weight or a "
    "small effective sample size says they are few.",
]


def run_control_arm(caller: Caller, engine: Engine, request: ControlArmRequest) -> dict[str, Any]:
    """A synthetic control arm: ATT-weighted real-world controls (trial in the warehouse) or MAIC (summary).

    Examples
    --------
    >>> request = ControlArmRequest(project_id=1, filters=..., trial=...)  # doctest: +SKIP
    >>> run_control_arm(Caller(rita, gov), engine, request)  # doctest: +SKIP
    {'analysis': 'control_arm', 'mode': 'individual', 'hazard_ratios': {'naive': ..., 'weighted': ...}, ...}
    """
    _authorize(caller, "control_arm", request)
    if request.trial_summary is not None:
        return _summary_mode(caller, engine, request)
    return _individual_mode(caller, engine, request)


def _endpoint_json(name: str) -> dict[str, Any]:
    endpoint = ENDPOINTS[name]
    return {"name": endpoint.name, "label": endpoint.label, "time_unit": "months since diagnosis"}


def _require_size(label: str, count: int, threshold: int) -> None:
    """An arm under the disclosure threshold is refused: its balance table would describe a few persons."""
    if count < threshold:
        raise InvalidRequest(f"the {label} has fewer than {threshold} persons in the project's scope: "
                             "a control arm needs at least the disclosure threshold in each group")  # fmt: skip


def _individual_mode(caller: Caller, engine: Engine, request: ControlArmRequest) -> dict[str, Any]:
    if request.trial is None:  # the request model requires one mode; kept for direct callers
        raise InvalidRequest("name the trial's patients with trial")
    catalogue = load_catalogue()
    endpoint = ENDPOINTS[request.endpoint]
    names = request.covariates
    _check_variables([*(names or []), *request.categorical])
    if names is None:
        # read after _authorize: the caller is an approved member of this project
        names = baseline_covariates(catalogue, project_scope(caller, ACTION, request.project_id).variables)
    arms = {"trial": request.trial, "control": request.controls or FilterSpec()}
    frame, spec = _rows(caller, engine, request, [*endpoint.variables, *names], arms)
    threshold = _threshold()
    in_trial = frame["_arm_trial"].astype(bool).to_numpy()
    control = ~in_trial & frame["_arm_control"].astype(bool).to_numpy()
    time, event = _from_landmark(*endpoint.time_event(frame), request.landmark_months)
    # with a landmark, the arms are the persons still followed at it (weights balance those, not the dead)
    before_landmark = np.isnan(time) & (in_trial | control) if request.landmark_months > 0 else np.zeros_like(in_trial)
    in_trial, control = in_trial & ~before_landmark, control & ~before_landmark
    _require_size("trial arm", int(in_trial.sum()), threshold)
    _require_size("real-world control group", int(control.sum()), threshold)
    chosen = in_trial | control
    population = frame[chosen].reset_index(drop=True)
    time, event = time[chosen], event[chosen]
    trial_mask = population["_arm_trial"].astype(bool).to_numpy()
    categorical = [name for name in request.categorical if name in names]
    design = covariate_matrix(population, names, catalogue, categorical=categorical, missing="indicator")
    result = external_control(design.matrix, trial_mask, time, event, threshold=threshold,
                              step=request.time_step_months, table_at=request.at_risk_months,
                              propensity=request.propensity)  # fmt: skip
    return {
        "analysis": "control_arm",
        "mode": "individual",
        "endpoint": _endpoint_json(request.endpoint),
        "threshold": threshold,
        "landmark_months": request.landmark_months,
        "excluded_before_landmark": protect_count(int(before_landmark.sum()), threshold),
        "eligible_not_in_either_arm": protect_count(int((~chosen & ~before_landmark).sum()), threshold),
        "covariate_references": design.references,
        "covariates_dropped": design.dropped,
        **result,
        "assumptions": ASSUMPTIONS,
        "provenance": _provenance(engine, "control_arm", request, spec, len(frame)),
    }


def _from_landmark(time: np.ndarray, event: np.ndarray, landmark: float) -> tuple[np.ndarray, np.ndarray]:
    """Time counted from the landmark; persons whose follow-up ends before it leave the outcome (NaN time).

    A real-world person who dies before the treatment could start is "untreated" by construction (immortal
    time): starting both arms at a landmark after the treatment's usual start removes that bias.
    """
    if landmark <= 0:
        return time, event
    time = np.where(time > landmark, time - landmark, np.nan)
    return time, event


def _row_error(index: int, row: BaselineRow, message: str) -> InvalidRequest:
    return InvalidRequest(f"trial_summary.baseline[{index}] ({row.variable}): {message}")


def _target_column(catalogue: Catalogue, index: int, row: BaselineRow, frame: pd.DataFrame) -> tuple[str, pd.Series]:
    """The model column a baseline row describes (a number, a level's indicator, a boolean's), NaN where missing."""
    try:
        variable = catalogue.variable(row.variable)
    except KeyError:
        raise _row_error(index, row, "not a mart variable (see 'massalia mart variables')") from None
    series = frame[row.variable]
    missing = series.isna()
    if variable.type in (VariableType.NUMBER, VariableType.INTEGER) and row.level is None:
        if row.statistic != "mean":
            raise _row_error(index, row, "a number is summarized by its mean")
        return row.variable, pd.to_numeric(series, errors="coerce").astype(float)
    if variable.type is VariableType.BOOLEAN:
        if row.statistic != "proportion" or row.level not in (None, "true"):
            raise _row_error(index, row, "a yes/no variable is summarized by its proportion of yes (no level)")
        return row.variable, series.astype("boolean").astype(float).where(~missing)
    if variable.type in (VariableType.CATEGORY, VariableType.INTEGER, VariableType.TEXT):
        if row.statistic != "proportion" or row.level is None:
            raise _row_error(index, row, "a category is summarized by the proportion of one level: give level")
        if variable.values and row.level not in variable.values:
            raise _row_error(index, row, f"level {row.level!r} is not one of {', '.join(variable.values)}")
        text = series.map(lambda value: None if pd.isna(value) else str(value))
        return f"{row.variable}={row.level}", (text == row.level).astype(float).where(~missing)
    raise _row_error(index, row, f"a {variable.type.value} variable cannot be matched on")


def _summary_mode(caller: Caller, engine: Engine, request: ControlArmRequest) -> dict[str, Any]:
    summary = request.trial_summary
    if summary is None:  # the request model requires one mode; kept for direct callers
        raise InvalidRequest("give the trial's summary in trial_summary")
    catalogue = load_catalogue()
    endpoint = ENDPOINTS[request.endpoint]
    variables = sorted({row.variable for row in summary.baseline})
    for index, row in enumerate(summary.baseline):
        if row.variable not in {variable.name for variable in catalogue.variables}:
            raise _row_error(index, row, "not a mart variable (see 'massalia mart variables')")
    arms = {"control": request.controls} if request.controls is not None else None
    frame, spec = _rows(caller, engine, request, [*endpoint.variables, *variables], arms)
    if arms is not None:
        frame = frame[frame["_arm_control"].astype(bool)].reset_index(drop=True)
    threshold = _threshold()
    columns: dict[str, pd.Series] = {}
    targets: list[Target] = []
    for index, row in enumerate(summary.baseline):
        name, values = _target_column(catalogue, index, row, frame)
        columns[name] = values
        targets.append(Target(name, row.value, row.statistic))
    matrix = pd.DataFrame(columns)
    complete = matrix.notna().all(axis=1).to_numpy()
    time, event = _from_landmark(*endpoint.time_event(frame), request.landmark_months)
    before_landmark = np.isnan(time) & complete if request.landmark_months > 0 else np.zeros_like(complete)
    complete &= ~before_landmark
    _require_size("real-world control group (complete baseline)", int(complete.sum()), threshold)
    matrix, time, event = matrix[complete].reset_index(drop=True), time[complete], event[complete]
    try:
        result = maic(matrix, targets, time, event, threshold=threshold, step=request.time_step_months,
                      table_at=request.at_risk_months, trial_km=[(p.months, p.survival) for p in summary.km],
                      trial_median=summary.median_months)  # fmt: skip
    except MaicError as error:
        raise InvalidRequest(f"trial_summary.baseline: {error}") from None
    return {
        "analysis": "control_arm",
        "mode": "summary",
        "endpoint": _endpoint_json(request.endpoint),
        "threshold": threshold,
        "landmark_months": request.landmark_months,
        "trial_n": summary.n,
        "excluded_before_landmark": protect_count(int(before_landmark.sum()), threshold),
        "excluded_incomplete": protect_count(int((~complete & ~before_landmark).sum()), threshold),
        **result,
        "ess_versus_trial": _ratio(result["effective_sample_size"]["count"], summary.n),
        "assumptions": [
            *ASSUMPTIONS,
            "Unanchored comparison (no common comparator): it holds only if every prognostic factor and effect "
            "modifier is in the trial's baseline table (NICE DSU TSD 18).",
        ],
        "provenance": _provenance(engine, "control_arm", request, spec, len(frame)),
    }


def _ratio(count: int | None, n: int) -> float | None:
    return None if count is None else round(float(np.float64(count) / n), 4)
