"""The offline map background: the commune outline and the districts as simplified Lambert-93 rings.

No tile server and no CDN: the portal's map draws these rings itself (SVG), under the grid and heat layers the
aggregate services compute. The outline is the commune's (the shared reference, packaged in
``synth/marseille.geojson``), the districts are the generated ones (:func:`massalia.safety.geo.districts`).
Rings are thinned to points at least ``tolerance`` metres apart, enough for a city-wide view.

Examples
--------
>>> background = basemap()
>>> background["crs"], len(background["districts"])
('EPSG:2154', 16)
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from massalia.safety.geo import city_rings, districts

TOLERANCE_M = 40.0
"""Smallest distance kept between two points of a ring (metres)."""


def thin(ring: np.ndarray, tolerance: float = TOLERANCE_M) -> list[list[float]]:
    """The ring's points at least ``tolerance`` metres apart (first and last kept), rounded to the metre."""
    kept = [ring[0]]
    for point in ring[1:-1]:
        if float(np.hypot(*(point - kept[-1]))) >= tolerance:
            kept.append(point)
    kept.append(ring[-1])
    return [[round(float(x)), round(float(y))] for x, y in kept]


@cache
def basemap() -> dict[str, Any]:
    """The background: the city's rings, the districts (zone, name, population, ring) and the bounding box."""
    rings = [thin(ring) for ring in city_rings()]
    every = np.vstack(city_rings())
    return {
        "crs": "EPSG:2154",
        "bbox": [
            float(every[:, 0].min()),
            float(every[:, 1].min()),
            float(every[:, 0].max()),
            float(every[:, 1].max()),
        ],
        "city": rings,
        "districts": [
            {"zone": d.zone, "name": d.name, "population": d.population, "ring": thin(d.outline)} for d in districts()
        ],
        "source": "commune outline (shared reference, Marseille); districts generated (Voronoi cells of seeds)",
    }


__all__ = ["TOLERANCE_M", "basemap", "thin"]
