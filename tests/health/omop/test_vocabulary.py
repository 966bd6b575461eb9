"""Demo vocabulary: integrity of the shipped files, real ids, loading and look-ups on every engine."""

from __future__ import annotations

import csv
from importlib import resources
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from massalia.engine import Engine
from massalia.health.omop.athena import ATHENA_TABLES
from massalia.health.omop.vocabulary import (
    VOCABULARY_VERSION,
    concept_lookup,
    demo_vocabulary_tables,
    descendants,
    load_demo_vocabulary,
)

# Spark needs tens of seconds per multi-table load on this 2-core machine: slow there only.
EVERY_ENGINE_SPARK_SLOW = pytest.mark.parametrize(
    "engine",
    [
        pytest.param("duckdb", marks=pytest.mark.duckdb, id="duckdb"),
        pytest.param("postgres", marks=pytest.mark.postgres, id="postgres"),
        pytest.param("spark", marks=[pytest.mark.spark, pytest.mark.slow], id="spark"),
    ],
    indirect=True,
)


TABLES = demo_vocabulary_tables()
CONCEPTS = {row["concept_id"]: row for row in TABLES["concept"].to_pylist()}

# Concepts the synthetic generator and the ETL rely on: id -> (name, vocabulary, class, code, standard)
EXPECTED = {
    8507: ("MALE", "Gender", "Gender", "M", "S"),
    8532: ("FEMALE", "Gender", "Gender", "F", "S"),
    9201: ("Inpatient Visit", "Visit", "Visit", "IP", "S"),
    9202: ("Outpatient Visit", "Visit", "Visit", "OP", "S"),
    9203: ("Emergency Room Visit", "Visit", "Visit", "ER", "S"),
    32817: ("EHR", "Type Concept", "Type Concept", "OMOP4976890", "S"),
    32879: ("Registry", "Type Concept", "Type Concept", "OMOP4976952", "S"),
    32856: ("Lab", "Type Concept", "Type Concept", "OMOP4976929", "S"),
    32528: ("Disease First Occurrence", "Episode", "Disease Episode", "OMOP generated", "S"),
    32531: ("Treatment Regimen", "Episode", "Treatment Episode", "OMOP generated", "S"),
    32677: ("Disease Progression", "Episode", "Disease Episode", "OMOP4833075", "S"),
    32678: ("UTF-8", "Metadata", "Metadata", "OMOP generated", "S"),
    4112853: ("Malignant tumor of breast", "SNOMED", "Clinical Finding", "254837009", "S"),
    200962: ("Primary malignant neoplasm of prostate", "SNOMED", "Clinical Finding", "93974005", "S"),
    45547509: ("Malignant neoplasm of prostate", "ICD10", "ICD10 Hierarchy", "C61", None),
    1397599: ("cisplatin", "RxNorm", "Ingredient", "2555", "S"),
    1344905: ("carboplatin", "RxNorm", "Ingredient", "40048", "S"),
    1378382: ("paclitaxel", "RxNorm", "Ingredient", "56946", "S"),
    1387104: ("trastuzumab", "RxNorm", "Ingredient", "224905", "S"),
    45775965: ("pembrolizumab", "RxNorm", "Ingredient", "1547545", "S"),
    1436678: ("tamoxifen", "RxNorm", "Ingredient", "10324", "S"),
    3000963: ("Hemoglobin [Mass/volume] in Blood", "LOINC", "Lab Test", "718-7", "S"),
    3013603: ("Prostate specific Ag [Mass/volume] in Serum or Plasma", "LOINC", "Lab Test", "2857-1", "S"),
    36203168: (
        "Estrogen receptor Ag [Presence] in Breast cancer specimen by Immune stain",
        "LOINC", "Lab Test", "85337-4", "S",
    ),
    8713: ("gram per deciliter", "UCUM", "Unit", "g/dL", "S"),
    9191: ("Positive", "SNOMED", "Qualifier Value", "10828004", "S"),
    1635838: ("Stage 1", "Cancer Modifier", "Staging/Grading", "Stage-1", "S"),
    # ATC codes of the 2019-2021 revision (rows of a public OMOP ATC export) and the follow-up status.
    947949: ("irinotecan; parenteral", "ATC", "ATC 5th", "L01CE02", "C"),
    947969: ("olaparib; oral", "ATC", "ATC 5th", "L01XK01", "C"),
    947878: ("osimertinib; oral", "ATC", "ATC 5th", "L01EB04", "C"),
    4203711: ("Follow-up status", "SNOMED", "Clinical Finding", "308273005", "S"),
}  # fmt: skip


def _vocab_file(name: str) -> Path:
    return Path(str(resources.files("massalia.health.omop").joinpath("vocab", name)))


# -- the shipped files ----------------------------------------------------------------------------
def test_expected_concepts_are_present_with_their_real_attributes() -> None:
    for concept_id, (name, vocabulary, concept_class, code, standard) in EXPECTED.items():
        row = CONCEPTS[concept_id]
        got = (row["concept_name"], row["vocabulary_id"], row["concept_class_id"], row["concept_code"])
        assert got == (name, vocabulary, concept_class, code), concept_id
        assert row["standard_concept"] == standard, concept_id


def test_every_concept_has_a_recorded_source() -> None:
    with _vocab_file("concept_sources.csv").open(encoding="utf-8") as handle:
        sources = {int(row["concept_id"]): row["source"] for row in csv.DictReader(handle)}
    assert set(sources) == set(CONCEPTS)
    assert all(sources.values())


def test_all_cohort_concepts_are_included(reference: Path) -> None:
    with (reference / "phenotypes" / "concepts_from_cohorts.csv").open(encoding="utf-8") as handle:
        cohort_rows = list(csv.DictReader(handle))
    assert len(cohort_rows) == 520
    for row in cohort_rows:
        ours = CONCEPTS[int(row["concept_id"])]
        assert ours["concept_name"] == row["concept_name"]
        assert (ours["vocabulary_id"], ours["concept_code"]) == (row["vocabulary_id"], row["concept_code"])
        assert (ours["standard_concept"] or "") == (row["standard_concept"] if row["standard_concept"] != "N" else "")


def test_referential_integrity() -> None:
    ids = set(CONCEPTS)
    domains = set(TABLES["domain"]["domain_id"].to_pylist())
    classes = set(TABLES["concept_class"]["concept_class_id"].to_pylist())
    vocabularies = set(TABLES["vocabulary"]["vocabulary_id"].to_pylist())
    relationship_ids = set(TABLES["relationship"]["relationship_id"].to_pylist())
    for row in CONCEPTS.values():
        assert row["domain_id"] in domains and row["concept_class_id"] in classes
        assert row["vocabulary_id"] in vocabularies
        assert row["standard_concept"] in ("S", "C", None)
    relationships = TABLES["concept_relationship"].to_pylist()
    pairs = {(r["concept_id_1"], r["concept_id_2"], r["relationship_id"]) for r in relationships}
    reverse = {r["relationship_id"]: r["reverse_relationship_id"] for r in TABLES["relationship"].to_pylist()}
    for one, two, relationship in pairs:
        assert one in ids and two in ids and relationship in relationship_ids
        assert (two, one, reverse[relationship]) in pairs, "Athena ships both directions"
    for row in TABLES["concept_ancestor"].to_pylist():
        assert row["ancestor_concept_id"] in ids and row["descendant_concept_id"] in ids
        assert 0 <= row["min_levels_of_separation"] <= row["max_levels_of_separation"]
    standard = {cid for cid, row in CONCEPTS.items() if row["standard_concept"] in ("S", "C")}
    level0 = {
        r["ancestor_concept_id"] for r in TABLES["concept_ancestor"].to_pylist() if r["min_levels_of_separation"] == 0
    }
    assert level0 == standard


def test_maps_to_targets_are_standard() -> None:
    for row in TABLES["concept_relationship"].to_pylist():
        if row["relationship_id"] == "Maps to" and row["invalid_reason"] is None:
            assert CONCEPTS[row["concept_id_2"]]["standard_concept"] == "S", row


def test_version_row() -> None:
    rows = {row["vocabulary_id"]: row for row in TABLES["vocabulary"].to_pylist()}
    assert rows["None"]["vocabulary_version"] == VOCABULARY_VERSION


def test_atc_classes_are_ancestors_of_their_ingredients() -> None:
    below_egfr = descendants(TABLES, [947755])  # ATC L01EB
    assert {1325363, 1319193, 35605522} <= below_egfr  # erlotinib, gefitinib, osimertinib
    assert 1397599 not in below_egfr  # cisplatin


def test_lookups_on_arrow_tables() -> None:
    assert concept_lookup(TABLES, "ICD10", ["C61", "C50.9"]) == {"C61": (45547509, 200962)}
    assert concept_lookup(TABLES, "LOINC", ["718-7"]) == {"718-7": (3000963, 3000963)}
    assert concept_lookup(TABLES, "SNOMED", []) == {}
    prostate = descendants(TABLES, [200962])
    assert {200962, 4161028, 36528448} <= prostate  # itself, adenocarcinoma, an ICDO3 prostate tumour
    assert descendants(TABLES, [45547509]) == set(), "a source concept has no hierarchy"


VOCABULARY_CODES = sorted(
    {(row["vocabulary_id"], row["concept_code"]) for row in CONCEPTS.values()}, key=lambda pair: pair
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(VOCABULARY_CODES), min_size=1, max_size=8), st.text(max_size=6))
def test_lookup_returns_the_concept_of_each_code(picked: list[tuple[str, str]], noise: str) -> None:
    vocabulary = picked[0][0]
    codes = [code for vocab, code in picked if vocab == vocabulary] + [noise]
    found = concept_lookup(TABLES, vocabulary, codes)
    for code in set(codes):
        matches = sorted(
            cid for cid, r in CONCEPTS.items() if r["vocabulary_id"] == vocabulary and r["concept_code"] == code
        )
        if not matches:
            assert code not in found
            continue
        source_id, standard_id = found[code]
        assert source_id == matches[0]
        assert standard_id == 0 or CONCEPTS[standard_id]["standard_concept"] == "S"


# -- loading and look-ups on every engine ---------------------------------------------------------
@EVERY_ENGINE_SPARK_SLOW
def test_load_and_lookups_agree_on_every_engine(engine: Engine) -> None:
    counts = load_demo_vocabulary(engine)
    assert counts == {name: TABLES[name].num_rows for name in ATHENA_TABLES}
    assert engine.row_count("concept") == len(CONCEPTS)
    codes = {
        "ICD10": ["C61", "X99"],
        "RxNorm": ["2555", "40048", "224905"],
        "LOINC": ["718-7", "2857-1", "85337-4"],
        "ICDO3": ["8140/3-C61.9", "8041/3-C34.1"],
        "Gender": ["F", "M"],
    }
    for vocabulary, wanted in codes.items():
        assert concept_lookup(engine, vocabulary, wanted) == concept_lookup(TABLES, vocabulary, wanted), vocabulary
    for roots in ([200962], [4112853, 443388], [947753], [32817]):
        assert descendants(engine, roots) == descendants(TABLES, roots), roots
    # replacing is allowed and leaves one copy
    assert load_demo_vocabulary(engine)["concept"] == len(CONCEPTS)
    assert engine.row_count("concept") == len(CONCEPTS)
    column_types = {c.name: c.type for c in engine.describe("concept")}
    assert column_types["concept_id"] in ("INTEGER", "INT")


def test_demo_tables_are_typed_like_the_cdm() -> None:
    assert TABLES["concept"].schema.field("concept_id").type == pa.int32()
    assert TABLES["concept"].schema.field("valid_start_date").type == pa.date32()
    assert demo_vocabulary_tables() is not demo_vocabulary_tables()  # callers get their own mapping
