"""The guarded entry points of risk prediction: train, score, list models (one enforcement point).

Training follows the steps of every analysis (:mod:`massalia.health.analytics.service`): authorize
``health.analysis.run`` under an approved project, read the project's scoped mart rows (and, for unplanned
hospitalizations, the emergency visits of those persons inside the project's period), compute, protect
the counts, record the provenance. The fitted models go to the :class:`ModelStore` sealed under the
project's key, with their model card.

Scoring is its own action, ``health.prediction.score``: every approved member gets the distribution of the
risks (counts protected); only a project with **pseudonymized** (row-level) access gets each person's risk,
named by the project's pseudonym. A model opens only under the project that trained it.

Examples
--------
>>> result = run_prediction_train(caller, engine, store, PredictionRequest(project_id=1))  # doctest: +SKIP
>>> [model["algorithm"] for model in result["models"]]  # doctest: +SKIP
['lasso_logistic', 'gradient_boosting']
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlglot import exp

from massalia.engine import Engine
from massalia.governance import AccessDenied, Caller, InvalidRequest
from massalia.governance.policy import RowPolicy
from massalia.governance.pseudonym import pseudonymize
from massalia.health.analytics.design import baseline_covariates, covariate_matrix
from massalia.health.analytics.model_store import ModelSealError, ModelStore
from massalia.health.analytics.prediction import (
    EXCLUDED_FEATURES,
    OUTCOMES,
    FittedModel,
    develop,
    risk_histogram,
    temporal_split,
)
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import PredictionRequest, PredictionScoreRequest
from massalia.health.analytics.service import (
    ACTION,
    _authorize,
    _check_variables,
    _digest,
    _provenance,
    _rows,
    _threshold,
)
from massalia.health.marts.builder import MART_TABLE, last_build
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import FilterSpec, compile_filter
from massalia.health.research import MART_ALIAS, _check_mart_scope, project_scope

SCORE_ACTION = "health.prediction.score"
"""Scoring persons with a stored model (``health/rights.yaml``): row-level risks for pseudonymized projects."""

EMERGENCY_VISIT_CONCEPT_ID = 9203
"""OMOP's Emergency Room Visit: every unplanned hospitalization of the warehouse starts with one."""

ID_COLUMNS = ("person_id", "diagnosis_date")

ROW_LEVEL_ONLY = (
    "per-person risks are released only under a project with pseudonymized (row-level) access: score the "
    "cohort for the risks' distribution"
)


def _first_emergency_day(caller: Caller, engine: Engine, request: PredictionRequest, spec: FilterSpec,
                         frame: pd.DataFrame) -> np.ndarray:  # fmt: skip
    """Days from diagnosis to each person's first emergency visit on or after it (NaN: none in scope).

    The visits are joined to the same scoped mart rows (project sites, cohort, index period) and restricted
    to the project's period themselves: a visit outside the period is never read.
    """
    _, restrict = _check_mart_scope(caller, engine, ACTION, spec, request.project_id)
    visit = exp.column("visit_start_date", table="v")
    conditions: list[exp.Expr] = [
        exp.column("visit_concept_id", table="v").eq(exp.Literal.number(EMERGENCY_VISIT_CONCEPT_ID)),
        exp.GTE(this=visit.copy(), expression=exp.column("diagnosis_date", table=MART_ALIAS)),
    ]
    policy = RowPolicy.of(project_scope(caller, ACTION, request.project_id))
    for extra in (compile_filter(spec, table=MART_ALIAS), restrict, policy.period_predicate(visit)):
        if extra is not None:
            conditions.append(extra)
    query = (
        exp.select(exp.column("person_id", table=MART_ALIAS), exp.Min(this=visit.copy()).as_("first_visit"))
        .from_(exp.to_table(MART_TABLE).as_(MART_ALIAS))
        .join(exp.to_table("visit_occurrence").as_("v"), on=exp.column("person_id", table="v").eq(
            exp.column("person_id", table=MART_ALIAS)))
        .where(exp.and_(*conditions))
        .group_by(exp.column("person_id", table=MART_ALIAS))
    )  # fmt: skip
    visits = engine.query(query).to_pandas()
    first = dict(zip(visits["person_id"].astype(int), pd.to_datetime(visits["first_visit"]), strict=True))
    diagnosis = pd.to_datetime(frame["diagnosis_date"])
    return np.array([
        (first[person] - day).days if person in first else np.nan
        for person, day in zip(frame["person_id"].astype(int), diagnosis, strict=True)
    ], dtype=float)  # fmt: skip


def _features(caller: Caller, request: PredictionRequest) -> list[str]:
    if request.features is not None:
        _check_variables([*request.features, *request.categorical])
        return list(dict.fromkeys(request.features))
    in_scope = project_scope(caller, ACTION, request.project_id).variables
    return [name for name in baseline_covariates(load_catalogue(), in_scope) if name not in EXCLUDED_FEATURES]


def _cohort_hash(person_ids: pd.Series) -> str:
    """SHA-256 of the sorted person ids of the training population (train and test)."""
    ids = np.sort(person_ids.astype(np.int64).to_numpy())
    return hashlib.sha256(ids.tobytes()).hexdigest()


def _check_counts(y: np.ndarray, test: np.ndarray, threshold: int) -> None:
    for part, mask in (("training", ~test), ("test", test)):
        cases = int(y[mask].sum())
        if cases < threshold or int(mask.sum()) - cases < threshold:
            raise InvalidRequest(f"the {part} set has fewer than {threshold} cases or non-cases: no model can be "
                                 "developed nor evaluated (widen the cohort or lengthen the time at risk)")  # fmt: skip


def run_prediction_train(
    caller: Caller, engine: Engine, store: ModelStore, request: PredictionRequest
) -> dict[str, Any]:
    """Develop, evaluate and store the requested models; their metrics and cards (aggregates only).

    Examples
    --------
    >>> run_prediction_train(Caller(rita, gov), engine, store, PredictionRequest(project_id=1))  # doctest: +SKIP
    {'analysis': 'prediction', 'models': [{'model_id': ..., 'metrics': {'test': {'auc': ...}}}], ...}
    """
    _authorize(caller, "prediction", request)
    outcome = OUTCOMES[request.outcome]
    tar = request.tar_days or outcome.default_tar_days
    features = _features(caller, request)
    if not features:
        raise InvalidRequest("no feature: name mart variables in features (or widen the project's variables)")
    frame, spec = _rows(caller, engine, request, [*features, *outcome.variables, *ID_COLUMNS])
    threshold = _threshold()
    first_visit = _first_emergency_day(caller, engine, request, spec, frame) if outcome.visits else None
    y_all = outcome.label(frame, tar, first_visit)
    keep = ~np.isnan(y_all)
    population = frame[keep].reset_index(drop=True)
    y = y_all[keep]
    categorical = [name for name in request.categorical if name in features]
    design = covariate_matrix(population, features, load_catalogue(), categorical=categorical, missing="indicator")
    test, cut = temporal_split(population["diagnosis_date"], request.test_fraction)
    _check_counts(y, test, threshold)
    built = last_build(engine) or {}
    provenance = _provenance(engine, "prediction", request, spec, len(frame))
    card_base = {
        "project_id": request.project_id,
        "target": {"filters": request.filters.model_dump(mode="json"), "filter_hash": provenance["filter_hash"],
                   "cohort": provenance["cohort"]},
        "outcome": {"name": outcome.name, "label": outcome.label_text},
        "time_at_risk": {"start_days": 0, "end_days": tar, "anchor": "diagnosis_date",
                         "require_full_time_at_risk": True},
        "variables": features,
        "categorical": categorical,
        "data_version": {key: str(built[key]) if built.get(key) is not None else None
                         for key in ("build_id", "data_version", "vocabulary_version")},
        "training_cohort_hash": _cohort_hash(population["person_id"]),
        "split": {"kind": "temporal", "test_from_diagnosis_date": cut, "test_fraction": request.test_fraction},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "request_hash": provenance["request_hash"],
        "libraries": provenance["libraries"],
        "massalia_version": provenance["massalia_version"],
    }  # fmt: skip
    key = caller.governance.project_key(request.project_id)
    models = []
    for algorithm in request.algorithms:
        fitted, metrics = develop(design.matrix, y, test, algorithm, threshold=threshold, seed=request.seed,
                                  resamples=request.bootstrap)  # fmt: skip
        card = {**card_base, "algorithm": algorithm, "features": fitted.features, "metrics": metrics}
        model_id = store.save(fitted, card, key)
        models.append({"model_id": model_id, "card": {**card, "model_id": model_id}})
    return {
        "analysis": "prediction",
        "outcome": {"name": outcome.name, "label": outcome.label_text, "time_at_risk_days": tar},
        "threshold": threshold,
        "population": {
            "target": protect_count(len(frame), threshold),
            "excluded_short_follow_up": protect_count(int((~keep).sum()), threshold),
            "train": protect_count(int((~test).sum()), threshold),
            "train_outcomes": protect_count(int(y[~test].sum()), threshold),
            "test": protect_count(int(test.sum()), threshold),
            "test_outcomes": protect_count(int(y[test].sum()), threshold),
        },
        "covariate_references": design.references,
        "covariates_dropped": design.dropped,
        "models": models,
        "provenance": provenance,
    }


def _load(caller: Caller, store: ModelStore, model_id: str, project_id: int) -> tuple[dict[str, Any], FittedModel]:
    """The project's model, or a refusal (audited) when it is another project's or its files were changed."""
    try:
        stored = store.load(model_id, caller.governance.project_key(project_id), project_id)
    except ModelSealError as error:
        caller.governance.audit(caller.principal, SCORE_ACTION, decision="denied", denied_because=str(error),
                                project_id=project_id, resource={"model_id": model_id})  # fmt: skip
        raise AccessDenied(SCORE_ACTION, str(error)) from None
    if not isinstance(stored.model, FittedModel):
        raise InvalidRequest(f"model {model_id} is not a prediction model of this version")
    return stored.card, stored.model


def run_prediction_score(
    caller: Caller, engine: Engine, store: ModelStore, model_id: str, request: PredictionScoreRequest
) -> dict[str, Any]:
    """Risks of the persons of the request's cohort (or of the named pseudonyms) under a stored model.

    Examples
    --------
    >>> request = PredictionScoreRequest(project_id=1, persons=["P1-3f9a..."])  # doctest: +SKIP
    >>> run_prediction_score(Caller(rita, gov), engine, store, "0123456789abcdef", request)  # doctest: +SKIP
    {'analysis': 'prediction_score', 'persons': [{'pseudonym': 'P1-3f9a...', 'risk': 0.31}], ...}
    """
    store.path(model_id)  # a malformed id is refused before anything else
    resource = {"model_id": model_id, "request_hash": _digest(request.model_dump(mode="json"))}
    grant = caller.authorize(SCORE_ACTION, project_id=request.project_id,
                             detail={"resource": resource, "channel": caller.channel})  # fmt: skip
    row_level = grant.row_level and grant.pseudonymized
    if request.persons and not row_level:
        raise AccessDenied(SCORE_ACTION, ROW_LEVEL_ONLY)
    card, fitted = _load(caller, store, model_id, request.project_id)
    frame, spec = _rows(caller, engine, request, [*card["variables"], "person_id"])
    threshold = _threshold()
    result: dict[str, Any] = {"analysis": "prediction_score", "model_id": model_id, "threshold": threshold,
                              "outcome": card["outcome"], "time_at_risk": card["time_at_risk"],
                              "algorithm": card["algorithm"], "row_level": row_level}  # fmt: skip
    key = caller.governance.project_key(request.project_id)
    pseudonyms = np.array(
        pseudonymize(pa.array(frame["person_id"].astype("int64"), pa.int64()), key=key, project=request.project_id)
        .to_pylist(), dtype=object)  # fmt: skip
    if request.persons:
        wanted = set(request.persons)
        chosen = np.array([name in wanted for name in pseudonyms], dtype=bool)
        result["not_found"] = sorted(wanted - set(pseudonyms[chosen].tolist()))
        frame, pseudonyms = frame[chosen].reset_index(drop=True), pseudonyms[chosen]
    risks = np.array([], dtype=float)
    if len(frame):
        design = covariate_matrix(frame, card["variables"], load_catalogue(), categorical=card["categorical"],
                                  missing="indicator")  # fmt: skip
        risks = fitted.risks(design.matrix)
    if row_level:
        order = np.argsort(-risks, kind="stable")
        result["persons"] = [{"pseudonym": str(pseudonyms[i]), "risk": round(float(risks[i]), 4)} for i in order]
    else:
        result["n"] = protect_count(len(risks), threshold)
        result["mean_risk"] = round(float(risks.mean()), 4) if len(risks) >= threshold else None
        result["risk_histogram"] = risk_histogram(risks, threshold)
    result["provenance"] = _provenance(engine, "prediction_score", request, spec, len(frame))
    return result


def list_prediction_models(caller: Caller, engine: Engine, store: ModelStore, project_id: int) -> dict[str, Any]:
    """The project's stored models (cards without patient data), for its approved members.

    Examples
    --------
    >>> list_prediction_models(Caller(rita, gov), engine, store, 1)["models"][0]["outcome"]  # doctest: +SKIP
    {'name': 'relapse', 'label': 'relapse or progression within the TAR'}
    """
    caller.authorize(ACTION, project_id=project_id,
                     detail={"resource": {"analysis": "prediction_models"}, "channel": caller.channel})  # fmt: skip
    current = str((last_build(engine) or {}).get("data_version"))
    models = []
    for card in store.cards(caller.governance.project_key(project_id), project_id):
        auc = card.get("metrics", {}).get("test", {}).get("auc", {})
        models.append({
            "model_id": card.get("model_id"), "algorithm": card.get("algorithm"), "outcome": card.get("outcome"),
            "time_at_risk": card.get("time_at_risk"), "created_at": card.get("created_at"), "test_auc": auc,
            "training_cohort_hash": card.get("training_cohort_hash"), "data_version": card.get("data_version"),
            "current_data": current == (card.get("data_version") or {}).get("data_version"),
            "card": card,
        })  # fmt: skip
    models.sort(key=lambda model: str(model["created_at"]), reverse=True)
    return {"project_id": project_id, "models": models}
