"""Synthetic (external) control arms for a single-arm trial, from real-world persons of the warehouse.

Two designs, following the regulatory literature on external controls:

* **Individual data** (the trial's patients are in the warehouse): real-world persons meeting the same
  eligibility but not treated are weighted to resemble the trial arm. A logistic propensity score of being in
  the trial (:func:`massalia.health.analytics.effectiveness.propensity_score`) gives each control the ATT
  weight ``ps / (1 - ps)`` (the odds), trial patients weight 1: the weighted controls estimate what the trial
  patients would have experienced without the treatment. Balance is the standardized mean difference of each
  covariate before and after weighting; the controls' Kish effective sample size says how much information
  is left; the outcome is compared by weighted Kaplan–Meier and a weighted Cox model with robust errors.
* **Summary data** (only the trial's published baseline table): matching-adjusted indirect comparison
  (MAIC, Signorovitch et al. 2010). Each real-world person gets the weight ``exp(x'a)`` where ``x`` are the
  covariates centred on the trial's means; ``a`` minimizes ``Σ exp(x'a)`` (convex), whose minimum is exactly
  where the weighted means equal the trial's (method of moments). The weighted real-world outcome is then set
  against the trial's reported one (unanchored: it assumes every prognostic factor and effect modifier is in
  the table).

This module reads no data and checks no right (see :mod:`massalia.health.analytics.control_arm_service`).

Examples
--------
>>> x = np.array([[0.0], [1.0], [2.0], [3.0]])
>>> fit = maic_weights(x, np.array([2.0]))
>>> round(float(np.average(x[:, 0], weights=fit.weights)), 6)
2.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from massalia.health.analytics.effectiveness import (
    BALANCE_LIMIT,
    PropensityScore,
    effective_sample_size,
    propensity_score,
    standardized_differences,
)
from massalia.health.analytics.protect import protect_count
from massalia.health.analytics.survival import cox_model, kaplan_meier

MLE_MAX_COLUMNS = 30
"""Up to this many model columns the trial-membership PS is a plain logistic regression (maximum likelihood,
which balances the covariates' means in expectation); beyond, the cross-validated ridge of
:func:`~massalia.health.analytics.effectiveness.propensity_score` keeps it from separating the arms."""

WITHHELD = (
    "withheld: the weights' effective sample size is under the disclosure threshold, so a few persons would "
    "carry the weighted outcome (their event times could be read off it)"
)

MAIC_TOLERANCE = 1e-6
"""Largest allowed gap between a weighted mean and its target (in the covariate's own unit)."""


class MaicError(ValueError):
    """The trial's baseline cannot be matched: a target lies outside what the real-world persons span."""


def att_weights(score: np.ndarray, in_trial: np.ndarray) -> np.ndarray:
    """Average-treatment-effect-on-the-treated weights: 1 for trial patients, the PS odds for controls.

    Examples
    --------
    >>> att_weights(np.array([0.5, 0.2, 0.75]), np.array([True, False, False])).tolist()
    [1.0, 0.25, 3.0]
    """
    score = np.asarray(score, dtype=float)
    return np.where(np.asarray(in_trial, dtype=bool), 1.0, score / (1.0 - score))


def trial_propensity(covariates: pd.DataFrame, in_trial: np.ndarray, method: str = "auto") -> PropensityScore:
    """The probability of being a trial patient given the covariates, and how it was modelled.

    ``logistic``: maximum likelihood (a negligible ridge, ``C = 1e4`` on standardized columns, only keeps the
    fit finite under quasi-separation); ``regularized``: the cross-validated ridge of the comparison
    (:func:`~massalia.health.analytics.effectiveness.propensity_score`); ``auto``: logistic up to
    :data:`MLE_MAX_COLUMNS` model columns, regularized beyond.
    """
    in_trial = np.asarray(in_trial, dtype=bool)
    if method == "regularized" or (method == "auto" and covariates.shape[1] > MLE_MAX_COLUMNS):
        return propensity_score(covariates, in_trial)
    x = StandardScaler().fit_transform(covariates.to_numpy(dtype=float))
    model = LogisticRegression(C=1e4, max_iter=10_000).fit(x, in_trial)
    score = np.clip(model.predict_proba(x)[:, 1], 1e-6, 1 - 1e-6)
    share = float(np.mean(in_trial))
    logit = np.log(score / (1 - score)) - math.log(share / (1 - share))
    preference = 1 / (1 + np.exp(-logit))
    return PropensityScore(score=score, auc=float(roc_auc_score(in_trial, score)), c_penalty=1e4,
                           equipoise=float(np.mean((preference >= 0.3) & (preference <= 0.7))))  # fmt: skip


def _weighted_hr(time: np.ndarray, event: np.ndarray, in_trial: np.ndarray, weights: np.ndarray | None) -> dict:
    """The trial-versus-control hazard ratio (lifelines Cox; robust sandwich errors when weighted)."""
    data = pd.DataFrame({"time": time, "event": event, "trial": in_trial.astype(float)})
    options: dict[str, Any] = {"check_ph": weights is None}
    if weights is not None:
        data["w"] = weights
        options["weights"] = "w"
    model = cox_model(data, **options)
    term = next(term for term in model["terms"] if term["term"] == "trial")
    keys = ("hr", "lower", "upper", "p_value", "log_hr", "se", "ph_test_p")
    return {**{key: term.get(key) for key in keys}, "method": model["method"]}


def _rounded(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), 4)


def external_control(
    covariates: pd.DataFrame,
    in_trial: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    *,
    threshold: int,
    step: float,
    table_at: Sequence[float] = (),
    propensity: str = "auto",
) -> dict[str, Any]:
    """Trial patients against propensity-weighted (ATT) real-world controls, as JSON for charts.

    Parameters
    ----------
    covariates
        Model columns (:func:`~massalia.health.analytics.design.covariate_matrix`) of trial and control persons.
    in_trial
        True for trial patients, False for real-world controls.
    time, event
        The endpoint's months since diagnosis and event code (1 the event).
    propensity
        ``auto``, ``logistic`` or ``regularized`` (:func:`trial_propensity`).
    """
    in_trial = np.asarray(in_trial, dtype=bool)
    ps = trial_propensity(covariates, in_trial, propensity)
    regularized = propensity == "regularized" or (propensity == "auto" and covariates.shape[1] > MLE_MAX_COLUMNS)
    weights = att_weights(ps.score, in_trial)
    before = standardized_differences(covariates, in_trial)
    after = standardized_differences(covariates, in_trial, weights)
    balance = [{"covariate": name, "before": _rounded(before[name]), "after": _rounded(after[name])}
               for name in covariates.columns]  # fmt: skip
    keep = ~np.isnan(time)
    arms: dict[str, dict[str, Any]] = {}
    for label, mask in (("trial", in_trial), ("control", ~in_trial)):
        kept = mask & keep
        arms[label] = {
            "n": protect_count(int(mask.sum()), threshold),
            "effective_sample_size": protect_count(effective_sample_size(weights[mask]), threshold),
            "km": kaplan_meier(time[kept], event[kept], threshold=threshold, step=step,
                               weights=weights[kept], table_at=table_at),
        }  # fmt: skip
    arms["control"]["km_unweighted"] = kaplan_meier(time[~in_trial & keep], event[~in_trial & keep],
                                                    threshold=threshold, step=step, table_at=table_at)  # fmt: skip
    hazard_ratios: dict[str, Any] = {"naive": _weighted_hr(time[keep], event[keep], in_trial[keep], None)}
    control_weights = weights[~in_trial]
    withheld = effective_sample_size(control_weights) < threshold
    if withheld:  # a few heavy controls would carry the weighted curve and HR: an attacker's crafted arm
        arms["control"]["km"] = None
        hazard_ratios["weighted"] = None
    else:
        hazard_ratios["weighted"] = _weighted_hr(time[keep], event[keep], in_trial[keep], weights[keep])
    return {
        "propensity_score": {
            "model": "L2-regularized logistic regression of trial membership, penalty by 5-fold cross-validation "
            "(scikit-learn LogisticRegressionCV), standardized covariates"
            if regularized
            else "logistic regression of trial membership, maximum likelihood (scikit-learn LogisticRegression)",
            "covariates": int(covariates.shape[1]),
            "auc": ps.auc,
            "equipoise": ps.equipoise,
        },
        "weighting": {
            "method": "ATT: trial patients 1, controls ps / (1 - ps)",
            "max_control_weight": float(control_weights.max()) if control_weights.size else None,
            "control_weight_share_of_top_1pct": _top_share(control_weights),
        },
        "balance": balance,
        "imbalanced_after": sorted(row["covariate"] for row in balance if abs(row["after"] or 0) > BALANCE_LIMIT),
        "weighted_outcome": WITHHELD if withheld else "shown",
        "arms": arms,
        "hazard_ratios": hazard_ratios,
    }


def _top_share(weights: np.ndarray) -> float | None:
    """The share of the total weight carried by the heaviest 1 % of persons (a few persons dominating)."""
    if weights.size == 0 or weights.sum() <= 0:
        return None
    top = max(1, math.ceil(weights.size / 100))
    return round(float(np.sort(weights)[-top:].sum() / weights.sum()), 4)


@dataclass(frozen=True)
class MaicFit:
    """MAIC weights (rescaled to sum to n), the coefficients, and the largest gap to the targets."""

    weights: np.ndarray
    coefficients: np.ndarray
    max_gap: float


def maic_weights(x: np.ndarray, targets: np.ndarray) -> MaicFit:
    """Method-of-moments MAIC weights ``exp((x - targets)'a)`` whose weighted means equal ``targets``.

    The objective ``mean(exp(x_c a))`` is convex with gradient ``mean(x_c exp(x_c a))``: its minimum is where
    the weighted mean of the centred covariates is zero. Columns are scaled by their SD for the solver
    (scipy's trust-region Newton with the exact Hessian), then a few Newton steps polish the solution.

    Raises
    ------
    MaicError
        When a target lies outside the range the persons span (no positive weights can reach it) or the
        solver does not reach :data:`MAIC_TOLERANCE`.
    """
    x = np.asarray(x, dtype=float)
    targets = np.asarray(targets, dtype=float)
    if x.ndim != 2 or x.shape[1] != targets.size:
        raise ValueError("maic_weights: one target per covariate column")
    if x.shape[0] == 0:
        raise MaicError("no real-world person to weight")
    for column in range(x.shape[1]):
        low, high = float(x[:, column].min()), float(x[:, column].max())
        if not low < targets[column] < high:
            raise MaicError(f"column {column}: target {targets[column]:g} is outside the persons' range "
                            f"[{low:g}, {high:g}] (open): no weighting can reach it")  # fmt: skip
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    centred = (x - targets) / scale

    def objective(a: np.ndarray) -> float:
        return float(np.mean(np.exp(np.clip(centred @ a, -700, 700))))

    def gradient(a: np.ndarray) -> np.ndarray:
        w = np.exp(np.clip(centred @ a, -700, 700))
        return np.asarray(centred.T @ w / centred.shape[0])

    def hessian(a: np.ndarray) -> np.ndarray:
        w = np.exp(np.clip(centred @ a, -700, 700))
        return np.asarray((centred * w[:, None]).T @ centred / centred.shape[0])

    start = np.zeros(x.shape[1])
    solution = optimize.minimize(objective, start, jac=gradient, hess=hessian, method="trust-exact",
                                 options={"gtol": 1e-12, "maxiter": 500})  # fmt: skip
    a = np.asarray(solution.x, dtype=float)
    for _ in range(20):  # Newton polish: the solver's gtol is on the unnormalized gradient
        w = np.exp(np.clip(centred @ a, -700, 700))
        means = centred.T @ w / w.sum()
        if np.max(np.abs(means * scale)) < MAIC_TOLERANCE / 100:
            break
        try:
            a = a - np.linalg.solve(hessian(a), gradient(a))
        except np.linalg.LinAlgError:
            break
    w = np.exp(np.clip(centred @ a, -700, 700))
    weights = w / w.sum() * x.shape[0]
    gap = float(np.max(np.abs(np.average(x, axis=0, weights=weights) - targets)))
    if not math.isfinite(gap) or gap > MAIC_TOLERANCE:
        raise MaicError(f"the weights do not reach the trial's means (largest gap {gap:.3g}): the targets are at "
                        "the edge of what the real-world persons span, or the covariates are collinear")  # fmt: skip
    return MaicFit(weights=weights, coefficients=a / scale, max_gap=gap)


@dataclass(frozen=True)
class Target:
    """One line of the trial's baseline table as a model column: its name, the trial's value, its kind."""

    column: str
    value: float
    statistic: str


def maic(
    covariates: pd.DataFrame,
    targets: Sequence[Target],
    time: np.ndarray,
    event: np.ndarray,
    *,
    threshold: int,
    step: float,
    table_at: Sequence[float] = (),
    trial_km: Sequence[tuple[float, float]] = (),
    trial_median: float | None = None,
) -> dict[str, Any]:
    """MAIC of real-world persons to a trial's baseline table; the weighted outcome beside the trial's.

    ``covariates`` holds one column per target (same names). ``trial_km`` are (months, survival) points the
    trial reported; the weighted real-world survival is read at the same times.
    """
    x = covariates[[target.column for target in targets]].to_numpy(dtype=float)
    wanted = np.array([target.value for target in targets])
    fit = maic_weights(x, wanted)
    before = x.mean(axis=0)
    after = np.average(x, axis=0, weights=fit.weights)
    balance = [
        {"covariate": target.column, "statistic": target.statistic, "trial": target.value,
         "real_world_before": round(float(before[i]), 6), "real_world_after": round(float(after[i]), 6)}
        for i, target in enumerate(targets)
    ]  # fmt: skip
    keep = ~np.isnan(time)
    ess = effective_sample_size(fit.weights)
    withheld = ess < threshold  # targets at the edge put the weight on a few persons: their outcome would show
    km = None if withheld else kaplan_meier(time[keep], event[keep], threshold=threshold, step=step,
                                            weights=fit.weights[keep], table_at=table_at)  # fmt: skip
    unweighted = kaplan_meier(time[keep], event[keep], threshold=threshold, step=step, table_at=table_at)
    comparison = []
    for t, trial_survival in trial_km:
        point = None if km is None else _point_at(km["curve"], t)
        comparison.append({
            "time": t, "trial": trial_survival,
            "real_world_weighted": None if point is None else point["estimate"],
            "real_world_weighted_lower": None if point is None else point["lower"],
            "real_world_weighted_upper": None if point is None else point["upper"],
            "real_world_unweighted": (_point_at(unweighted["curve"], t) or {}).get("estimate"),
        })  # fmt: skip
    return {
        "method": "MAIC, method of moments (Signorovitch 2010): weights exp(x'a) on covariates centred on the "
        "trial's means, a by scipy.optimize (trust-exact)",
        "n": protect_count(len(x), threshold),
        "effective_sample_size": protect_count(ess, threshold),
        "max_weight": round(float(fit.weights.max()), 4),
        "weighted_outcome": WITHHELD if withheld else "shown",
        "max_gap_to_targets": fit.max_gap,
        "balance": balance,
        "km_weighted": km,
        "km_unweighted": unweighted,
        "trial_median": trial_median,
        "median_weighted": None if km is None else km["median"],
        "survival_comparison": comparison,
    }


def _point_at(curve: Sequence[dict[str, Any]], t: float) -> dict[str, Any] | None:
    """The released (coarsened) curve's point in force at ``t``; ``None`` past its last released point."""
    if not curve or t > curve[-1]["time"]:
        return None  # the curve is not released that far (too few at risk): nothing to compare
    return [point for point in curve if point["time"] <= t][-1]
