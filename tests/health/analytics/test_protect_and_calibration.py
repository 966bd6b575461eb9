"""Small-cell protection of curves and counts, and the empirical calibration math."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from massalia.health.analytics import survival
from massalia.health.analytics.calibration import calibrated_interval, calibrated_p, fit_null
from massalia.health.analytics.protect import release_grid


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 60.0), st.booleans()), min_size=1, max_size=120), st.integers(2, 15))
def test_every_released_step_holds_at_least_threshold_events(rows: list[tuple[float, bool]], threshold: int) -> None:
    """Attack: reading a death time off a KM step. Every step aggregates ``threshold`` events or more and
    leaves ``threshold`` persons at risk; a curve with fewer events shows no step at all."""
    time = np.array([t for t, _ in rows])
    event = np.array([e for _, e in rows])
    grid = release_grid(time, event, threshold, 1.0)
    previous = 0.0
    for released in grid:
        assert int(((time > previous) & (time <= released) & event).sum()) >= threshold
        assert int((time > released).sum()) >= threshold
        previous = released
    result = survival.kaplan_meier(time, event.astype(int), threshold=threshold, step=1.0, table_at=[0.0, 12.0])
    assert len(result["curve"]) == len(grid) + 1
    for cell in (result["n"], result["events"], *result["at_risk"]):
        assert cell["count"] is None or cell["count"] >= threshold
        assert cell["shown"] == (f"<{threshold}" if cell["count"] is None else str(cell["count"]))


def test_a_tiny_cohort_shows_no_step_and_masks_its_counts() -> None:
    time = np.array([1.5, 2.5, 3.5, 8.0, 9.0, 11.0])
    result = survival.kaplan_meier(time, np.ones(6, dtype=int), threshold=10, step=1.0)
    assert [point["time"] for point in result["curve"]] == [0.0]
    assert result["n"] == {"count": None, "shown": "<10"} and result["median"] is None


def test_the_null_is_recovered_from_simulated_negative_controls() -> None:
    rng = np.random.default_rng(7)
    se = rng.uniform(0.05, 0.3, size=200)
    estimates = rng.normal(0.2, 0.15, size=200) + rng.normal(0, se)
    null = fit_null(estimates, se)
    assert null.mean == pytest.approx(0.2, abs=0.04)
    assert null.sd == pytest.approx(0.15, abs=0.04)


def test_calibration_closed_forms() -> None:
    null = fit_null([0.3, 0.35, 0.25, 0.3], [0.05, 0.05, 0.05, 0.05])
    assert null.mean == pytest.approx(0.3, abs=0.01)
    # The estimate equal to the null's mean is not significant once calibrated; the CI is centred on 0.
    assert calibrated_p(null.mean, 0.05, null) == pytest.approx(1.0)
    interval = calibrated_interval(null.mean, 0.05, null)
    assert interval["hr"] == pytest.approx(1.0) and interval["lower"] < 1 < interval["upper"]
    with pytest.raises(ValueError, match="at least 3"):
        fit_null([0.1, 0.2], [0.1, 0.1])
    assert math.isclose(calibrated_p(0.0, 0.1, type(null)(0.0, 0.0, 3)), 1.0)
