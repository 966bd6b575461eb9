from __future__ import annotations

import csv
from pathlib import Path

import pytest
from synth_helpers import read_site_file

import massalia.health.omop as omop
from massalia.health.synth.catalogue import source_codes
from massalia.health.synth.sites.clcc_sud_codes import code_list_csv, local_codes, shipped_code_list
from massalia.health.synth.vocab_map import (
    shipped_source_code_map,
    source_code_map,
    source_code_map_csv,
    vocabulary_gaps,
)

VOCAB = Path(omop.__file__).parent / "vocab" / "CONCEPT.csv"

# Codes the generator needs that the demo vocabulary lacks (reported to the vocabulary's owner).
EXPECTED_GAPS = {
    ("ATC", "L01XK01"),
    ("LOCAL", "MOL-KI67"),
    ("LOCAL", "MOL-PDL1"),
    ("LOCAL", "MOL-BRCA"),
}


@pytest.fixture(scope="module")
def concepts() -> dict[tuple[str, str], dict[str, str]]:
    with VOCAB.open(encoding="utf-8") as fh:
        return {(r["vocabulary_id"], r["concept_code"]): r for r in csv.DictReader(fh, delimiter="\t")}


def test_every_target_is_a_valid_standard_concept_of_the_vocabulary(concepts):
    for row in source_code_map().values():
        if not row.target_concept_code:
            continue
        concept = concepts.get((row.target_vocabulary_id, row.target_concept_code))
        assert concept is not None, row
        assert concept["standard_concept"] == "S" and not concept["invalid_reason"], (row, concept)


def test_gaps_are_exactly_the_known_ones():
    assert {(g.source_vocabulary_id, g.source_code) for g in vocabulary_gaps()} == EXPECTED_GAPS


def test_every_catalogue_code_is_in_the_map():
    mapped = set(source_code_map())
    for vocabulary, codes in source_codes().items():
        for code in codes:
            if vocabulary == "ICDO3":
                assert any(k[0] == "ICDO3" and k[1].startswith(code + "-") for k in mapped), code
            else:
                assert (vocabulary, code) in mapped or ("LOCAL", code) in mapped, (vocabulary, code)


def test_shipped_files_are_up_to_date():
    assert shipped_source_code_map() == source_code_map_csv()
    assert shipped_code_list() == code_list_csv()


def _with_dot(code: str) -> str:
    return code if len(code) <= 3 else code[:3] + "." + code[3:]


def _distinct(out: Path, site: str, pattern: str, column: str) -> set[str]:
    values: set[str] = set()
    for path in (out / site).glob(pattern):
        values |= {v for v in read_site_file(path, site).column(column).to_pylist() if v is not None}
    return values


def test_every_code_written_by_the_standard_sites_is_mapped(small_run):
    out, _ = small_run
    mapped = source_code_map()
    written = {
        "ICD10": {_with_dot(c) for c in _distinct(out, "chu_nord", "diagnostics_*", "code_cim10")}
        | _distinct(out, "ch_est", "diagnostic_*", "cim10"),
        "ATC": _distinct(out, "chu_nord", "administrations_*", "code_atc")
        | _distinct(out, "ch_est", "medicament_*", "atc"),
        "SNOMED": _distinct(out, "chu_nord", "actes_*", "code_snomed") | _distinct(out, "ch_est", "acte_*", "snomed"),
        "LOINC": _distinct(out, "chu_nord", "biologie_*", "code_loinc")
        | _distinct(out, "ch_est", "labo_*", "loinc")
        | _distinct(out, "chu_nord", "biomarqueurs_*", "code_loinc")
        | _distinct(out, "ch_est", "marqueur_*", "loinc"),
    }
    assert all(written.values())
    for vocabulary, codes in written.items():
        for code in codes:
            assert (vocabulary, code) in mapped or ("LOCAL", code) in mapped, (vocabulary, code)
    tumours = read_site_file(out / "ch_est" / "tumeur_part0000.parquet", "ch_est").to_pylist()
    for t in tumours:
        assert ("ICDO3", f"{t['morphologie']}-{t['topographie']}") in mapped, t


def test_every_local_code_written_by_clcc_sud_is_in_its_code_list(small_run, concepts):
    out, _ = small_run
    listed = {c.local_code: c for c in local_codes().values()}
    for pattern, column in [
        ("diagnoses_*", "local_code"),
        ("tumors_*", "local_code"),
        ("tumors_*", "histology_code"),
        ("biomarkers_*", "marker_code"),
        ("medications_*", "drug_code"),
        ("procedures_*", "procedure_code"),
        ("lab_results_*", "test_code"),
    ]:
        codes = _distinct(out, "clcc_sud", pattern, column)
        assert codes
        for code in codes:
            target = listed[code]
            key = (target.target_vocabulary_id, target.target_concept_code)
            assert key in concepts or key in EXPECTED_GAPS or target.domain == "histology", target
