"""The generator: seeded and reproducible, a city of ~870,000 in 16 districts, uneven reporting, dirty rows."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from massalia.safety.geo import CITY_POPULATION, city_rings, district_of, districts, in_city, ring_area, to_lambert93
from massalia.safety.synth.generator import GeneratedLogs, GeneratorConfig, generate
from reference_data import REFERENCE as SHARED_REFERENCE

REFERENCE = SHARED_REFERENCE / "safety" / "geo"
# Skipped on a machine without the shared folder; under CI the folder must be there, so the test runs (and fails).
NO_REFERENCE = not REFERENCE.is_dir() and os.environ.get("CI") != "true"


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", GeneratorConfig(events=300, seed=3))
    b = generate(tmp_path / "b", GeneratorConfig(events=300, seed=3))
    c = generate(tmp_path / "c", GeneratorConfig(events=300, seed=4))
    for source in ("mc", "csu", "dtp"):
        for fa, fb, fc in zip(a.files[source], b.files[source], c.files[source], strict=True):
            assert fa.read_bytes() == fb.read_bytes()
            assert fa.read_bytes() != fc.read_bytes() or fa.stat().st_size < 200  # an empty corrections file


def test_sixteen_districts_inside_the_city_with_its_population() -> None:
    found = districts()
    assert [d.zone for d in found] == [f"D{n:02d}" for n in range(1, 17)]
    assert 860_000 <= CITY_POPULATION <= 880_000
    area = sum(ring_area(d.outline) for d in found) / 1e6
    assert area == pytest.approx(ring_area(city_rings()[0]) / 1e6, rel=1e-6), "the districts tile the mainland"
    assert 230 <= area <= 245, "Marseille is about 241 km² (the islands apart)"
    seeds = np.array([d.seed for d in found])
    assert (district_of(seeds[:, 0], seeds[:, 1]) == np.arange(1, 17)).all()


@pytest.mark.skipif(NO_REFERENCE, reason="the shared reference folder is not available")
def test_the_shipped_outline_is_the_reference_communes() -> None:
    data = json.loads((REFERENCE / "fr_communes-13-bouches-du-rhone.geojson").read_text(encoding="utf-8"))
    (city,) = [f for f in data["features"] if f["properties"]["code"] == "13055"]
    rings = [np.array(polygon[0]) for polygon in city["geometry"]["coordinates"]]
    shipped = sorted(ring_area(r) for r in city_rings())
    projected = sorted(ring_area(np.column_stack(to_lambert93(r[:, 0], r[:, 1]))) for r in rings)
    assert shipped == pytest.approx(projected, rel=1e-4)
    # Aubagne's town hall is outside the city; the Canebière is inside.
    x, y = to_lambert93(np.array([5.5706, 5.3790]), np.array([43.2927, 43.2975]))
    assert in_city(x, y).tolist() == [False, True]


def test_reporting_is_uneven_across_districts_and_some_rows_are_dirty(safety_logs: GeneratedLogs) -> None:
    with (safety_logs.root / "truth" / "events.csv").open(encoding="utf-8") as handle:
        events = list(csv.DictReader(handle))
    assert len(events) == safety_logs.events
    by_zone = Counter(e["zone"] for e in events)
    seen_csu = Counter(e["zone"] for e in events if e["csu"] == "1")
    # Cameras are dense downtown (1st) and sparse in the north (15th): the same events, seen unevenly.
    assert seen_csu["D01"] / by_zone["D01"] > 2 * seen_csu["D15"] / by_zone["D15"]
    assert any(e["mc"] == e["csu"] == e["dtp"] == "0" for e in events), "some events reach no log (dark figure)"
    assert sum(1 for e in events if int(e["mc"]) + int(e["csu"]) + int(e["dtp"]) > 1) > 100, "cross-source duplicates"
    assert all(n > 0 for n in safety_logs.dirty.values()), safety_logs.dirty
    mc = (safety_logs.root / "mc" / "main_courante_2025.csv").read_text(encoding="utf-8").splitlines()
    assert mc[0].startswith("num_mc;date_heure;")
    assert len(mc) > len(set(mc)), "some entries are exported twice"
    months = Counter(e["occurred_at"][5:7] for e in events)
    assert months["07"] > months["02"], "a summer peak"
