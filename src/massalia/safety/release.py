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

from collections.abc import Mapping
from typing import Any

from massalia.engine import Engine
from massalia.governance import Caller
from massalia.governance.disclosure import MAX_CELLS, release_counts
from massalia.safety.log import INCIDENTS


def data_version(engine: Engine) -> str:
    """What identifies the incident log's content for the release store (new loads give new releases)."""
    if not engine.table_exists(INCIDENTS):
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
) -> tuple[dict[str, int | None], dict[str, Any]]:
    """Release ``counts`` (cell name to exact count) to ``caller`` through the noisy, budgeted mechanism.

    ``query`` names what was asked (filter, grouping, cell size): with the data version, it is the release's
    key. ``sensitivity`` is how many of the cells one incident can change (1 when the cells are disjoint).
    Returns the released values (``None``: under the threshold) and how they were released.

    Raises
    ------
    BudgetExhausted
        The caller's privacy budget cannot pay for this release.
    """
    if not counts:
        return {}, {"mode": "noisy", "charged": 0.0, "releases": 0}
    version = data_version(engine)
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


__all__ = ["data_version", "release_table"]
