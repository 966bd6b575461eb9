"""The point-in-ring test: the edge-sliced vectorised form answers exactly as the classic per-edge ray casting."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from massalia.safety import geo
from massalia.safety.geo import city_rings, contains, districts


def _classic(ring: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The former implementation (one numpy step per edge), kept as the reference."""
    inside = np.zeros(len(x), dtype=bool)
    for ax, ay, bx, by in zip(ring[:-1, 0], ring[:-1, 1], ring[1:, 0], ring[1:, 1], strict=True):
        crosses = (ay > y) != (by > y)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= crosses & (x < at)
    return inside


def test_the_city_outline_answers_as_the_classic_test_on_every_kind_of_point() -> None:
    rng = np.random.default_rng(16)
    seeds = np.array([d.seed for d in districts()])
    points = seeds[rng.integers(0, len(seeds), 4000)] + rng.normal(0, 3000, (4000, 2))
    x, y = points[:, 0].copy(), points[:, 1].copy()
    x[:5], y[5:10] = np.nan, np.nan  # missing coordinates are outside
    for ring in city_rings():
        # Vertices themselves and points on horizontal lines through them: the boundary cases of ray casting.
        vx = np.concatenate([x, ring[:, 0], ring[:, 0] + 1.0])
        vy = np.concatenate([y, ring[:, 1], ring[:, 1]])
        assert np.array_equal(contains(ring, vx, vy), _classic(ring, vx, vy))


@settings(max_examples=60, deadline=None)
@given(
    ring=st.lists(st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=3, max_size=12),
    points=st.lists(st.tuples(st.integers(-25, 25), st.integers(-25, 25)), min_size=1, max_size=40),
)
def test_any_ring_and_points_on_a_coarse_grid_answer_as_the_classic_test(
    ring: list[tuple[int, int]], points: list[tuple[int, int]]
) -> None:
    """Integer grids put points exactly on vertices and edges, and edges flat: every tie of the test is met."""
    closed = np.array([*ring, ring[0]], dtype=np.float64)
    x = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    assert np.array_equal(contains(closed, x, y), _classic(closed, x, y))


def test_passes_are_bounded_and_still_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """With tiny passes (a pass per edge or less) the answer does not change."""
    ring = city_rings()[0]
    rng = np.random.default_rng(1)
    x = rng.uniform(ring[:, 0].min(), ring[:, 0].max(), 3000)
    y = rng.uniform(ring[:, 1].min(), ring[:, 1].max(), 3000)
    expected = _classic(ring, x, y)
    monkeypatch.setattr(geo, "PAIRS_PER_PASS", 7)
    assert np.array_equal(contains(ring, x, y), expected)
    assert 0 < expected.sum() < len(x)
