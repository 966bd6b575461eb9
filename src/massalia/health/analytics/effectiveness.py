"""Treatment effectiveness: two cohorts compared through a propensity score, matching and weighting.

The steps follow OHDSI's CohortMethod: a regularized logistic regression over many baseline covariates
(scikit-learn, penalty chosen by cross-validation) gives each person's propensity score; persons are
matched 1:1 on its logit (greedy nearest neighbour, without replacement, within a caliper of 0.2 standard
deviations) and, separately, weighted by stabilized inverse-probability weights; balance is the standardized
mean difference of every covariate before and after; the outcome is compared by Kaplan–Meier and Cox
(lifelines) in the matched and the weighted populations; negative-control outcomes give the empirical
null that calibrates the estimate (:mod:`massalia.health.analytics.calibration`).

This module reads no data and checks no right (see :mod:`massalia.health.analytics.service`).
"""

from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from massalia.health.analytics.calibration import MIN_CONTROLS, calibrated_interval, calibrated_p, fit_null
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.requests import CALIPER_SD
from massalia.health.analytics.survival import cox_model, kaplan_meier

BALANCE_LIMIT = 0.1
"""An absolute standardized mean difference above this after adjustment flags an imbalanced covariate."""

PS_BINS = 20

PS_CV_MAX_PERSONS = 20_000
"""Above this many persons the propensity model's penalty is chosen by cross-validation on a stratified random
sample of this size (seed 0), then the model is fitted on everyone with it: at 100,000 persons the penalty hardly
matters (standardized covariates, many rows per column) and the five-fold search cost most of the analysis."""


@dataclass(frozen=True)
class PropensityScore:
    """Each person's propensity score, the model's diagnostics, and the penalty chosen."""

    score: np.ndarray
    auc: float
    c_penalty: float
    equipoise: float


def propensity_score(covariates: pd.DataFrame, treated: np.ndarray, *, seed: int = 0) -> PropensityScore:
    """L2-regularized logistic regression of treatment on standardized covariates, penalty by 5-fold CV.

    The penalty is searched on a stratified sample of :data:`PS_CV_MAX_PERSONS` above that size.

    ``equipoise`` is the share of persons whose preference score (the PS corrected for the treated share,
    Walker 2013) lies in 0.3–0.7, as CohortMethod reports it.
    """
    x = StandardScaler().fit_transform(covariates.to_numpy(dtype=float))
    search = LogisticRegressionCV(Cs=8, cv=5, scoring="neg_log_loss", max_iter=5000, random_state=seed)
    sampled = len(x) > PS_CV_MAX_PERSONS
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes at the weakest penalties of the grid
        if sampled:
            x_cv, _, t_cv, _ = train_test_split(x, treated, train_size=PS_CV_MAX_PERSONS, stratify=treated,
                                                random_state=seed)  # fmt: skip
            search.fit(x_cv, t_cv)
            penalty = float(np.ravel(search.C_)[0])
            model: LogisticRegression | LogisticRegressionCV = LogisticRegression(C=penalty, max_iter=5000)
            model.fit(x, treated)
        else:
            model = search.fit(x, treated)
            penalty = float(np.ravel(search.C_)[0])
    score = np.clip(model.predict_proba(x)[:, 1], 1e-6, 1 - 1e-6)
    share = float(np.mean(treated))
    logit = np.log(score / (1 - score)) - math.log(share / (1 - share))
    preference = 1 / (1 + np.exp(-logit))
    return PropensityScore(
        score=score,
        auc=float(roc_auc_score(treated, score)),
        c_penalty=penalty,
        equipoise=float(np.mean((preference >= 0.3) & (preference <= 0.7))),
    )


def match_pairs(score: np.ndarray, treated: np.ndarray, *, caliper_sd: float = CALIPER_SD) -> np.ndarray:
    """Greedy 1:1 nearest-neighbour matching on the logit PS within the caliper; returns a pair id per person.

    Treated persons are taken from the highest score down (the hardest to match first); each takes the
    closest unmatched comparator within ``caliper_sd`` standard deviations of the logit PS. Unmatched
    persons get pair id -1.

    Examples
    --------
    >>> match_pairs(np.array([0.5, 0.52, 0.9, 0.1]), np.array([True, False, True, False])).tolist()
    [0, 0, -1, -1]
    """
    logit = np.log(score / (1 - score))
    caliper = caliper_sd * float(np.std(logit))
    treated = np.asarray(treated, dtype=bool)
    controls = np.flatnonzero(~treated)
    order = np.argsort(logit[controls], kind="stable")
    control_ids, control_logit = controls[order], logit[controls][order].tolist()
    n = len(control_logit)
    # The nearest unmatched comparator on each side, found through "next available" pointers with path
    # compression (a disjoint-set forest): scanning over matched comparators one by one made the matching
    # quadratic (25 s for 50,000 treated persons at 100,000 patients).
    right_of = list(range(n + 1))  # right_of[j]: the first available index >= j (n: none)
    left_of = list(range(n + 1))  # left_of[j + 1]: 1 + the last available index <= j (0: none)

    def find(pointers: list[int], start: int) -> int:
        root = start
        while pointers[root] != root:
            root = pointers[root]
        while pointers[start] != root:
            pointers[start], start = root, pointers[start]
        return root

    pair = np.full(score.size, -1, dtype=np.int64)
    next_pair = 0
    for person in np.flatnonzero(treated)[np.argsort(-logit[treated], kind="stable")].tolist():
        target = float(logit[person])
        position = bisect.bisect_left(control_logit, target)
        best, best_distance = -1, caliper
        for candidate in (find(left_of, position) - 1, find(right_of, position)):
            if 0 <= candidate < n:
                distance = abs(control_logit[candidate] - target)
                if distance <= best_distance:
                    best, best_distance = candidate, distance
        if best >= 0:
            right_of[best], left_of[best + 1] = best + 1, best  # no longer available
            pair[person] = pair[control_ids[best]] = next_pair
            next_pair += 1
    return pair


def stabilized_weights(score: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Stabilized inverse-probability-of-treatment weights: ``P(T)/ps`` for treated, ``P(C)/(1-ps)`` otherwise."""
    share = float(np.mean(treated))
    return np.where(treated, share / score, (1 - share) / (1 - score))


def effective_sample_size(weights: np.ndarray) -> float:
    """Kish's effective sample size, ``(Σw)² / Σw²``."""
    return float(weights.sum() ** 2 / (weights**2).sum()) if weights.size else 0.0


def standardized_differences(
    covariates: pd.DataFrame, treated: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float]:
    """Standardized mean difference of each covariate (pooled SD of the unadjusted groups, as CohortMethod).

    Examples
    --------
    >>> frame = pd.DataFrame({"x": [1.0, 1.0, 0.0, 0.0]})
    >>> standardized_differences(frame, np.array([True, True, False, False]))
    {'x': inf}
    """
    treated = np.asarray(treated, dtype=bool)
    w = np.ones(treated.size) if weights is None else np.asarray(weights, dtype=float)
    out: dict[str, float] = {}
    for name in covariates.columns:
        values = covariates[name].to_numpy(dtype=float)
        mean_t = np.average(values[treated], weights=w[treated]) if w[treated].sum() else math.nan
        mean_c = np.average(values[~treated], weights=w[~treated]) if w[~treated].sum() else math.nan
        pooled = math.sqrt((np.var(values[treated]) + np.var(values[~treated])) / 2)
        difference = float(mean_t - mean_c)
        out[str(name)] = (
            difference / pooled if pooled > 0 else (0.0 if difference == 0 else math.copysign(math.inf, difference))
        )
    return out


def _cox_treatment(time: np.ndarray, event: np.ndarray, treated: np.ndarray, **options: Any) -> dict[str, Any]:
    data = pd.DataFrame({"time": time, "event": event, "treatment": treated.astype(float)})
    for name, values in options.pop("columns", {}).items():
        data[name] = values
    model = cox_model(data, check_ph=options.pop("check_ph", False), **options)
    term = next(term for term in model["terms"] if term["term"] == "treatment")
    return {**term, "method": model["method"], "ph_test_p": term["ph_test_p"]}


def _outcome_estimates(
    time: np.ndarray, event: np.ndarray, treated: np.ndarray, pair: np.ndarray, weights: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Naive, matched (robust errors clustered on pairs) and IPW (robust errors) hazard ratios."""
    keep = ~np.isnan(time)
    naive = _cox_treatment(time[keep], event[keep], treated[keep], check_ph=True)
    matched = (pair >= 0) & keep  # a negative control's outcome may lack a time where the main one has one
    estimates = {"naive": naive}
    if matched.sum() >= 4 and (event[matched] == 1).any():
        estimates["matched"] = _cox_treatment(time[matched], event[matched], treated[matched],
                                              columns={"pair": pair[matched]}, cluster="pair")  # fmt: skip
    estimates["ipw"] = _cox_treatment(time[keep], event[keep], treated[keep],
                                      columns={"w": weights[keep]}, weights="w")  # fmt: skip
    return estimates


def _hr_json(estimate: dict[str, Any]) -> dict[str, Any]:
    keys = ("hr", "lower", "upper", "p_value", "log_hr", "se", "method", "ph_test_p")
    return {key: estimate.get(key) for key in keys}


def _ps_histogram(score: np.ndarray, treated: np.ndarray, threshold: int) -> list[dict[str, Any]]:
    """Persons per PS bin and arm (protected counts), for the PS distribution chart."""
    edges = np.linspace(0, 1, PS_BINS + 1)
    bins = np.clip(np.digitize(score, edges) - 1, 0, PS_BINS - 1)
    return [
        {"from": float(edges[b]), "to": float(edges[b + 1]),
         "treated": protect_count(int(((bins == b) & treated).sum()), threshold),
         "comparator": protect_count(int(((bins == b) & ~treated).sum()), threshold)}
        for b in range(PS_BINS)
    ]  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """An outcome's time (months) and event code (1 the event, 0 censored, 2 competing, treated as censored)."""

    name: str
    time: np.ndarray
    event: np.ndarray


def compare(
    covariates: pd.DataFrame,
    treated: np.ndarray,
    outcome: Outcome,
    *,
    negative_controls: Sequence[Outcome] = (),
    threshold: int,
    step: float,
    table_at: Sequence[float] = (),
    caliper_sd: float = CALIPER_SD,
) -> dict[str, Any]:
    """The whole comparison, as JSON for charts: PS diagnostics, balance, adjusted curves and HRs, calibration."""
    treated = np.asarray(treated, dtype=bool)
    ps = propensity_score(covariates, treated)
    pair = match_pairs(ps.score, treated, caliper_sd=caliper_sd)
    weights = stabilized_weights(ps.score, treated)
    matched = pair >= 0
    before = standardized_differences(covariates, treated)
    after_matching = standardized_differences(covariates[matched], treated[matched]) if matched.any() else {}
    after_weighting = standardized_differences(covariates, treated, weights)
    balance = [
        {"covariate": name, "before": _finite(before[name]), "after_matching": _finite(after_matching.get(name)),
         "after_weighting": _finite(after_weighting[name])}
        for name in covariates.columns
    ]  # fmt: skip
    estimates = _outcome_estimates(outcome.time, outcome.event, treated, pair, weights)
    arms = {}
    for label, mask in (("treated", treated), ("comparator", ~treated)):
        arms[label] = {
            "n": protect_count(int(mask.sum()), threshold),
            "matched": protect_count(int((mask & matched).sum()), threshold),
            "effective_sample_size_ipw": protect_count(effective_sample_size(weights[mask]), threshold),
            "km_matched": kaplan_meier(outcome.time[mask & matched], outcome.event[mask & matched],
                                       threshold=threshold, step=step, table_at=table_at),
            "km_ipw": kaplan_meier(outcome.time[mask], outcome.event[mask], threshold=threshold, step=step,
                                   weights=weights[mask], table_at=table_at),
        }  # fmt: skip
    controls = _negative_controls(negative_controls, treated, pair, weights, estimates)
    return {
        "propensity_score": {
            "model": "L2-regularized logistic regression, penalty by 5-fold cross-validation (scikit-learn "
            "LogisticRegressionCV), standardized covariates",
            "covariates": int(covariates.shape[1]),
            "auc": ps.auc,
            "penalty_c": ps.c_penalty,
            "equipoise": ps.equipoise,
            "histogram": _ps_histogram(ps.score, treated, threshold),
        },
        "matching": {"method": "greedy 1:1 nearest neighbour on logit PS, without replacement",
                     "caliper_sd": caliper_sd, "pairs": protect_count(int(matched.sum() // 2), threshold)},
        "weighting": {"method": "stabilized inverse probability of treatment weights",
                      "max_weight": float(weights.max()) if weights.size else None},
        "balance": balance,
        "imbalanced_after_matching": sorted(r["covariate"] for r in balance
                                            if abs(r["after_matching"] or 0) > BALANCE_LIMIT),
        "imbalanced_after_weighting": sorted(r["covariate"] for r in balance
                                             if abs(r["after_weighting"] or 0) > BALANCE_LIMIT),
        "arms": arms,
        "hazard_ratios": {name: _hr_json(value) for name, value in estimates.items()},
        "negative_controls": controls,
    }  # fmt: skip


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, 4)


def _negative_controls(
    controls: Sequence[Outcome],
    treated: np.ndarray,
    pair: np.ndarray,
    weights: np.ndarray,
    estimates: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    """Each control's HR by each adjustment, the fitted null of each, and the calibrated estimates."""
    rows: list[dict[str, Any]] = []
    for control in controls:
        if not (control.event == 1).any():
            rows.append({"outcome": control.name, "note": "no event"})
            continue
        fitted = _outcome_estimates(control.time, control.event, treated, pair, weights)
        rows.append({"outcome": control.name, **{name: _hr_json(value) for name, value in fitted.items()}})
    result: dict[str, Any] = {"estimates": rows, "null": {}, "calibrated": {}}
    for method, estimate in estimates.items():
        if method == "naive":
            continue
        usable = [row[method] for row in rows if row.get(method) and math.isfinite(row[method]["se"] or math.nan)]
        if len(usable) < MIN_CONTROLS:
            result["note"] = f"not calibrated: {len(usable)} usable negative control(s), at least {MIN_CONTROLS} needed"
            continue
        null = fit_null([row["log_hr"] for row in usable], [row["se"] for row in usable])
        result["null"][method] = null.to_json()
        interval = calibrated_interval(estimate["log_hr"], estimate["se"], null)
        result["calibrated"][method] = {**interval, "p_value": calibrated_p(estimate["log_hr"], estimate["se"], null)}
    return result
