"""Partner aggregates go through the core's noisy release: the differencing attack is a regression test."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from safety_world import Loaded
from search_world import City, make_city

from massalia.governance.disclosure import settings_from_env
from massalia.safety import services
from massalia.safety.catalogue import load_catalogue
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
