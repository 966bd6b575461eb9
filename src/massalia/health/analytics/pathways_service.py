"""The guarded entry points of care pathways and conformance to reference practice.

They follow the steps of :mod:`massalia.health.analytics.service` and reuse its pieces: **authorize**
``health.analysis.run`` under the named project (audited before any row is read); **scope** — the mart
persons are the request's filters AND the project's sites, period and cohort
(:func:`~massalia.health.analytics.service.scoped_condition`), and every OMOP row read beyond the mart
(drug exposures, treatment episodes, procedures) is restricted to those persons, to persons of the
project's sites (``person.care_site_id``) and to the project's period over the row's own date; **compute**;
**protect** (counts ``<10``, rates only when both cells are shown, no person id leaves); **provenance**.

Examples
--------
>>> run_pathways(Caller(rita, gov), engine, PathwaysRequest(project_id=1))  # doctest: +SKIP
{'analysis': 'pathways', 'pathways': [...], 'sankey': {'nodes': [...], 'links': [...]}, ...}
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.governance.policy import RowPolicy
from massalia.health.analytics import survival
from massalia.health.analytics.conformance import (
    REFERENCE_RULES,
    Evaluation,
    RuleError,
    RuleSet,
    deviations,
    evaluate_rule,
    load_rules,
    parse_rules,
    rate,
    rates_by,
)
from massalia.health.analytics.design import covariate_matrix
from massalia.health.analytics.outcomes import DAYS_PER_MONTH, ENDPOINTS
from massalia.health.analytics.pathways import Events, RowFilter, pathway_steps, pathway_summary, read_events
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import AnalysisRequest, ConformanceRequest, PathwaysRequest
from massalia.health.analytics.service import (
    ACTION,
    _authorize,
    _check_variables,
    _provenance,
    _rows,
    _threshold,
    scoped_condition,
)
from massalia.health.marts.builder import MART_TABLE
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.research import MART_ALIAS, _scope_persons_query, project_scope

PERSON_VARIABLES = ("person_id", "diagnosis_date", "care_site_code", "year_of_diagnosis")
"""Mart variables every pathway or conformance run reads (who, when, where)."""


def scoped_row_filter(
    caller: Caller, engine: Engine, request: AnalysisRequest, used: list[str]
) -> tuple[RowFilter, Any]:
    """The restriction of OMOP rows to the analysis's persons, the project's sites and its period.

    Returns a ``(person column, row date column) -> predicate`` function and the resolved filter spec.
    """
    condition, spec = scoped_condition(caller, engine, request, used)
    persons = exp.select(exp.column("person_id", table=MART_ALIAS)).from_(exp.to_table(MART_TABLE).as_(MART_ALIAS))
    if condition is not None:
        persons = persons.where(condition)
    # read after _authorize and scoped_condition: the caller is an approved member of this project
    policy = RowPolicy.of(project_scope(caller, ACTION, request.project_id))
    of_sites = _scope_persons_query(policy)

    def row_filter(person: exp.Expr, date: exp.Expr) -> exp.Expr:
        parts: list[exp.Expr] = [exp.In(this=person.copy(), query=exp.Subquery(this=persons.copy()))]
        if of_sites is not None:  # defence in depth: the person's own site, not only the mart's copy of it
            parts.append(exp.In(this=person.copy(), query=exp.Subquery(this=of_sites.copy())))
        period = policy.period_predicate(date)
        if period is not None:
            parts.append(period)
        return exp.and_(*parts)

    return row_filter, spec


def _drug_days(events: Events, diagnosis: pd.DataFrame) -> pd.DataFrame:
    drugs = events.drugs.merge(diagnosis[["person_id", "diagnosis_date"]], on="person_id", how="inner")
    day = (pd.to_datetime(drugs["start_date"]) - pd.to_datetime(drugs["diagnosis_date"])).dt.days
    return drugs.assign(day=day.astype(float))[["person_id", "day", "ingredient"]]


def run_pathways(caller: Caller, engine: Engine, request: PathwaysRequest) -> dict[str, Any]:
    """The most frequent treatment pathways of the cohort, as a ranked list and a Sankey, with step timing.

    Examples
    --------
    >>> run_pathways(Caller(rita, gov), engine, PathwaysRequest(project_id=1, max_steps=3))  # doctest: +SKIP
    {'analysis': 'pathways', 'persons': {'count': 2890, 'shown': '2890'}, 'pathways': [...], ...}
    """
    _authorize(caller, "pathways", request)
    frame, spec = _rows(caller, engine, request, PERSON_VARIABLES)
    row_filter, _ = scoped_row_filter(caller, engine, request, list(PERSON_VARIABLES))
    steps = pathway_steps(read_events(engine, row_filter), frame, request.detail)
    threshold = _threshold()
    summary = pathway_summary(steps, frame["person_id"].astype(int).tolist(), max_steps=request.max_steps,
                              top=request.top, threshold=threshold)  # fmt: skip
    return {
        "analysis": "pathways",
        "threshold": threshold,
        "detail": request.detail,
        "max_steps": request.max_steps,
        "time_unit": "days",
        **summary,
        "provenance": _provenance(engine, "pathways", request, spec, len(frame)),
    }


def _rule_set(request: ConformanceRequest) -> RuleSet:
    try:
        rules = (
            load_rules(REFERENCE_RULES) if request.rules_yaml is None else parse_rules(request.rules_yaml, "rules_yaml")
        )
    except RuleError as error:
        raise InvalidRequest(str(error)) from None
    known = [rule.id for rule in rules.rules]
    unknown = [name for name in request.rules if name not in known]
    if unknown:
        raise InvalidRequest(f"unknown rule(s) {', '.join(unknown)}: the rule set has {', '.join(known)}")
    if request.rules:
        rules = rules.model_copy(update={"rules": tuple(r for r in rules.rules if r.id in request.rules)})
    return rules


def run_conformance(caller: Caller, engine: Engine, request: ConformanceRequest) -> dict[str, Any]:
    """Conformance rates per rule, site and period (Wilson CI), deviations as aggregates, outcomes by conformance.

    Examples
    --------
    >>> run_conformance(Caller(rita, gov), engine, ConformanceRequest(project_id=1))  # doctest: +SKIP
    {'analysis': 'conformance', 'rules': [{'id': 'her2_early_breast_anti_her2', 'overall': {...}, ...}], ...}
    """
    _authorize(caller, "conformance", request)
    rules = _rule_set(request)
    _check_variables(request.covariates)
    endpoint = ENDPOINTS[request.endpoint]
    variables = [*PERSON_VARIABLES, *endpoint.variables, *request.covariates]
    arms = {rule.id: rule.population_spec() for rule in rules.rules}
    frame, spec = _rows(caller, engine, request, variables, arms)
    used = sorted({*variables, *(c.variable for rule in rules.rules for c in rule.clauses())})
    row_filter, _ = scoped_row_filter(caller, engine, request, used)
    events = read_events(engine, row_filter)
    steps, drugs = pathway_steps(events, frame, "modality"), _drug_days(events, frame)
    threshold = _threshold()
    time, event = endpoint.time_event(frame)
    frame = frame.assign(follow_up_days=time * DAYS_PER_MONTH, _time=time, _event=event)
    results = []
    for rule in rules.rules:
        population = frame[frame[f"_arm_{rule.id}"].astype(bool)].reset_index(drop=True)
        evaluation = evaluate_rule(rule, rules.classes, population, steps, drugs)
        results.append(_rule_result(evaluation, population, request, threshold))
    return {
        "analysis": "conformance",
        "threshold": threshold,
        "rule_set": "reference" if request.rules_yaml is None else "request",
        "endpoint": {"name": endpoint.name, "label": endpoint.label, "time_unit": "months since the landmark"},
        "rules": results,
        "provenance": _provenance(engine, "conformance", request, spec, len(frame)),
    }


def _rule_result(
    evaluation: Evaluation, population: pd.DataFrame, request: ConformanceRequest, threshold: int
) -> dict[str, Any]:
    rule = evaluation.rule
    keep = evaluation.evaluable
    sites = population["care_site_code"].fillna("unknown").astype(str).to_numpy()
    years = population["year_of_diagnosis"].map(lambda y: "unknown" if pd.isna(y) else str(int(y))).to_numpy()
    return {
        "id": rule.id,
        "title": rule.title,
        "guideline": rule.guideline.model_dump(),
        "expected": rule.expected,
        "anchor": rule.anchor,
        "window_days": [rule.window.min_days, rule.window.max_days],
        "population": protect_count(len(population), threshold),
        "overall": rate(int((keep & evaluation.conforming).sum()), int(keep.sum()), threshold),
        "by_site": rates_by(evaluation, sites, threshold),
        "by_period": rates_by(evaluation, years, threshold),
        "period": "year of diagnosis",
        "statuses": deviations(evaluation, threshold),
        "outcomes": _outcomes(evaluation, population, request, threshold),
    }


def _outcomes(
    evaluation: Evaluation, population: pd.DataFrame, request: ConformanceRequest, threshold: int
) -> dict[str, Any]:
    """The endpoint of conforming versus deviating persons, from the rule's landmark (no immortal time).

    Conformance is known only at the end of the window: time is counted from that landmark, among the
    evaluable persons still followed then.
    """
    landmark = evaluation.landmark_day / DAYS_PER_MONTH
    time = population["_time"].to_numpy(dtype=float) - landmark
    at_landmark = evaluation.evaluable & (time > 0)
    frame = population[at_landmark].reset_index(drop=True)
    time, event = time[at_landmark], population["_event"].to_numpy()[at_landmark]
    group = np.where(evaluation.conforming[at_landmark], "conforming", "deviating")
    step = request.time_step_months
    out: dict[str, Any] = {
        "landmark": "end of the rule's window after the anchor",
        "persons": protect_count(len(frame), threshold),
        "km": {
            str(level): survival.kaplan_meier(time[group == level], event[group == level], threshold=threshold,
                                              step=step, table_at=request.at_risk_months)
            for level in ("conforming", "deviating")
        },
    }  # fmt: skip
    counts = [(group == level).sum() for level in ("conforming", "deviating")]
    if min(counts) < threshold or (event == 1).sum() < threshold:
        out["cox"] = None
        out["note"] = f"no comparison: fewer than {threshold} persons in a group or events"
        return out
    out["logrank"] = survival.logrank(time, event, group)
    design = covariate_matrix(frame, request.covariates, load_catalogue(), categorical=[])
    data = design.matrix.copy()
    data["deviating"] = (group[design.kept] == "deviating").astype(float)
    data["time"], data["event"] = time[design.kept], (event[design.kept] == 1).astype(int)
    try:
        out["cox"] = survival.cox_model(data)
    except (ValueError, np.linalg.LinAlgError) as error:  # a degenerate design: say so rather than fail the run
        out["cox"], out["note"] = None, f"the Cox model could not be fitted: {error}"
    return out
