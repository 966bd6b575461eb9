"""Patient-level risk prediction, developed as OHDSI's PatientLevelPrediction does.

A prediction problem is a **target cohort** (mart filters), an **outcome** and a **time at risk** (TAR, days
after diagnosis). Persons with the outcome inside the TAR are cases; persons followed through the whole TAR
without it are non-cases; persons whose follow-up ends (death, loss to follow-up, data cut-off) before the
TAR ends without the outcome are left out (PLP's ``requireTimeAtRisk`` with ``includeAllOutcomes``).

Development: baseline mart variables as features (:func:`~massalia.health.analytics.design.covariate_matrix`
with missing-value indicators), a **temporal split** (the persons diagnosed last form the test set, as a
prospective validation would), an L1-regularized logistic regression (PLP's default LASSO, penalty chosen by
cross-validated AUC) and scikit-learn's histogram gradient boosting. On the test set: AUC with a bootstrap
95 % CI (scipy), Brier score, calibration by risk deciles merged until each bin holds at least ``threshold``
cases and non-cases (no small cell), permutation importance (and the logistic coefficients).

Examples
--------
>>> days = pd.DataFrame({"had_relapse": [True, False, False], "days_to_relapse": [100.0, None, None],
...                      "os_days": [900.0, 1000.0, 200.0]})
>>> OUTCOMES["relapse"].label(days, 730).tolist()
[1.0, 0.0, nan]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from massalia.health.analytics.protect import protect_count

ALGORITHMS = ("lasso_logistic", "gradient_boosting")
"""The learners: L1-regularized logistic regression (PLP's default) and histogram gradient boosting."""

EXCLUDED_FEATURES = frozenset({"n_primary_cancers", "year_of_diagnosis"})
"""Baseline variables never used as features: ``n_primary_cancers`` counts second cancers diagnosed later (an
outcome leaking into the features), ``year_of_diagnosis`` is the split variable itself."""

PENALTY_GRID = tuple(np.logspace(-3, 0, 8).tolist())
"""Inverse L1 penalties tried (on standardized features): up to C = 1, past which the fit is all but unpenalized
and liblinear converges slowly for nothing."""

LEARNER_THREADS = 1
"""Native threads per fit: analyses run concurrently in the server, and OpenMP's spin-waiting under load made
a 3,000-person gradient-boosting fit twenty times slower with two threads than with one."""

IMPORTANCE_ROWS = 1500
"""Test persons drawn per permutation repeat for the importances."""

TOP_FEATURES = 30
"""Feature importances released per model (the largest)."""


def _days(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name], errors="coerce").astype(float).to_numpy()


def _flag(frame: pd.DataFrame, name: str) -> np.ndarray:
    return frame[name].fillna(False).astype(bool).to_numpy()


def _binary(event_day: np.ndarray, followed_days: np.ndarray, tar_days: int) -> np.ndarray:
    """1 if the outcome falls in ``[0, tar]``, 0 if followed through the TAR without it, NaN otherwise."""
    case = ~np.isnan(event_day) & (event_day <= tar_days)
    followed = ~np.isnan(followed_days) & (followed_days >= tar_days)
    return np.where(case, 1.0, np.where(followed, 0.0, np.nan))


def _relapse(frame: pd.DataFrame, tar_days: int, _: np.ndarray | None) -> np.ndarray:
    day = np.where(_flag(frame, "had_relapse"), _days(frame, "days_to_relapse"), np.nan)
    return _binary(day, _days(frame, "os_days"), tar_days)


def _second_cancer(frame: pd.DataFrame, tar_days: int, _: np.ndarray | None) -> np.ndarray:
    day = np.where(_flag(frame, "had_second_cancer"), _days(frame, "days_to_second_cancer"), np.nan)
    return _binary(day, _days(frame, "os_days"), tar_days)


def _progression(frame: pd.DataFrame, tar_days: int, _: np.ndarray | None) -> np.ndarray:
    day = np.where(_flag(frame, "pfs_event"), _days(frame, "pfs_days"), np.nan)
    return _binary(day, _days(frame, "pfs_days"), tar_days)


def _hospitalization(frame: pd.DataFrame, tar_days: int, first_visit_day: np.ndarray | None) -> np.ndarray:
    if first_visit_day is None:
        raise ValueError("the hospitalization outcome needs the first unplanned visit's day of each person")
    return _binary(first_visit_day, _days(frame, "os_days"), tar_days)


@dataclass(frozen=True)
class PredictionOutcome:
    """An outcome to predict: the mart variables it reads, its default TAR and how rows become labels.

    ``visits`` outcomes also read the OMOP ``visit_occurrence`` table (the first emergency visit after
    diagnosis, restricted to the project's scope by the service).
    """

    name: str
    label_text: str
    variables: tuple[str, ...]
    default_tar_days: int
    labeller: Callable[[pd.DataFrame, int, np.ndarray | None], np.ndarray]
    visits: bool = False

    def label(self, frame: pd.DataFrame, tar_days: int, first_visit_day: np.ndarray | None = None) -> np.ndarray:
        """1 (outcome in the TAR), 0 (followed through it without), NaN (left out: follow-up too short)."""
        return self.labeller(frame, tar_days, first_visit_day)


OUTCOMES: dict[str, PredictionOutcome] = {
    outcome.name: outcome
    for outcome in (
        PredictionOutcome("relapse", "relapse or progression within the TAR",
                          ("had_relapse", "days_to_relapse", "os_days"), 730, _relapse),
        PredictionOutcome("second_cancer", "second primary cancer within the TAR",
                          ("had_second_cancer", "days_to_second_cancer", "os_days"), 1826, _second_cancer),
        PredictionOutcome("progression", "progression or death within the TAR (the PFS event)",
                          ("pfs_days", "pfs_event"), 365, _progression),
        PredictionOutcome("hospitalization", "unplanned hospitalization (emergency admission) within the TAR",
                          ("os_days",), 183, _hospitalization, visits=True),
    )
}  # fmt: skip
"""The outcomes a prediction may target (defaults: relapse 2 years, second cancer 5, progression 1,
unplanned hospitalization 6 months)."""


def temporal_split(diagnosis_dates: pd.Series, test_fraction: float) -> tuple[np.ndarray, str]:
    """A boolean test mask: the ``test_fraction`` of persons diagnosed last; and the cut-off date (ISO).

    Examples
    --------
    >>> mask, cut = temporal_split(pd.Series(pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01",
    ...                                                      "2023-01-01"])), 0.25)
    >>> mask.tolist(), cut
    ([False, False, False, True], '2023-01-01')
    """
    dates = pd.to_datetime(diagnosis_dates).to_numpy()
    order = np.argsort(dates, kind="stable")
    n_test = max(1, round(len(dates) * test_fraction))
    cut = dates[order[len(dates) - n_test]]
    test = dates >= cut
    return test, str(pd.Timestamp(cut).date())


def make_model(algorithm: str, seed: int) -> Pipeline | HistGradientBoostingClassifier:
    """An unfitted learner: ``lasso_logistic`` (scaled, L1, penalty by 3-fold AUC) or ``gradient_boosting``."""
    if algorithm == "lasso_logistic":
        return make_pipeline(
            StandardScaler(),
            LogisticRegressionCV(Cs=PENALTY_GRID, cv=3, l1_ratios=(1.0,), solver="liblinear", scoring="roc_auc",
                                 max_iter=5000, random_state=seed, use_legacy_attributes=False),
        )  # fmt: skip
    if algorithm == "gradient_boosting":
        return HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=300, max_leaf_nodes=15, min_samples_leaf=40, l2_regularization=1.0,
            early_stopping=True, validation_fraction=0.2, n_iter_no_change=20, random_state=seed,
        )  # fmt: skip
    raise ValueError(f"unknown algorithm {algorithm!r}: one of {', '.join(ALGORITHMS)}")


def _rank_auc(labels: np.ndarray, scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUC along ``axis`` by the Mann–Whitney identity ``(rank sum of cases − n1(n1+1)/2) / (n1·n0)``.

    Vectorized over resamples (scipy's ``bootstrap`` hands a batch at once): ``roc_auc_score`` per resample
    spent 11 s of a 13,000-person fit on input checks. Ties count one half, as in ``roc_auc_score``.

    Examples
    --------
    >>> float(_rank_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])))
    0.75
    """
    ranks = stats.rankdata(scores, axis=axis)
    cases = labels.sum(axis=axis)
    controls = labels.shape[axis] - cases
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample with one class has no AUC (NaN)
        return ((ranks * labels).sum(axis=axis) - cases * (cases + 1) / 2) / (cases * controls)


def auc_with_ci(y: np.ndarray, risk: np.ndarray, *, resamples: int, seed: int) -> dict[str, float]:
    """The AUC and its percentile bootstrap 95 % CI (persons resampled, scipy's ``bootstrap``)."""
    boot = stats.bootstrap((y.astype(float), risk), _rank_auc, paired=True, vectorized=True, batch=50,
                           n_resamples=resamples, method="percentile",
                           random_state=np.random.default_rng(seed))  # fmt: skip
    return {"auc": float(roc_auc_score(y, risk)), "lower": float(boot.confidence_interval.low),
            "upper": float(boot.confidence_interval.high)}  # fmt: skip


def calibration_bins(y: np.ndarray, risk: np.ndarray, threshold: int, *, bins: int = 10) -> list[dict[str, Any]]:
    """Predicted versus observed risk by risk decile, small cells merged away.

    Adjacent deciles are merged until each bin has at least ``threshold`` cases and ``threshold`` non-cases,
    so no bin shows a small count; a bin's bounds are not released (each is one person's predicted risk).

    Examples
    --------
    >>> rng = np.random.default_rng(0); risk = rng.random(400); y = (rng.random(400) < risk).astype(float)
    >>> [row["n"]["shown"] for row in calibration_bins(y, risk, 10)][:3]  # the 3 lowest deciles hold < 10 cases
    ['120', '40', '40']
    """
    order = np.argsort(risk, kind="stable")
    groups = [chunk for chunk in np.array_split(order, bins) if chunk.size]
    merged: list[np.ndarray] = []
    current = np.array([], dtype=int)
    for chunk in groups:
        current = np.concatenate([current, chunk])
        cases = int(y[current].sum())
        if cases >= threshold and current.size - cases >= threshold:
            merged.append(current)
            current = np.array([], dtype=int)
    if current.size:  # the remainder is too small alone: joined to the previous bin
        if merged:
            merged[-1] = np.concatenate([merged[-1], current])
        else:
            merged.append(current)
    rows = []
    for members in merged:
        cases = int(y[members].sum())
        shown = cases >= threshold and members.size - cases >= threshold
        rows.append({
            "predicted": round(float(risk[members].mean()), 4),
            "observed": round(cases / members.size, 4) if shown else None,
            "n": protect_count(members.size, threshold),
            "outcomes": protect_count(cases, threshold) if shown else {"count": None, "shown": "suppressed"},
        })  # fmt: skip
    return rows


def _importance(model: Any, algorithm: str, x: pd.DataFrame, y: np.ndarray, seed: int) -> list[dict[str, Any]]:
    """Permutation importance on the test set (AUC drop), with the logistic coefficients (per SD) when linear."""
    # Up to IMPORTANCE_ROWS persons per repeat: the ranking of importances settles long before the whole test set.
    share = min(1.0, IMPORTANCE_ROWS / max(len(x), 1))
    permuted = permutation_importance(model, x, y, scoring="roc_auc", n_repeats=2, random_state=seed,
                                      max_samples=share)  # fmt: skip
    coefficients: dict[str, float] = {}
    if algorithm == "lasso_logistic":
        coefficients = dict(zip(x.columns, model[-1].coef_[0].tolist(), strict=True))
    rows = [
        {"feature": name, "auc_drop": round(float(mean), 5), "auc_drop_sd": round(float(sd), 5),
         **({"coefficient_per_sd": round(coefficients[name], 5)} if coefficients else {})}
        for name, mean, sd in zip(x.columns, permuted.importances_mean, permuted.importances_std, strict=True)
    ]  # fmt: skip
    rows.sort(key=lambda row: (-abs(row["auc_drop"]), -abs(row.get("coefficient_per_sd", 0.0)), row["feature"]))
    return rows[:TOP_FEATURES]


@dataclass
class FittedModel:
    """A fitted learner with what scoring new persons needs (feature columns, training medians)."""

    algorithm: str
    estimator: ClassifierMixin
    features: list[str]
    medians: dict[str, float]

    def risks(self, x: pd.DataFrame) -> np.ndarray:
        """Predicted risks of ``x`` (columns reindexed to the training features: an absent level is 0)."""
        aligned = x.reindex(columns=self.features, fill_value=0.0).copy()
        for name, median in self.medians.items():  # impute with the training median, not the scored rows'
            flag = f"{name}:missing"
            if flag in aligned.columns and name in aligned.columns:
                aligned.loc[aligned[flag] == 1.0, name] = median
        with threadpool_limits(limits=LEARNER_THREADS):
            return np.asarray(self.estimator.predict_proba(aligned)[:, 1], dtype=float)


def develop(
    x: pd.DataFrame,
    y: np.ndarray,
    test: np.ndarray,
    algorithm: str,
    *,
    threshold: int,
    seed: int = 0,
    resamples: int = 1000,
) -> tuple[FittedModel, dict[str, Any]]:
    """Fit ``algorithm`` on the training rows, evaluate on the test rows; the model and its metrics.

    ``x`` holds model columns (no missing value), ``y`` 0/1 labels, ``test`` the temporal test mask.
    """
    medians = {
        name[: -len(":missing")]: float(np.median(x.loc[(~test) & (x[name] == 0.0), name[: -len(":missing")]]))
        for name in x.columns
        if name.endswith(":missing") and ((~test) & (x[name] == 0.0)).any()
    }
    with threadpool_limits(limits=LEARNER_THREADS):
        estimator = clone(make_model(algorithm, seed)).fit(x[~test], y[~test])
        fitted = FittedModel(algorithm, estimator, list(x.columns), medians)
        risk_train, risk_test = fitted.risks(x[~test]), fitted.risks(x[test])
        importance = _importance(estimator, algorithm, x[test], y[test], seed)
    y_test = y[test]
    metrics = {
        "test": {
            "auc": auc_with_ci(y_test, risk_test, resamples=resamples, seed=seed),
            "brier": round(float(brier_score_loss(y_test, risk_test)), 5),
            "mean_predicted": round(float(risk_test.mean()), 4),
            "observed_rate": round(float(y_test.mean()), 4),
            "calibration": calibration_bins(y_test, risk_test, threshold),
        },
        "train": {"auc": round(float(roc_auc_score(y[~test], risk_train)), 4)},
        "feature_importance": importance,
    }
    if algorithm == "lasso_logistic":
        metrics["penalty_c"] = float(np.ravel(estimator[-1].C_)[0])
        metrics["nonzero_coefficients"] = int(np.count_nonzero(estimator[-1].coef_))
    return fitted, metrics


def risk_histogram(risk: Sequence[float] | np.ndarray, threshold: int, *, width: float = 0.1) -> list[dict[str, Any]]:
    """Persons by predicted-risk band (``[0, 0.1)``, …), counts protected: what leaves an aggregate project.

    Examples
    --------
    >>> [row["n"]["shown"] for row in risk_histogram([0.05] * 12 + [0.95] * 3, 10)][::9]
    ['12', '<10']
    """
    values = np.asarray(risk, dtype=float)
    edges = np.round(np.arange(0.0, 1.0 + width / 2, width), 6)
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    return [
        {"risk_from": float(edges[i]), "risk_to": float(edges[i + 1]),
         "n": protect_count(int((index == i).sum()), threshold)}
        for i in range(len(edges) - 1)
    ]  # fmt: skip
