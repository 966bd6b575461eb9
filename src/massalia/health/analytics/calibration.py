"""Empirical calibration of an effect estimate from negative-control outcomes (OHDSI's EmpiricalCalibration).

Negative controls are outcomes the treatment is believed not to cause: their true hazard ratio is 1, so
their estimates show the study's systematic error (residual confounding, measurement, selection). As in
OHDSI's ``fitNull``, each negative control's log estimate is modelled as drawn from ``N(mu, sigma² + se_i²)``:
the systematic error is normal with mean ``mu`` and spread ``sigma``, on top of each estimate's own random
error. ``mu`` and ``sigma`` are fitted by maximum likelihood (scipy), then the study's estimate is calibrated:

* calibrated p-value: ``2 · Φ(−|log HR − mu| / sqrt(sigma² + se²))`` (``calibrateP``);
* calibrated interval: the true log HR ``θ`` with ``log HR ~ N(θ + mu, sigma² + se²)``, i.e.
  ``log HR − mu ± z · sqrt(sigma² + se²)`` (``calibrateConfidenceInterval`` with a systematic-error model
  fitted on negative controls only, which assumes the error does not depend on the true effect size).

No maintained Python package does this: the math is small and written here with scipy, tested on simulated
controls with a known null and against the closed forms above.

Examples
--------
>>> null = fit_null([0.0, 0.1, -0.1, 0.05, -0.05], [0.1] * 5)
>>> round(null.mean, 3), round(null.sd, 3)
(0.0, 0.0)
>>> round(calibrated_p(0.5, 0.1, null), 6)
1e-06
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

MIN_CONTROLS = 3
"""Fewer negative controls than this give no usable systematic-error distribution."""


@dataclass(frozen=True)
class NullDistribution:
    """The fitted systematic-error distribution on the log scale: mean and standard deviation."""

    mean: float
    sd: float
    n_controls: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"mean": self.mean, "sd": self.sd, "n_controls": self.n_controls}


def fit_null(log_estimates: Sequence[float], standard_errors: Sequence[float]) -> NullDistribution:
    """Maximum-likelihood ``mu`` and ``sigma`` of the systematic error from negative-control estimates.

    Controls with a missing or infinite estimate or error are left out (as ``fitNull`` does).
    """
    log_rr = np.asarray(log_estimates, dtype=float)
    se = np.asarray(standard_errors, dtype=float)
    usable = np.isfinite(log_rr) & np.isfinite(se) & (se > 0)
    log_rr, se = log_rr[usable], se[usable]
    if log_rr.size < MIN_CONTROLS:
        raise ValueError(f"empirical calibration needs at least {MIN_CONTROLS} usable negative controls, "
                         f"got {log_rr.size}")  # fmt: skip

    def negative_log_likelihood(theta: np.ndarray) -> float:
        mean, log_sd = float(theta[0]), float(theta[1])
        scale = np.sqrt(np.exp(2 * log_sd) + se**2)
        return float(-stats.norm.logpdf(log_rr, loc=mean, scale=scale).sum())

    start = np.array([float(np.mean(log_rr)), math.log(max(float(np.std(log_rr)), 0.01))])
    fit = optimize.minimize(negative_log_likelihood, start, method="Nelder-Mead",
                            options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000})  # fmt: skip
    mean, sd = float(fit.x[0]), float(math.exp(fit.x[1]))
    if sd < 1e-4:  # the likelihood is flat as sigma -> 0: report no spread rather than a tiny number
        sd = 0.0
        mean = float(np.average(log_rr, weights=1 / se**2))
    return NullDistribution(mean, sd, int(log_rr.size))


def calibrated_p(log_estimate: float, standard_error: float, null: NullDistribution) -> float:
    """Two-sided p-value of ``log_estimate`` against the empirical null (OHDSI ``calibrateP``)."""
    scale = math.sqrt(null.sd**2 + standard_error**2)
    z = (log_estimate - null.mean) / scale
    return float(2 * stats.norm.sf(abs(z)))


def calibrated_interval(
    log_estimate: float, standard_error: float, null: NullDistribution, *, alpha: float = 0.05
) -> dict[str, float]:
    """The calibrated hazard ratio and its ``1 - alpha`` interval (exponentiated), and its log-scale error.

    Examples
    --------
    >>> ci = calibrated_interval(math.log(2.0), 0.1, NullDistribution(math.log(1.25), 0.0, 10))
    >>> round(ci["hr"], 3), round(ci["lower"], 3), round(ci["upper"], 3)
    (1.6, 1.315, 1.946)
    """
    z = float(stats.norm.ppf(1 - alpha / 2))
    scale = math.sqrt(null.sd**2 + standard_error**2)
    centre = log_estimate - null.mean
    return {
        "hr": math.exp(centre),
        "lower": math.exp(centre - z * scale),
        "upper": math.exp(centre + z * scale),
        "se": scale,
    }
