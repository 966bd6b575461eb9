"""Small-cell protection of analysis outputs: counts under the threshold read ``<10``, KM steps are coarsened.

An approved project's members run analyses on rows, but what comes back is an aggregate that may leave the
project (a slide, a paper). Every count in it goes through :func:`protect_count`; every survival or incidence
curve through :func:`coarsen_curve`, which releases the curve only at grid times chosen so that each released
step holds at least ``threshold`` events and at least ``threshold`` persons are still at risk: no single event
time (a death date) can be read off a step.

Examples
--------
>>> protect_count(42, 10), protect_count(3, 10)
({'count': 42, 'shown': '42'}, {'count': None, 'shown': '<10'})
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def protect_count(value: int | float, threshold: int) -> dict[str, Any]:
    """A count as released: itself at or above ``threshold``, else ``None`` shown ``"<threshold"`` (0 included)."""
    count = round(float(value))
    if count < threshold:
        return {"count": None, "shown": f"<{threshold}"}
    return {"count": count, "shown": str(count)}


@dataclass(frozen=True)
class CurvePoint:
    """One released point of a curve: time, estimate, confidence band, persons at risk (protected)."""

    time: float
    estimate: float
    lower: float | None
    upper: float | None
    at_risk: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready, estimates rounded to 4 decimals."""
        return {
            "time": round(self.time, 4),
            "estimate": round(self.estimate, 4),
            "lower": None if self.lower is None else round(self.lower, 4),
            "upper": None if self.upper is None else round(self.upper, 4),
            "at_risk": self.at_risk,
        }


def release_grid(times: np.ndarray, events: np.ndarray, threshold: int, step: float) -> list[float]:
    """Grid times (multiples of ``step``) at which a curve may be shown.

    A grid time ``g`` is released when at least ``threshold`` curve-changing events happened since the
    previous released time and at least ``threshold`` persons are still at risk just after ``g``; the
    first time fewer are at risk ends the curve.

    Examples
    --------
    >>> t = np.arange(1, 41, dtype=float); e = np.ones(40, dtype=bool)
    >>> release_grid(t, e, 10, 5.0)
    [10.0, 20.0, 30.0]
    """
    if step <= 0:
        raise ValueError("the grid step must be positive")
    order = np.argsort(times, kind="stable")
    times, events = np.asarray(times, dtype=float)[order], np.asarray(events, dtype=bool)[order]
    released: list[float] = []
    if times.size == 0:
        return released
    last_events = 0
    grid = step
    event_times = times[events]
    while grid <= times.max():
        events_to = int(np.searchsorted(event_times, grid, side="right"))
        at_risk_after = int(times.size - np.searchsorted(times, grid, side="right"))
        if at_risk_after < threshold:
            break
        if events_to - last_events >= threshold:
            released.append(float(grid))
            last_events = events_to
        grid += step
    return released


def coarsen_curve(
    times: np.ndarray,
    events: np.ndarray,
    estimate_at: Callable[[float], tuple[float, float | None, float | None]],
    threshold: int,
    step: float,
    *,
    start: float = 1.0,
) -> list[CurvePoint]:
    """The curve shown only at :func:`release_grid` times, starting at time 0 with ``start``.

    ``estimate_at(t)`` gives the estimate and its band at ``t`` (a step function evaluated there); the
    number at risk at each point is the persons whose time is after it, protected.
    """
    times = np.asarray(times, dtype=float)
    points = [CurvePoint(0.0, start, start, start, protect_count(times.size, threshold))]
    for grid in release_grid(times, events, threshold, step):
        value, lower, upper = estimate_at(grid)
        at_risk = int((times > grid).sum())
        points.append(CurvePoint(grid, value, lower, upper, protect_count(at_risk, threshold)))
    return points


def at_risk_table(times: np.ndarray, at: Sequence[float], threshold: int) -> list[dict[str, Any]]:
    """Persons still at risk (time strictly after) at each of ``at``, protected."""
    times = np.asarray(times, dtype=float)
    return [{"time": float(t), **protect_count(int((times > t).sum()), threshold)} for t in at]


def coarsened_median(points: Sequence[CurvePoint]) -> float | None:
    """The first released time at which the curve is at or under 0.5 (``None``: not reached while shown)."""
    for point in points:
        if point.estimate <= 0.5:
            return point.time
    return None
