"""Partner aggregates go through the core's noisy release: the differencing attack is a regression test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pytest
from safety_world import Loaded
from search_world import City, make_city

from massalia.engine import Engine, connect
from massalia.governance import InvalidRequest
from massalia.governance.disclosure import settings_from_env
from massalia.safety import release, services
from massalia.safety.catalogue import load_catalogue
from massalia.safety.geo import city_rings, district_of, in_city
from massalia.safety.log import INCIDENTS
from massalia.safety.query import IncidentFilter


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    made = make_city(tmp_path_factory.mktemp("release-gov"))
    try:
        yield made
    finally:
        made.gov.close()


def _true(loaded: Loaded, families: tuple[str, ...]) -> dict[str, int]:
    listed = ", ".join(repr(f) for f in families)
    rows = loaded.engine.query(
        f"SELECT zone, count(*) AS n FROM {INCIDENTS} WHERE family IN ({listed}) GROUP BY 1"
    ).to_pylist()
    return {r["zone"]: int(r["n"]) for r in rows}


def test_attack_differencing_two_overlapping_partner_queries_does_not_give_the_hidden_count(
    city: City, loaded: Loaded
) -> None:
    """Every family but ATP, then every family, by zone: both large, so both shown; their difference is ATP's."""
    others = tuple(sorted(set(load_catalogue().families) - {"ATP"}))
    hidden = _true(loaded, ("ATP",))
    threshold = settings_from_env().threshold
    assert any(0 < n < threshold for n in hidden.values()), "some zones have a few ATP incidents: masked alone"
    partner = city.caller("partner")
    without = services.statistics(partner, loaded.engine, IncidentFilter(families=others), "zone")
    everything = services.statistics(partner, loaded.engine, IncidentFilter(), "zone")
    assert without["release"]["mode"] == everything["release"]["mode"] == "noisy"
    shown_without = {r["key"]: r["count"] for r in without["rows"]}
    shown_all = {r["key"]: r["count"] for r in everything["rows"]}
    pairs = [(z, shown_all[z] - shown_without[z]) for z in hidden if shown_all.get(z) and shown_without.get(z)]
    assert len(pairs) >= 12, "the attack has material: both queries shown in (nearly) every zone"
    recovered = sum(1 for zone, difference in pairs if difference == hidden[zone])
    # Masked-only counts give recovered == len(pairs); Laplace noise of scale 10 rounded to 5 leaves chance hits
    # (a few percent per zone).
    assert recovered <= len(pairs) // 2, f"the difference gave the hidden count in {recovered} of {len(pairs)} zones"
    assert all(c is None or (c % 5 == 0 and c >= threshold) for c in shown_without.values())
    assert all(r["rate_per_10k"] is None for r in without["rows"] if r["count"] is None), "no rate leaks a masked count"


def test_asking_again_gives_the_same_release_for_free(city: City, loaded: Loaded) -> None:
    partner = city.caller("partner")
    where = IncidentFilter(families=("BRU",))
    first = services.statistics(partner, loaded.engine, where, "zone")
    again = services.statistics(partner, loaded.engine, where, "zone")
    assert [r["count"] for r in first["rows"]] == [r["count"] for r in again["rows"]], "averaging gains nothing"
    assert again["release"]["charged"] == 0.0 and again["release"]["repeated"]


def test_map_and_timeline_counts_of_a_partner_are_noisy_and_staff_get_exact(city: City, loaded: Loaded) -> None:
    partner, analyst = city.caller("partner"), city.caller("analyst")
    grid = services.map_grid(partner, loaded.engine, IncidentFilter(), 1000)
    assert grid["release"]["mode"] == "noisy" and all(c["count"] % 5 == 0 for c in grid["cells"])
    exact = services.map_grid(analyst, loaded.engine, IncidentFilter(), 1000)
    assert exact["release"]["mode"] == "exact"
    assert sum(c["count"] for c in exact["cells"]) + sum(v or 0 for v in exact["without_point"].values()) == (
        loaded.engine.scalar_int(f"SELECT count(*) FROM {INCIDENTS}")
    )
    days = services.timeline(partner, loaded.engine, IncidentFilter(), "week")
    assert days["release"]["mode"] == "noisy" and days["release"]["releases"] == 1


def test_statistics_compare_with_the_previous_period_and_the_same_period_last_year(city: City,
                                                                                   loaded: Loaded) -> None:  # fmt: skip
    where = IncidentFilter(dt.datetime(2025, 7, 1), dt.datetime(2025, 8, 1))
    stats = services.statistics(city.caller("analyst"), loaded.engine, where, "family")
    assert stats["previous_period"]["start"] == "2025-05-31T00:00:00"
    assert stats["last_year_period"] == {
        **where.describe(),
        "start": "2024-07-01T00:00:00",
        "end": "2024-08-01T00:00:00",
    }
    assert all(r["last_year"] == 0 for r in stats["rows"]), "the generated year is 2025 alone: nothing a year before"
    total = loaded.engine.scalar_int(
        f"SELECT count(*) FROM {INCIDENTS} WHERE occurred_at >= '2025-07-01' AND occurred_at < '2025-08-01'"
    )
    assert stats["total"] == total


# --- Which cells and buckets hold incidents: a partner's grid and timeline are fixed, empty cells included ---

CELL = 500
JANUARY = IncidentFilter(dt.datetime(2025, 1, 1), dt.datetime(2025, 2, 1))
PLANTED = 300


@dataclass
class Worlds:
    """The same city twice: ``without`` a few dense cells only, ``with_`` them plus one incident planted in each
    of :data:`PLANTED` otherwise empty cells (and hours of January), so which cells hold incidents is known."""

    without: Engine
    with_: Engine
    planted_cells: set[tuple[int, int]]
    empty_cells: set[tuple[int, int]]
    planted_hours: set[str]
    empty_hours: set[str]


def _engine(rows: list[dict[str, object]]) -> Engine:
    engine = connect("duckdb")
    schema = pa.schema([("incident_id", pa.int64()), ("occurred_at", pa.timestamp("us")), ("zone", pa.string()),
                        ("x_l93", pa.float64()), ("y_l93", pa.float64()), ("type_code", pa.string()),
                        ("family", pa.string()), ("first_source", pa.string()), ("run_id", pa.string())])  # fmt: skip
    engine.create_table(INCIDENTS, pa.Table.from_pylist(rows, schema=schema))
    return engine


@pytest.fixture(scope="module")
def worlds() -> Iterator[Worlds]:
    rng = np.random.default_rng(16)
    grid = release.city_cells(CELL)
    centres = np.array([((gx + 0.5) * CELL, (gy + 0.5) * CELL) for gx, gy in grid])
    zones = district_of(centres[:, 0], centres[:, 1])
    inner = [i for i in range(len(grid)) if zones[i]]  # cells whose centre is in the city: a zone to file under
    dense = {int(i) for i in rng.choice(inner, 5, replace=False)}
    planted = [int(i) for i in rng.choice(sorted(set(inner) - dense), PLANTED, replace=False)]
    hours = [dt.datetime(2025, 1, 1) + dt.timedelta(hours=int(h)) for h in rng.choice(31 * 24, PLANTED, replace=False)]

    def incident(number: int, cell: int, at: dt.datetime) -> dict[str, object]:
        return {"incident_id": number, "occurred_at": at, "zone": f"D{zones[cell]:02d}", "x_l93": centres[cell, 0],
                "y_l93": centres[cell, 1], "type_code": "VOL_SIMPLE", "family": "VOL", "first_source": "mc",
                "run_id": "r1"}  # fmt: skip

    background = [incident(n, cell, dt.datetime(2025, 3, 1 + n % 28, 12)) for n, cell in
                  enumerate(sorted(dense) * 100)]  # fmt: skip
    added = [incident(len(background) + k, cell, hours[k]) for k, cell in enumerate(planted)]
    every_hour = {(dt.datetime(2025, 1, 1) + dt.timedelta(hours=h)).isoformat() for h in range(31 * 24)}
    made = Worlds(_engine(background), _engine(background + added), {grid[i] for i in planted},
                  {grid[i] for i in set(range(len(grid))) - dense - set(planted)}, {h.isoformat() for h in hours},
                  every_hour - {h.isoformat() for h in hours})  # fmt: skip
    try:
        yield made
    finally:
        made.without.close()
        made.with_.close()


def _advantage(shown: set[object], planted: set[object], empty: set[object]) -> tuple[float, float]:
    """How often a planted and an empty cell (or hour) show a count: a partner guessing "shown, so not empty"."""
    return len(shown & planted) / len(planted), len(shown & empty) / len(empty)


def test_attack_a_partner_cannot_tell_empty_map_cells_from_cells_holding_an_incident(
    city: City, worlds: Worlds
) -> None:
    """Only non-empty cells were released, so a listed cell certainly held incidents and ``masked_cells`` counted
    the others exactly: planting one incident in 300 cells changed the listing. The grid is now fixed."""
    partner = city.caller("partner")
    before = services.map_grid(partner, worlds.without, IncidentFilter(), CELL)
    after = services.map_grid(partner, worlds.with_, IncidentFilter(), CELL)
    shown = {(c["x_l93"] // CELL, c["y_l93"] // CELL) for c in after["cells"]}
    planted_rate, empty_rate = _advantage(shown, worlds.planted_cells, worlds.empty_cells)  # type: ignore[arg-type]
    # Laplace noise of scale 10 shows an empty cell as 10 or more about 24 % of the time, a one-incident cell
    # about 26 %; the listing of non-empty cells alone gave 0 % for empty cells.
    assert empty_rate > 0.1, f"empty cells are never shown ({empty_rate:.0%}): a shown cell is surely non-empty"
    assert abs(planted_rate - empty_rate) < 0.12, (
        f"shown: {planted_rate:.0%} of cells with an incident against {empty_rate:.0%} of empty ones"
    )
    size = len(release.city_cells(CELL))
    for answer in (before, after):
        assert len(answer["cells"]) + answer["masked_cells"] == size, "every cell of the city, empty or not"
        assert sorted(answer["without_point"]) == [f"D{n:02d}" for n in range(1, 17)], "every zone, empty or not"


def test_attack_a_partner_cannot_tell_empty_hours_from_hours_holding_an_incident(city: City, worlds: Worlds) -> None:
    """Same reasoning for the timeline: only non-empty buckets were listed, so each listed hour held incidents."""
    partner = city.caller("partner")
    before = services.timeline(partner, worlds.without, JANUARY, "hour")
    after = services.timeline(partner, worlds.with_, JANUARY, "hour")
    shown = {p["t"] for p in after["points"] if p["count"] is not None}
    planted_rate, empty_rate = _advantage(shown, worlds.planted_hours, worlds.empty_hours)  # type: ignore[arg-type]
    assert empty_rate > 0.1, f"empty hours are never shown ({empty_rate:.0%}): a shown hour is surely non-empty"
    assert abs(planted_rate - empty_rate) < 0.12, (
        f"shown: {planted_rate:.0%} of hours with an incident against {empty_rate:.0%} of empty ones"
    )
    assert [p["t"] for p in before["points"]] == [p["t"] for p in after["points"]], "the same buckets either way"
    assert len(after["points"]) == 31 * 24


def test_a_partner_grid_too_fine_or_timeline_too_long_is_refused_before_release(city: City, worlds: Worlds) -> None:
    partner = city.caller("partner")
    with pytest.raises(InvalidRequest, match="ask a larger cell"):
        services.map_grid(partner, worlds.with_, IncidentFilter(), 60)
    with pytest.raises(InvalidRequest, match="buckets"):
        services.timeline(
            partner, worlds.with_, IncidentFilter(dt.datetime(2020, 1, 1), dt.datetime(2025, 1, 1)), "hour"
        )
    analyst = services.map_grid(city.caller("analyst"), worlds.with_, IncidentFilter(), 60)
    assert analyst["release"]["mode"] == "exact", "staff keep every cell at any size"


def test_the_fixed_grid_covers_every_point_of_the_city() -> None:
    """Every incident the log can hold (a point in the outline) falls in a released cell."""
    rng = np.random.default_rng(7)
    rings = city_rings()
    low, high = rings[0].min(axis=0), rings[0].max(axis=0)
    x, y = rng.uniform(low[0], high[0], 200_000), rng.uniform(low[1], high[1], 200_000)
    inside = in_city(x, y)
    for size in (250, 1000):
        cells = set(release.city_cells(size))
        placed = set(
            zip((x[inside] // size).astype(int).tolist(), (y[inside] // size).astype(int).tolist(), strict=True)
        )
        assert placed <= cells, f"{len(placed - cells)} cells holding city points are missing at {size} m"
