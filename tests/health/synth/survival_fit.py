"""Small numpy estimators used by the tests to check the generator's ground truth (not library code)."""

from __future__ import annotations

import numpy as np


def _stratum_terms(
    start: np.ndarray, stop: np.ndarray, event: np.ndarray, x: np.ndarray, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and information of the Breslow partial likelihood within one stratum."""
    n, p = x.shape
    times = np.unique(stop[event])
    if times.size == 0:
        return np.zeros(p), np.zeros((p, p))
    d = np.bincount(np.searchsorted(times, stop[event]), minlength=times.size)
    o_stop, o_start = np.argsort(stop), np.argsort(start)
    i_stop = np.searchsorted(stop[o_stop], times, side="left")
    i_start = np.searchsorted(start[o_start], times, side="left")
    w = np.exp(np.clip(x @ beta, -50, 50))
    wx = w[:, None] * x
    wxx = np.einsum("ni,nj->nij", wx, x).reshape(n, p * p)

    def risk(a: np.ndarray) -> np.ndarray:
        # at risk at t: stop >= t and start < t
        c_stop = np.vstack([np.zeros((1, a.shape[1])), np.cumsum(a[o_stop], axis=0)])
        c_start = np.vstack([np.zeros((1, a.shape[1])), np.cumsum(a[o_start], axis=0)])
        return (c_stop[-1] - c_stop[i_stop]) - (c_start[-1] - c_start[i_start])

    s0 = risk(w[:, None])[:, 0]
    s1 = risk(wx)
    s2 = risk(wxx).reshape(-1, p, p)
    mean = s1 / s0[:, None]
    grad = x[event].sum(axis=0) - (d[:, None] * mean).sum(axis=0)
    info = (d[:, None, None] * (s2 / s0[:, None, None] - mean[:, :, None] * mean[:, None, :])).sum(axis=0)
    return grad, info


def cox_fit(
    start: np.ndarray,
    stop: np.ndarray,
    event: np.ndarray,
    x: np.ndarray,
    strata: np.ndarray | None = None,
    iters: int = 30,
) -> np.ndarray:
    """Cox PH coefficients (Breslow ties, Newton) for counting-process rows at risk on (start, stop].

    ``strata`` gives each stratum its own baseline hazard.
    """
    strata = np.zeros(x.shape[0], dtype=np.int64) if strata is None else strata
    groups = [np.flatnonzero(strata == s) for s in np.unique(strata)]
    beta = np.zeros(x.shape[1])
    for _ in range(iters):
        grad = np.zeros_like(beta)
        info = np.zeros((beta.size, beta.size))
        for g in groups:
            gg, ii = _stratum_terms(start[g], stop[g], event[g], x[g], beta)
            grad += gg
            info += ii
        step = np.linalg.solve(info + 1e-9 * np.eye(beta.size), grad)
        step = np.clip(step, -1.0, 1.0)
        beta = beta + step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def poisson_fit(y: np.ndarray, x: np.ndarray, exposure: np.ndarray, iters: int = 30) -> np.ndarray:
    """Poisson regression with log link and log(exposure) offset (IRLS); first column of x = intercept."""
    beta = np.zeros(x.shape[1])
    beta[0] = np.log(y.sum() / exposure.sum())
    for _ in range(iters):
        mu = exposure * np.exp(x @ beta)
        grad = x.T @ (y - mu)
        info = (x * mu[:, None]).T @ x
        step = np.linalg.solve(info, grad)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return beta
