"""Survival analysis of a cohort: Kaplan–Meier, log-rank (stratified too), Cox models, cumulative incidence.

The estimators are lifelines' and statsmodels': this module shapes the mart's rows for them and their results
into JSON for charts, with every count and curve passed through
:mod:`massalia.health.analytics.protect`. It reads no data and checks no right: the guarded service
(:mod:`massalia.health.analytics.service`) gives it the rows of an approved project's scope. Two inner sums of
lifelines' Cox fit that it computes with a Python loop per person (the Efron sums of each Newton step and the
robust score residuals) are given to it in linear time by :class:`LinearTimeCoxPHFitter`; the fit itself, its
convergence, variance and summaries stay lifelines', and tests hold the sums equal to lifelines' own.

Examples
--------
>>> from lifelines.datasets import load_rossi
>>> rossi = load_rossi()
>>> result = kaplan_meier(rossi["week"].to_numpy(float), rossi["arrest"].to_numpy(), threshold=10, step=4.0)
>>> result["n"], result["events"]
({'count': 432, 'shown': '432'}, {'count': 114, 'shown': '114'})
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter, CoxPHFitter, KaplanMeierFitter
from lifelines.exceptions import ConvergenceError
from lifelines.fitters.coxph_fitter import SemiParametricPHFitter
from lifelines.statistics import multivariate_logrank_test, proportional_hazard_test
from lifelines.utils import concordance_index
from statsmodels.duration.survfunc import survdiff

from massalia.governance import InvalidRequest
from massalia.health.analytics.protect import at_risk_table, coarsen_curve, coarsened_median, protect_count

ALPHA = 0.05

CONCORDANCE_MAX_PERSONS = 20_000
"""Above this many persons the model's concordance (Harrell's C) is computed on a seeded random sample of this
size: lifelines' exact count takes seconds at 100,000 persons, and the C of 20,000 has a standard error near 0.003.
"""

PH_TEST_MAX_PERSONS = 20_000
"""Above this many persons the proportional-hazards test runs on a seeded random sample of this size.

lifelines' Schoenfeld residuals grow with the square of the events (an array appended per event time): at
100,000 persons the test alone took 5.5 s of a 10 s survival run; on 20,000 it keeps its power for the
departures that matter (a PH violation is a property of the whole cohort, seen as well in a large sample).
"""
"""Confidence bands and intervals are 95 %."""


def _step_value(index: np.ndarray, values: np.ndarray, t: float) -> float:
    """A right-continuous step function (values at ``index``) evaluated at ``t``."""
    position = int(np.searchsorted(index, t, side="right")) - 1
    return float(values[max(position, 0)])


def kaplan_meier(
    time: np.ndarray,
    event: np.ndarray,
    *,
    threshold: int,
    step: float,
    weights: np.ndarray | None = None,
    table_at: Sequence[float] = (),
) -> dict[str, Any]:
    """Kaplan–Meier estimate with its 95 % band (lifelines), coarsened for release.

    ``event`` is 1 for the event (any other value is censored); ``weights`` give an adjusted (IPW) curve.
    Returns the released curve, the coarsened median, persons and events (protected) and an at-risk table.
    """
    observed = np.asarray(event) == 1
    if len(time) == 0:  # an empty cohort (a filter, a scope): the curve's start only
        return {"n": protect_count(0, threshold), "events": protect_count(0, threshold), "median": None,
                "curve": [point.to_json() for point in coarsen_curve(time, observed, lambda t: (1.0, 1.0, 1.0),
                                                                      threshold, step)],
                "at_risk": at_risk_table(time, table_at, threshold)}  # fmt: skip
    fitter = KaplanMeierFitter(alpha=ALPHA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lifelines warns that weighted CIs are approximate: said in the docs
        fitter.fit(time, observed, weights=weights)
    index = fitter.survival_function_.index.to_numpy(dtype=float)
    survival = fitter.survival_function_.iloc[:, 0].to_numpy()
    lower = fitter.confidence_interval_.iloc[:, 0].to_numpy()
    upper = fitter.confidence_interval_.iloc[:, 1].to_numpy()

    def at(t: float) -> tuple[float, float | None, float | None]:
        return _step_value(index, survival, t), _step_value(index, lower, t), _step_value(index, upper, t)

    points = coarsen_curve(time, observed, at, threshold, step)
    return {
        "n": protect_count(len(time), threshold),
        "events": protect_count(int(observed.sum()), threshold),
        "median": coarsened_median(points),
        "curve": [point.to_json() for point in points],
        "at_risk": at_risk_table(time, table_at, threshold),
    }


def logrank(
    time: np.ndarray, event: np.ndarray, group: np.ndarray, *, strata: np.ndarray | None = None
) -> dict[str, Any]:
    """Log-rank test of equal survival across ``group`` (lifelines), or stratified by ``strata`` (statsmodels).

    Examples
    --------
    >>> from lifelines.datasets import load_rossi
    >>> r = load_rossi()
    >>> round(logrank(r["week"].to_numpy(float), r["arrest"].to_numpy(), r["fin"].to_numpy())["p_value"], 4)
    0.0501
    """
    observed = (np.asarray(event) == 1).astype(int)
    groups = pd.Series(group).astype(str).to_numpy()
    if strata is None:
        result = multivariate_logrank_test(time, groups, observed)
        chi2, p = float(result.test_statistic), float(result.p_value)
        method = "log-rank (lifelines.statistics.multivariate_logrank_test)"
    else:
        chi2, p = survdiff(np.asarray(time, dtype=float), observed, groups, strata=pd.Series(strata).astype(str))
        method = "stratified log-rank (statsmodels.duration.survfunc.survdiff)"
    return {"method": method, "chi2": float(chi2), "df": len(set(groups)) - 1, "p_value": float(p)}


def _efron_sums(
    covariates: pd.DataFrame, times: pd.Series, events: pd.Series, weights: pd.Series, _entries: None, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Hessian, gradient and log partial likelihood of a Cox model with Efron's ties, in a few array operations.

    The same sums as lifelines' ``_get_efron_values_single`` (rows sorted on time, weights, Efron's ``l/d`` share
    of the tied deaths' hazard), without its Python loop over every person: risk-set sums are reverse cumulative
    sums over the distinct times, each tied death contributes its own ``l/d`` term, and the second-moment part of
    the Hessian folds into one weighted ``X^T X`` (a person's weight is the sum of the death terms whose risk set
    holds it), so no person-by-covariate² array is made.
    """
    x = covariates.to_numpy(dtype=float)
    t = times.to_numpy(dtype=float)
    dead = events.to_numpy().astype(bool)
    w = weights.to_numpy(dtype=float)
    score = w * np.exp(x @ beta)
    new_time = np.r_[True, t[1:] != t[:-1]]
    starts = np.flatnonzero(new_time)
    group = np.cumsum(new_time) - 1
    moments = np.concatenate([score[:, None], score[:, None] * x], axis=1)
    risk = np.add.reduceat(moments, starts, axis=0)[::-1].cumsum(0)[::-1]  # everyone with T >= t
    tied = np.add.reduceat(np.where(dead[:, None], moments, 0.0), starts, axis=0)
    deaths = np.bincount(group, weights=dead, minlength=len(starts)).astype(int)
    death_weight = np.bincount(group, weights=np.where(dead, w, 0.0), minlength=len(starts))
    mean_weight = np.divide(death_weight, deaths, out=np.zeros(len(starts)), where=deaths > 0)
    x_death = np.where(dead, w, 0.0) @ x
    # one term per death: its time's index k and its share l/d of the tied deaths' hazard
    k = np.repeat(np.arange(len(starts)), deaths)
    share = (np.arange(len(k)) - (np.cumsum(deaths) - deaths)[k]) / deaths[k]
    inverse = 1.0 / (risk[k, 0] - share * tied[k, 0])
    mean_x = (risk[k, 1:] - share[:, None] * tied[k, 1:]) * inverse[:, None]
    term_weight = mean_weight[k]
    gradient = x_death - term_weight @ mean_x
    log_likelihood = float(x_death @ beta + term_weight @ np.log(inverse))
    risk_part = np.bincount(k, weights=term_weight * inverse, minlength=len(starts))
    tied_part = np.bincount(k, weights=term_weight * share * inverse, minlength=len(starts))
    person = score * (np.cumsum(risk_part)[group] - np.where(dead, tied_part[group], 0.0))
    second = (x * person[:, None]).T @ x
    hessian = (mean_x * term_weight[:, None]).T @ mean_x - second
    return hessian, gradient, log_likelihood


class _LinearTimePHModel(SemiParametricPHFitter):
    """lifelines' semi-parametric Cox fit, with its Efron sums and score residuals computed in linear time."""

    def _choose_gradient_calculator(self, T: pd.Series, X: pd.DataFrame, entries: pd.Series | None) -> Any:  # noqa: N803 (lifelines names)
        if entries is not None:  # delayed entry: lifelines' own time-varying sums
            return super()._choose_gradient_calculator(T, X, entries)
        return _efron_sums

    def _compute_score_within_strata(
        self, covariates: pd.DataFrame, _time: pd.Series, events: pd.Series, weights: pd.Series, entries: None
    ) -> np.ndarray:
        x = covariates.to_numpy(dtype=float)
        observed = events.to_numpy().astype(int)
        w = weights.to_numpy(dtype=float)
        # lifelines keeps unnormalized coefficients and normalized X (rows sorted by time within the stratum).
        beta = self.params_.to_numpy() * np.asarray(self._norm_std, dtype=float)
        phi = np.exp(x @ beta)
        risk_x = (x * (w * phi)[:, None])[::-1].cumsum(0)[::-1]
        risk = (w * phi)[::-1].cumsum()[::-1]
        mean = risk_x / risk[:, None]
        share = observed * w / risk
        # sum_{k<=i} share_k (x_i - mean_k) = x_i * cumsum(share)_i - cumsum(share * mean)_i
        summed = x * np.cumsum(share)[:, None] - np.cumsum(share[:, None] * mean, axis=0)
        score = -phi[:, None] * summed + observed[:, None] * (x - mean)
        return score * w[:, None]


class LinearTimeCoxPHFitter(CoxPHFitter):
    """lifelines' Cox model, with its Efron sums and its score residuals (robust variance) computed in linear time.

    lifelines runs a Python loop over every person at each Newton step (about 0.3 s per step at 100,000
    persons); :func:`_efron_sums` gives the same sums from array operations.

    lifelines computes each person's score residual (Lin and Wei 1989) as a sum over every earlier person,
    ``O(n²)``: 20 s and more of an IPW analysis at 100,000 persons. The sum splits into two forward cumulative
    sums, so the same residuals (the same formula, the same risk sets, ties as lifelines treats them) come in
    ``O(n)``; tests check them against lifelines' own to rounding (a lifelines release changing its internals
    fails them).
    """

    def _fit_model_breslow(self, *args: Any, **kwargs: Any) -> SemiParametricPHFitter:
        model = _LinearTimePHModel(
            penalizer=self.penalizer, l1_ratio=self.l1_ratio, strata=self.strata, alpha=self.alpha, label=self._label
        )
        model.fit(*args, **kwargs)
        return model


def cox_model(
    data: pd.DataFrame,
    *,
    duration: str = "time",
    event: str = "event",
    strata: Sequence[str] = (),
    weights: str | None = None,
    cluster: str | None = None,
    check_ph: bool = True,
) -> dict[str, Any]:
    """Cox proportional hazards (lifelines ``CoxPHFitter``): hazard ratios, 95 % CIs, p-values, PH check.

    Every column of ``data`` other than ``duration``, ``event``, ``strata``, ``weights`` and ``cluster`` is a
    covariate. The proportional-hazards check is lifelines' Schoenfeld-residual test (rank time transform),
    skipped for weighted fits. Robust (sandwich) errors are used with weights or clusters.
    """
    frame = data.copy()
    frame[event] = (frame[event] == 1).astype(int)
    robust = weights is not None or cluster is not None
    fitter = LinearTimeCoxPHFitter(alpha=ALPHA)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes on sparse dummies are reported through the CIs
        try:
            fitter.fit(frame, duration_col=duration, event_col=event, strata=list(strata) or None,
                       weights_col=weights, cluster_col=cluster, robust=robust)  # fmt: skip
        except ConvergenceError as error:
            # Collinear or nearly constant covariates (e.g. receptor statuses that fix a subtype): a request to
            # change, not a server fault.
            covariates = [c for c in frame.columns if c not in {duration, event, weights, cluster, *strata}]
            raise InvalidRequest(
                f"the Cox model did not converge with the covariates {', '.join(covariates)}: some are collinear "
                "or nearly constant in this cohort; drop or merge them"
            ) from error
    summary = fitter.summary
    ph: dict[str, float] = {}
    sampled = check_ph and weights is None and len(frame) > PH_TEST_MAX_PERSONS
    if check_ph and weights is None:
        columns = [column for column in frame.columns if column != cluster]
        tested, tested_fitter = frame[columns], fitter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if sampled:
                tested = tested.sample(n=PH_TEST_MAX_PERSONS, random_state=0)
                tested_fitter = LinearTimeCoxPHFitter(alpha=ALPHA).fit(tested, duration_col=duration, event_col=event,
                                                              strata=list(strata) or None)  # fmt: skip
            test = proportional_hazard_test(tested_fitter, tested, time_transform="rank")
        ph = {str(name): float(value) for name, value in test.summary["p"].items()}
    terms = [
        {
            "term": str(name),
            "hr": float(row["exp(coef)"]),
            "lower": float(row["exp(coef) lower 95%"]),
            "upper": float(row["exp(coef) upper 95%"]),
            "log_hr": float(row["coef"]),
            "se": float(row["se(coef)"]),
            "p_value": float(row["p"]),
            "ph_test_p": ph.get(str(name)),
        }
        for name, row in summary.iterrows()
    ]
    return {
        "method": "Cox proportional hazards (lifelines.CoxPHFitter)" + (", robust errors" if robust else ""),
        "terms": terms,
        "concordance": _concordance(fitter, frame, duration, event, weights),
        "concordance_sampled": len(frame) > CONCORDANCE_MAX_PERSONS,
        "ph_check": "Schoenfeld residuals, rank time transform (lifelines.statistics.proportional_hazard_test)"
        + (f", on a random sample of {PH_TEST_MAX_PERSONS:,} persons (seed 0)" if sampled else "")
        if ph
        else None,
        "ph_violations": sorted(name for name, p in ph.items() if p < ALPHA),
    }


def _concordance(fitter: CoxPHFitter, frame: pd.DataFrame, duration: str, event: str, weights: str | None) -> float:
    """Harrell's C of the fitted model, on a seeded sample of :data:`CONCORDANCE_MAX_PERSONS` above that size."""
    if len(frame) <= CONCORDANCE_MAX_PERSONS:
        return float(fitter.concordance_index_)
    sample = frame.sample(n=CONCORDANCE_MAX_PERSONS, random_state=0)
    # The same statistic lifelines reports as concordance_index_: higher partial hazard, shorter survival.
    hazard = fitter.predict_partial_hazard(sample).to_numpy()
    return float(concordance_index(sample[duration], -hazard, sample[event]))


def cumulative_incidence(
    time: np.ndarray, event: np.ndarray, *, threshold: int, step: float, cause: int = 1
) -> dict[str, Any]:
    """Aalen–Johansen cumulative incidence of ``cause`` with competing events (lifelines), coarsened.

    ``event``: 0 censored, ``cause`` the event of interest, any other positive code a competing event.
    Tied times are broken by lifelines' seeded jitter, so the same rows give the same curve.
    """
    event = np.asarray(event).astype(int)
    fitter = AalenJohansenFitter(alpha=ALPHA, seed=0, calculate_variance=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tie-jitter notice
        fitter.fit(time, event, event_of_interest=cause)
    index = fitter.cumulative_density_.index.to_numpy(dtype=float)
    cif = fitter.cumulative_density_.iloc[:, 0].to_numpy()
    band = fitter.confidence_interval_cumulative_density_
    lower, upper = band.iloc[:, 0].to_numpy(), band.iloc[:, 1].to_numpy()

    def at(t: float) -> tuple[float, float | None, float | None]:
        return _step_value(index, cif, t), _step_value(index, lower, t), _step_value(index, upper, t)

    points = coarsen_curve(time, event == cause, at, threshold, step, start=0.0)
    return {
        "method": "Aalen–Johansen (lifelines.AalenJohansenFitter)",
        "events": protect_count(int((event == cause).sum()), threshold),
        "competing_events": protect_count(int(((event > 0) & (event != cause)).sum()), threshold),
        "curve": [point.to_json() for point in points],
    }
