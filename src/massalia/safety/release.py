"""How the incident log's aggregates reach a caller without ``raw_counts`` (a partner): the core's noisy release.

Masking small counts alone is not enough: two overlapping queries (``VOL`` and ``VOL + ATP`` in one zone)
are both large, so both shown exactly, and their difference is the small count the mask hid (the
differencing attack). Every count a partner sees is therefore released by the core mechanism
(:func:`massalia.governance.disclosure.release_counts`): Laplace noise, rounding, the threshold mask, a
privacy budget per user and period, and consistency (the same query on the same data gives the same answer,
free, so asking again averages nothing).

A release holds at most :data:`~massalia.governance.disclosure.MAX_CELLS` counts; a larger table (a fine
map grid, an hourly timeline) is released in chunks of disjoint cells, each paid for.

Examples
--------
>>> counts, how = release_table(caller, engine, "safety.stats.read", {"by": "zone"}, {"D01": 120})  # doctest: +SKIP
>>> how["mode"]  # doctest: +SKIP
'noisy'
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np

from massalia.engine import Engine
from massalia.governance import Caller, InvalidRequest
from massalia.governance.disclosure import MAX_CELLS, release_counts
from massalia.safety.geo import city_rings, contains
from massalia.safety.log import INCIDENTS

MAX_GRID_CELLS = 20_000
"""The most cells a partner's fixed grid may hold (the city at 150 m); finer grids are refused."""
MAX_BUCKETS = 20_000
"""The most buckets a partner's fixed timeline may hold (two years and more of hours)."""


def data_version(engine: Engine, *, present: bool = False) -> str:
    """What identifies the incident log's content for the release store (new loads give new releases).

    ``present``: the caller has just seen the incident table exist (listing the tables costs milliseconds).
    """
    if not present and not engine.table_exists(INCIDENTS):
        return "empty"
    row = engine.query(
        f"SELECT count(*) AS n, max(incident_id) AS top, max(run_id) AS run FROM {INCIDENTS}"
    ).to_pylist()
    return f"{row[0]['n']}:{row[0]['top']}:{row[0]['run']}"


def release_table(
    caller: Caller,
    engine: Engine,
    action: str,
    query: Mapping[str, Any],
    counts: Mapping[str, int],
    *,
    sensitivity: int = 1,
    present: bool = False,
) -> tuple[dict[str, int | None], dict[str, Any]]:
    """Release ``counts`` (cell name to exact count) to ``caller`` through the noisy, budgeted mechanism.

    ``query`` names what was asked (filter, grouping, cell size): with the data version, it is the release's
    key. ``sensitivity`` is how many of the cells one incident can change (1 when the cells are disjoint).
    ``present``: the incident table is known to exist (see :func:`data_version`).
    Returns the released values (``None``: under the threshold) and how they were released.

    Raises
    ------
    BudgetExhausted
        The caller's privacy budget cannot pay for this release.
    """
    if not counts:
        return {}, {"mode": "noisy", "charged": 0.0, "releases": 0}
    version = data_version(engine, present=present)
    names = sorted(counts)
    values: dict[str, int | None] = {}
    charged = 0.0
    described: dict[str, Any] = {}
    chunks = [names[i : i + MAX_CELLS] for i in range(0, len(names), MAX_CELLS)]
    for number, chunk in enumerate(chunks):
        key = {**query, "data": version, "chunk": number, "chunks": len(chunks)}
        release = release_counts(caller.governance, caller.principal, action, key, {n: int(counts[n]) for n in chunk},
                                 sensitivity=min(sensitivity, len(chunk)))  # fmt: skip
        values.update(release.values)
        charged += release.charged
        described = release.describe()
    described = {**described, "charged": round(charged, 6), "releases": len(chunks)}
    return values, described


@cache
def city_cells(size: int) -> tuple[tuple[int, int], ...]:
    """Every square cell of ``size`` metres (Lambert-93, indices ``floor(x / size)``) that meets the city.

    A cell meets the city when its centre is inside an outline (mainland or island), or an outline's edge or
    vertex passes through it. Edges are walked in steps of ``size / 16``, so a cell the outline only clips at a
    corner by less than that may be left out (incidents there are then left out of a partner's grid too).
    The set depends on the geometry alone, never on the data: which cells a partner is shown says nothing
    about where incidents are.
    """
    if not 1 <= size <= 100_000:
        raise ValueError(f"cell size must be 1 to 100000 metres, got {size}")
    found: set[tuple[int, int]] = set()
    step = size / 16
    for ring in city_rings():
        low_x, low_y = np.floor(ring.min(axis=0) / size).astype(np.int64)
        high_x, high_y = np.floor(ring.max(axis=0) / size).astype(np.int64)
        mesh_x, mesh_y = np.meshgrid(np.arange(low_x, high_x + 1), np.arange(low_y, high_y + 1), indexing="ij")
        gx, gy = mesh_x.ravel(), mesh_y.ravel()
        inside = contains(ring, (gx + 0.5) * size, (gy + 0.5) * size)
        found.update(zip(gx[inside].tolist(), gy[inside].tolist(), strict=True))
        for (x0, y0), (x1, y1) in itertools.pairwise(ring):
            steps = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / step))
            t = np.linspace(0.0, 1.0, steps + 1)
            px = np.floor((x0 + (x1 - x0) * t) / size).astype(np.int64)
            py = np.floor((y0 + (y1 - y0) * t) / size).astype(np.int64)
            found.update(zip(px.tolist(), py.tolist(), strict=True))
    return tuple(sorted(found))


def fixed_buckets(start: dt.datetime, end: dt.datetime, bucket: str) -> list[dt.datetime]:
    """Every bucket start (``hour``, ``day``, ``week`` from Monday, ``month``) of ``[start, end)``, empty or not.

    Like the grid, the list depends on the period asked alone, so a partner's timeline does not show which
    buckets hold incidents.
    """
    if bucket == "month":
        at = dt.datetime(start.year, start.month, 1)
    else:
        at = start.replace(minute=0, second=0, microsecond=0)
        if bucket != "hour":
            at = at.replace(hour=0)
        if bucket == "week":
            at -= dt.timedelta(days=at.weekday())
    out: list[dt.datetime] = []
    while at < end:
        if len(out) >= MAX_BUCKETS:
            raise InvalidRequest(
                f"the timeline from {start:%Y-%m-%d} to {end:%Y-%m-%d} by {bucket} has more than {MAX_BUCKETS} "
                "buckets: ask a shorter period or a larger bucket"
            )
        out.append(at)
        if bucket == "month":
            at = dt.datetime(at.year + at.month // 12, at.month % 12 + 1, 1)
        else:
            at += {"hour": dt.timedelta(hours=1), "day": dt.timedelta(days=1), "week": dt.timedelta(days=7)}[bucket]
    return out


__all__ = ["MAX_BUCKETS", "MAX_GRID_CELLS", "city_cells", "data_version", "fixed_buckets", "release_table"]
