"""Regenerate the city outline the safety generator ships (``massalia/safety/synth/marseille.geojson``).

Reads the commune outlines of the Bouches-du-Rhône (``$MASSALIA_REFERENCE/safety/geo/``, from
france-geojson, Etalab's "contours des communes") and keeps Marseille (INSEE 13055), coordinates rounded to
1e-5 degree (about a metre). Reference material is never read at run time; a test compares the shipped
outline with the reference.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SOURCE = (
    Path(os.environ.get("MASSALIA_REFERENCE", "../shared/reference"))
    / "safety/geo/fr_communes-13-bouches-du-rhone.geojson"
)
TARGET = Path(__file__).resolve().parents[1] / "src/massalia/safety/synth/marseille.geojson"


def _round(value: object) -> object:
    if isinstance(value, list):
        return [_round(item) for item in value]
    if isinstance(value, float):
        return round(value, 5)
    return value


def main() -> None:
    """Write the shipped outline."""
    data = json.loads(SOURCE.read_text(encoding="utf-8"))
    (city,) = [f for f in data["features"] if f["properties"].get("code") == "13055"]
    feature = {
        "type": "Feature",
        "properties": {"code": "13055", "nom": "Marseille", "source": "france-geojson (Etalab contours des communes)"},
        "geometry": {"type": city["geometry"]["type"], "coordinates": _round(city["geometry"]["coordinates"])},
    }
    TARGET.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
