"""The guarded analytics service: the one enforcement point of every analysis (CLI, HTTP, Python alike).

Each run follows the steps of :mod:`massalia.health.research`:

1. **authorize** ``health.analysis.run`` under the project named in the request: only an approved member
   of an approved, unexpired project is allowed (the decision is in the transparency log before any row
   is read); anyone else is refused with a message saying what is needed;
2. **scope** — the variables read must be the project's, a project scoped to a cohort must analyse its
   generated cohort, and the rows read are restricted to the project's sites and period by the row-level
   policy of :mod:`massalia.governance.policy` (the same check as mart counts);
3. **compute** on those rows (:mod:`~massalia.health.analytics.survival`,
   :mod:`~massalia.health.analytics.effectiveness`);
4. **protect** — only aggregates leave: counts under the disclosure threshold read ``<10``, curves are
   coarsened (:mod:`~massalia.health.analytics.protect`);
5. **record** the provenance: the request's, filter's and cohort definition's hashes, the mart build
   and data version, Massalia's and the libraries' versions.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

import massalia
from massalia.engine import Engine
from massalia.governance import AccessDenied, Caller, Grant, InvalidRequest
from massalia.governance.disclosure import settings_from_env
from massalia.health.analytics import survival
from massalia.health.analytics.design import baseline_covariates, covariate_matrix
from massalia.health.analytics.effectiveness import Outcome, compare
from massalia.health.analytics.outcomes import ENDPOINTS
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import AnalysisRequest, CompareRequest, SurvivalRequest
from massalia.health.marts.builder import MART_TABLE, last_build
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import FilterError, FilterSpec, MartNotBuiltError, compile_filter, normalized_spec
from massalia.health.research import MART_ALIAS, _check_mart_scope, _generated_hash, project_scope

ACTION = "health.analysis.run"
"""The one action every analysis is checked against (``health/rights.yaml``)."""

LIBRARIES = ("lifelines", "scikit-learn", "statsmodels", "scipy", "pandas", "numpy")

REFUSAL = (
    "analyses read row-level data: they run only for approved members of an approved, unexpired project, "
    "inside its scope (name it with project_id; file an access request if it is not approved yet)"
)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def _variables_of(spec: FilterSpec) -> set[str]:
    return {clause.variable for clause in spec.all} | {c.variable for group in spec.any_of for c in group}


def _authorize(caller: Caller, analysis: str, request: AnalysisRequest, *, action: str = ACTION) -> Grant:
    """The rights check (audited before any row is read); a refusal says what is needed."""
    resource = {"analysis": analysis, "request_hash": _digest(request.model_dump(mode="json"))}
    try:
        return caller.authorize(action, project_id=request.project_id,
                                detail={"resource": resource, "channel": caller.channel})  # fmt: skip
    except AccessDenied as denied:
        raise AccessDenied(action, f"{denied.reason}; {REFUSAL}") from None


def scoped_condition(
    caller: Caller, engine: Engine, request: AnalysisRequest, used: Sequence[str], *, action: str = ACTION
) -> tuple[exp.Expr | None, FilterSpec]:
    """The mart condition of the request's filters AND the project's row-level scope (sites, period, cohort).

    ``used`` are the mart variables the analysis reads (checked against the project's variables). Analyses
    that read OMOP rows beyond the mart restrict them to ``person_id IN (SELECT m.person_id FROM mart AS m
    WHERE <this condition>)``, so every analysis has one definition of its persons.
    """
    spec, restrict = _check_mart_scope(caller, engine, action, request.filters, request.project_id,
                                       extra_variables=sorted(used))  # fmt: skip
    try:
        condition = compile_filter(spec, table=MART_ALIAS)
    except FilterError as error:
        raise InvalidRequest(f"analysis filter: {error}") from None
    if restrict is not None:
        condition = exp.and_(condition, restrict) if condition is not None else restrict
    if not engine.table_exists(MART_TABLE):
        raise MartNotBuiltError(f"the mart is not built on this warehouse: run 'massalia mart build' ({MART_TABLE})")
    return condition, spec


def _rows(
    caller: Caller,
    engine: Engine,
    request: AnalysisRequest,
    variables: Sequence[str],
    arms: dict[str, FilterSpec] | None = None,
    *,
    action: str = ACTION,
    keys: Sequence[str] = (),
    checked: Sequence[str] = (),
) -> tuple[pd.DataFrame, FilterSpec]:
    """The mart rows of the project's scope matching the request's filters, with ``variables`` (and arm flags).

    ``keys`` are read without the project's variable check (``person_id``: a join key the analysis never
    releases); ``checked`` are checked against the project's variables without being read (an analysis
    that reads them from its own cache of the mart).
    """
    used = set(variables) | set(checked) | {v for spec in (arms or {}).values() for v in _variables_of(spec)}
    condition, spec = scoped_condition(caller, engine, request, sorted(used), action=action)
    try:
        selected = sorted(set(variables) | set(keys))
        columns: list[exp.Expr] = [exp.column(name, table=MART_ALIAS) for name in selected]
        for arm, arm_spec in (arms or {}).items():
            arm_condition = compile_filter(arm_spec, table=MART_ALIAS) or exp.true()
            columns.append(exp.Case().when(arm_condition, exp.true()).else_(exp.false()).as_(f"_arm_{arm}"))
        query = exp.select(*columns).from_(exp.to_table(MART_TABLE).as_(MART_ALIAS))
        if condition is not None:
            query = query.where(condition)
    except FilterError as error:
        raise InvalidRequest(f"analysis filter: {error}") from None
    return engine.query(query).to_pandas(), spec


@functools.cache
def _library_versions() -> tuple[tuple[str, str | None], ...]:
    """The installed versions of :data:`LIBRARIES`, read once a process (reading them costs ~6 ms each)."""
    versions: list[tuple[str, str | None]] = []
    for name in LIBRARIES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            versions.append((name, None))
    return tuple(versions)


def _provenance(engine: Engine, analysis: str, request: AnalysisRequest, spec: FilterSpec, rows: int) -> dict[str, Any]:
    """What makes the result reproducible: hashes of the request, filter and cohort; data and code versions."""
    built = last_build(engine) or {}
    cohort = None
    if spec.cohort_definition_id is not None:
        cohort = {"cohort_definition_id": request.filters.cohort_definition_id,
                  "definition_hash": _generated_hash(engine, spec.cohort_definition_id)}  # fmt: skip
    versions = dict(_library_versions())
    return {
        "analysis": analysis,
        "project_id": request.project_id,
        "request_hash": _digest(request.model_dump(mode="json")),
        "filter_hash": _digest(normalized_spec(request.filters)),
        "cohort": cohort,
        "mart_build": {
            key: str(built[key]) if built.get(key) is not None else None
            for key in ("build_id", "built_at", "data_version", "vocabulary_version")
        },
        "massalia_version": massalia.__version__,
        "libraries": versions,
        "rows_read": rows,
        "request": request.model_dump(mode="json"),
    }


def _threshold() -> int:
    return settings_from_env().threshold


def _check_variables(names: Sequence[str]) -> None:
    catalogue = load_catalogue()
    for name in names:
        try:
            catalogue.variable(name)
        except KeyError as error:
            raise InvalidRequest(str(error.args[0])) from None


def run_survival(caller: Caller, engine: Engine, request: SurvivalRequest) -> dict[str, Any]:
    """Kaplan–Meier (overall and by group), log-rank (stratified when asked), a Cox model, and cumulative incidence.

    Examples
    --------
    >>> run_survival(Caller(rita, gov), engine, SurvivalRequest(project_id=1, group_by="stage_group"))  # doctest: +SKIP
    {'analysis': 'survival', 'km': {...}, 'logrank': {...}, 'cox': {...}, 'provenance': {...}}
    """
    _authorize(caller, "survival", request)
    endpoint = ENDPOINTS[request.endpoint]
    if request.competing_risks and endpoint.competing is None:
        raise InvalidRequest(f"endpoint {endpoint.name!r} has no competing event: use relapse or second_cancer")
    extra = [name for name in (request.group_by, request.strata) if name]
    _check_variables([*extra, *request.covariates, *request.categorical])
    variables = [*endpoint.variables, *extra, *request.covariates]
    frame, spec = _rows(caller, engine, request, variables)
    threshold = _threshold()
    time, event = endpoint.time_event(frame)
    keep = ~np.isnan(time)
    frame, time, event = frame[keep].reset_index(drop=True), time[keep], event[keep]
    step, table_at = request.time_step_months, request.at_risk_months
    result: dict[str, Any] = {
        "analysis": "survival",
        "endpoint": {
            "name": endpoint.name,
            "label": endpoint.label,
            "time_unit": "months since diagnosis",
            "competing_event": endpoint.competing,
        },
        "threshold": threshold,
        "excluded_no_time": protect_count(int((~keep).sum()), threshold),
        "km": {"all": survival.kaplan_meier(time, event, threshold=threshold, step=step, table_at=table_at)},
    }
    if request.group_by:
        groups = frame[request.group_by].map(lambda value: "missing" if pd.isna(value) else str(value)).to_numpy()
        result["km"]["groups"] = {
            str(level): survival.kaplan_meier(time[groups == level], event[groups == level], threshold=threshold,
                                              step=step, table_at=table_at)
            for level in sorted(set(groups))
        }  # fmt: skip
        if len(set(groups)) > 1:
            strata = frame[request.strata].astype(str).to_numpy() if request.strata else None
            result["logrank"] = survival.logrank(time, event, groups, strata=strata)
    if len(frame) == 0:  # nothing more to estimate on an empty cohort
        result["provenance"] = _provenance(engine, "survival", request, spec, 0)
        return result
    if request.covariates:
        result["cox"] = _cox(frame, time, event, request, threshold)
    if request.competing_risks:
        result["cumulative_incidence"] = survival.cumulative_incidence(time, event, threshold=threshold, step=step)
    result["provenance"] = _provenance(engine, "survival", request, spec, len(frame))
    return result


def _cox(
    frame: pd.DataFrame, time: np.ndarray, event: np.ndarray, request: SurvivalRequest, threshold: int
) -> dict[str, Any]:
    """A Cox model of the request's covariates on complete cases (stratified by ``strata`` when given)."""
    design = covariate_matrix(frame, request.covariates, load_catalogue(), categorical=request.categorical)
    data = design.matrix.copy()
    data["time"], data["event"] = time[design.kept], event[design.kept]
    strata: list[str] = []
    if request.strata:
        data["_stratum"] = frame[request.strata].astype(str).to_numpy()[design.kept]
        strata = ["_stratum"]
    if not (data["event"] == 1).any():
        raise InvalidRequest("the cohort has no event for this endpoint: no Cox model can be fitted")
    model = survival.cox_model(data, strata=strata)
    return {
        **model,
        "n": protect_count(len(data), threshold),
        "events": protect_count(int((data["event"] == 1).sum()), threshold),
        "excluded_incomplete": protect_count(len(frame) - len(data), threshold),
        "references": design.references,
        "dropped": design.dropped,
        "cause_specific": ENDPOINTS[request.endpoint].competing is not None,
    }


def run_compare(caller: Caller, engine: Engine, request: CompareRequest) -> dict[str, Any]:
    """Treated versus comparator within the population, by propensity-score matching and weighting.

    Balance, adjusted KM and HR, negative controls with empirical calibration, and the assumptions in
    plain words.

    Examples
    --------
    >>> request = CompareRequest(project_id=1, treated=..., comparator=...)  # doctest: +SKIP
    >>> run_compare(Caller(rita, gov), engine, request)  # doctest: +SKIP
    {'analysis': 'compare', 'hazard_ratios': {'naive': ..., 'matched': ..., 'ipw': ...}, ...}
    """
    _authorize(caller, "compare", request)
    catalogue = load_catalogue()
    endpoint = ENDPOINTS[request.endpoint]
    names = request.covariates if request.covariates is not None else None
    _check_variables([*(names or []), *request.categorical])
    controls = [ENDPOINTS[name] for name in request.negative_controls]
    outcome_variables = {v for item in (endpoint, *controls) for v in item.variables}
    if names is None:
        from_scope = project_scope(caller, ACTION, request.project_id).variables
        names = baseline_covariates(catalogue, from_scope)
    arms = {"treated": request.treated, "comparator": request.comparator}
    frame, spec = _rows(caller, engine, request, [*outcome_variables, *names], arms)
    threshold = _threshold()
    both = frame["_arm_treated"].astype(bool) & frame["_arm_comparator"].astype(bool)
    either = frame["_arm_treated"].astype(bool) | frame["_arm_comparator"].astype(bool)
    population = frame[either & ~both].reset_index(drop=True)
    # A person without a follow-up time for the endpoint (a dirty diagnosis or end date) cannot be at risk:
    # left out before the propensity model, as the survival analysis does, and counted in the result.
    time, event = endpoint.time_event(population)
    has_time = ~np.isnan(time)
    population, time, event = population[has_time].reset_index(drop=True), time[has_time], event[has_time]
    treated = population["_arm_treated"].astype(bool).to_numpy()
    if treated.sum() < 2 or (~treated).sum() < 2:
        raise InvalidRequest("each arm needs persons: the treated or the comparator cohort is (nearly) empty")
    categorical = [name for name in request.categorical if name in names]
    design = covariate_matrix(population, names, catalogue, categorical=categorical, missing="indicator")
    negative = [Outcome(item.name, *item.time_event(population)) for item in controls]
    result = compare(design.matrix, treated, Outcome(endpoint.name, time, event), negative_controls=negative,
                     threshold=threshold, step=request.time_step_months, table_at=request.at_risk_months,
                     caliper_sd=request.caliper_sd)  # fmt: skip
    return {
        "analysis": "compare",
        "endpoint": {"name": endpoint.name, "label": endpoint.label, "time_unit": "months since diagnosis"},
        "threshold": threshold,
        "excluded_in_both_arms": protect_count(int(both.sum()), threshold),
        "excluded_no_time": protect_count(int((~has_time).sum()), threshold),
        "covariate_references": design.references,
        "covariates_dropped": design.dropped,
        **result,
        "assumptions": assumptions_report(result),
        "provenance": _provenance(engine, "compare", request, spec, len(frame)),
    }


def assumptions_report(result: dict[str, Any]) -> list[str]:
    """The comparison's assumptions in plain words, each with what this run's diagnostics say about it."""
    ps = result["propensity_score"]
    ipw = result["hazard_ratios"].get("ipw", {})
    lines = [
        "No unmeasured confounding: the propensity score only balances the covariates it was given "
        f"({ps['covariates']} model columns); a cause of both treatment and outcome missing from the mart "
        "(frailty, patient preference) is not adjusted for.",
        f"Positivity (overlap): the propensity model separates the arms with AUC {ps['auc']:.2f}; "
        f"{ps['equipoise'] * 100:.0f} % of persons are in equipoise (preference score 0.3–0.7). "
        + ("Overlap is poor: the matched population is a narrow, specific subgroup."
           if ps["equipoise"] < 0.5 else "Overlap is acceptable."),
        "Balance: after matching, "
        + (f"{len(result['imbalanced_after_matching'])} covariate(s) keep |SMD| > 0.1"
           if result["imbalanced_after_matching"] else "every covariate has |SMD| ≤ 0.1")
        + "; after weighting, "
        + (f"{len(result['imbalanced_after_weighting'])} covariate(s) keep |SMD| > 0.1."
           if result["imbalanced_after_weighting"] else "every covariate has |SMD| ≤ 0.1."),
        "Proportional hazards: each hazard ratio is an average over follow-up; the naive model's Schoenfeld "
        f"test p = {result['hazard_ratios']['naive'].get('ph_test_p') or float('nan'):.3f}.",
        "Time zero is the diagnosis date for both arms; treatments are read over the whole follow-up, so a "
        "cohort defined by a treatment given late (after a relapse) carries immortal-time bias: define the "
        "arms by first-line treatment.",
        f"Weighting: stabilized weights, largest {result['weighting']['max_weight'] or float('nan'):.1f}; "
        f"the weighted hazard ratio is {ipw.get('hr', float('nan')):.2f} (robust 95 % CI "
        f"{ipw.get('lower', float('nan')):.2f}–{ipw.get('upper', float('nan')):.2f}).",
    ]  # fmt: skip
    controls = result["negative_controls"]
    if controls["calibrated"]:
        calibrated = controls["calibrated"].get("ipw") or next(iter(controls["calibrated"].values()))
        lines.append(
            "Systematic error: negative-control outcomes give an empirical null; the calibrated weighted "
            f"HR is {calibrated['hr']:.2f} ({calibrated['lower']:.2f}–{calibrated['upper']:.2f})."
        )
    else:
        lines.append("Systematic error was not measured: " + controls.get("note", "no negative control given")
                     + " (name outcomes the treatment cannot affect).")  # fmt: skip
    return lines
