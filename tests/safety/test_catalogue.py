"""The incident-type catalogue: size, families, crosswalk codes checked against the reference schemes."""

from __future__ import annotations

import json
import os

import pytest

from massalia.safety.catalogue import (
    MATCHES,
    CatalogueError,
    _check_type,
    coverage,
    load_catalogue,
    unmapped_codes,
)
from reference_data import REFERENCE as SHARED_REFERENCE

REFERENCE = SHARED_REFERENCE / "safety" / "sdm-alert"
# Skipped on a machine without the shared folder; under CI the folder must be there, so the test runs (and fails).
NO_REFERENCE = not REFERENCE.is_dir() and os.environ.get("CI") != "true"


def test_about_a_hundred_types_in_families_each_with_every_crosswalk_qualified() -> None:
    catalogue = load_catalogue()
    assert 100 <= len(catalogue.types) <= 200
    families = {t.family for t in catalogue.types.values()}
    assert families == set(catalogue.families), "every family has types and every type a known family"
    for t in catalogue.types.values():
        for scheme in ("etat4001", "iccs", "sdm"):
            assert t.crosswalk[f"{scheme}_match"] in MATCHES
        if t.crosswalk["iccs"]:
            assert len(t.crosswalk["iccs"]) == 4, f"{t.code}: ICCS codes are claimed at level 2 only"
    counts = coverage(catalogue)
    assert counts["etat4001"]["none"] > 0, "contraventions (noise...) have no état 4001 index, and say so"
    assert counts["iccs"]["uncertain"] > 0, "uncertain crosswalks are marked, not passed off as exact"


@pytest.mark.skipif(NO_REFERENCE, reason="the shared reference folder is not available")
def test_smart_data_models_codes_come_from_the_alert_schema() -> None:
    schema = json.loads((REFERENCE / "sdm_Alert_schema.json").read_text(encoding="utf-8"))
    common = json.loads((REFERENCE / "sdm_alert-schema_common.json").read_text(encoding="utf-8"))
    subcategories = next(
        part["properties"]["subCategory"]["anyOf"][0]["enum"]
        for part in schema["allOf"]
        if "subCategory" in part.get("properties", {})
    )
    categories = json.dumps(common)
    catalogue = load_catalogue()
    assert catalogue.schemes["sdm"]["subcategories"] == subcategories, "the shipped enum is the schema's"
    for t in catalogue.types.values():
        if t.crosswalk["sdm_subcategory"]:
            assert t.crosswalk["sdm_subcategory"] in subcategories, t.code
        if t.crosswalk["sdm_category"]:
            assert f'"{t.crosswalk["sdm_category"]}"' in categories, t.code


def test_each_source_maps_its_local_codes_and_unknown_ones_are_reported() -> None:
    catalogue = load_catalogue()
    for source in ("mc", "csu", "dtp"):
        codes = catalogue.codes_of(source)
        assert codes, source
        assert all(catalogue.resolve(source, c.code) == c.type_code for c in codes)
    assert catalogue.resolve("mc", " pm900 ") == "BRU.TAPAGE_NOCTURNE", "codes are trimmed and case-folded"
    assert catalogue.resolve("csu", "PM101") is None, "a local code belongs to its source only"
    assert unmapped_codes(catalogue, [("dtp", "NUI-999"), ("dtp", "NUI-001"), ("dtp", "NUI-999")]) == [
        ("dtp", "NUI-999", 2)
    ]


def test_an_inconsistent_row_is_refused_naming_file_line_and_field() -> None:
    catalogue = load_catalogue()
    row = {**dict.fromkeys(("etat4001", "ssmsi", "iccs", "sdm_category", "sdm_subcategory"), "")}
    row.update(code="VOL.X", family="VOL", label_fr="x", label_en="x", severity="low", etat4001_match="none",
               iccs_match="none", sdm_match="none", cap="Security")  # fmt: skip
    _check_type(row, 7, catalogue.families, catalogue.schemes)
    with pytest.raises(CatalogueError, match=r"types.csv line 7, field sdm_subcategory: 'burglary'"):
        _check_type({**row, "sdm_subcategory": "burglary", "sdm_match": "exact"}, 7, catalogue.families,
                    catalogue.schemes)  # fmt: skip
    with pytest.raises(CatalogueError, match=r"field etat4001: index 108"):
        _check_type({**row, "etat4001": "108", "etat4001_match": "exact"}, 7, catalogue.families, catalogue.schemes)
    with pytest.raises(CatalogueError, match=r"field cap"):
        _check_type({**row, "cap": "Crime"}, 7, catalogue.families, catalogue.schemes)
