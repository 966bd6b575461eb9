"""Cohort services on a small hand-made OMOP dataset whose expected results are worked out by hand."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from cohort_omop import concept_rows, day

from massalia.engine import Engine
from massalia.health.cohorts import import_circe
from massalia.health.cohorts.explain import explain_person
from massalia.health.cohorts.service import (
    CohortAnalysis,
    analyze_cohort,
    cohort_breakdowns,
    generate_and_analyze,
    generate_cohort,
)

BREAST, CHEMO, LAB = 10, 20, 30
CS = [
    {
        "id": 0,
        "name": "breast cancer",
        "expression": {"items": [{"concept": {"CONCEPT_ID": BREAST}, "includeDescendants": True}]},
    },
    {"id": 1, "name": "chemotherapy", "expression": {"items": [{"concept": {"CONCEPT_ID": CHEMO}}]}},
]


def window(before: int | None, after: int | None) -> dict[str, Any]:
    return {"Start": {"Days": before, "Coeff": -1}, "End": {"Days": after, "Coeff": 1}}


DEFINITION = {
    "ConceptSets": CS,
    "PrimaryCriteria": {
        "CriteriaList": [{"ConditionOccurrence": {"CodesetId": 0, "First": True}}],
        "ObservationWindow": {"PriorDays": 30, "PostDays": 0},
        "PrimaryCriteriaLimit": {"Type": "First"},
    },
    "InclusionRules": [
        {
            "name": "women",
            "expression": {"Type": "ALL", "DemographicCriteriaList": [{"Gender": [{"CONCEPT_ID": 8532}]}]},
        },
        {
            "name": "chemo within 3 days before to 10 after",
            "expression": {
                "Type": "ALL",
                "CriteriaList": [
                    {
                        "Criteria": {"DrugExposure": {"CodesetId": 1}},
                        "StartWindow": window(3, 10),
                        "Occurrence": {"Type": 2, "Count": 1},
                    }
                ],
            },
        },
    ],
    "EndStrategy": {"DateOffset": {"DateField": "StartDate", "Offset": 100}},
    "CollapseSettings": {"CollapseType": "ERA", "EraPad": 0},
}


def dataset() -> dict[str, list[dict[str, Any]]]:
    """Person 1: woman, chemo exactly 3 days before → in. Person 2: woman, chemo 4 days before → out (rule 2).
    Person 3: man, chemo same day → out (rule 1). Person 4: woman, too little prior observation → not an entry.
    Person 5: woman, chemo 10 days after, observation ends 50 days after → in, exit capped at day 150."""
    persons = [(1, 8532), (2, 8532), (3, 8507), (4, 8532), (5, 8532)]
    rows: dict[str, list[dict[str, Any]]] = concept_rows({BREAST: [BREAST, 11], CHEMO: [CHEMO]})
    rows["care_site"] = [{"care_site_id": 1, "care_site_name": "CLCC Sud"}]
    rows["person"] = [
        {
            "person_id": p,
            "gender_concept_id": g,
            "year_of_birth": 1960,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
            "care_site_id": 1,
        }
        for p, g in persons
    ]
    op_start = {1: 0, 2: 0, 3: 0, 4: 80, 5: 0}
    op_end = {1: 400, 2: 400, 3: 400, 4: 400, 5: 150}
    rows["observation_period"] = [
        {
            "observation_period_id": p,
            "person_id": p,
            "observation_period_start_date": day(op_start[p]),
            "observation_period_end_date": day(op_end[p]),
            "period_type_concept_id": 0,
        }
        for p, _ in persons
    ]
    rows["condition_occurrence"] = [
        {
            "condition_occurrence_id": p,
            "person_id": p,
            "condition_concept_id": 11 if p == 5 else BREAST,
            "condition_start_date": day(100),
            "condition_type_concept_id": 0,
        }
        for p, _ in persons
    ]
    chemo_day = {1: 97, 2: 96, 3: 100, 4: 100, 5: 110}
    rows["drug_exposure"] = [
        {
            "drug_exposure_id": p,
            "person_id": p,
            "drug_concept_id": CHEMO,
            "drug_exposure_start_date": day(d),
            "drug_exposure_end_date": day(d),
            "drug_type_concept_id": 0,
        }
        for p, d in chemo_day.items()
    ]
    return rows


Loader = Callable[[Engine, Any], None]


def test_generate_matches_hand_worked_cohort(engine: Engine, load_omop: Loader) -> None:
    load_omop(engine, dataset())
    definition = import_circe(DEFINITION)
    generation = generate_cohort(engine, definition, cohort_definition_id=7)
    rows = engine.query("SELECT subject_id, cohort_start_date, cohort_end_date FROM cohort ORDER BY subject_id")
    assert rows.to_pylist() == [
        {"subject_id": 1, "cohort_start_date": day(100), "cohort_end_date": day(200)},
        {"subject_id": 5, "cohort_start_date": day(100), "cohort_end_date": day(150)},
    ]
    assert (generation.persons, generation.rows) == (2, 2)
    assert generation.definition_hash == definition.definition_hash()
    assert generation.vocabulary_version == "unknown" and len(generation.data_version) == 16
    recorded = engine.query("SELECT definition_hash FROM cohort_generation WHERE cohort_definition_id = 7")
    assert recorded.column(0).to_pylist() == [definition.definition_hash()]
    # determinism: same definition, same data, same rows; a second id leaves the first alone
    generate_cohort(engine, definition, cohort_definition_id=8)
    again = engine.query(
        "SELECT subject_id, cohort_start_date, cohort_end_date FROM cohort"
        " WHERE cohort_definition_id = 8 ORDER BY subject_id"
    )
    assert again.to_pylist() == rows.to_pylist()
    assert engine.row_count("cohort") == 4


def test_one_pass_generation_equals_generate_then_analyze(engine: Engine, load_omop: Loader) -> None:
    """``generate_and_analyze`` (steps run once, kept in a temporary table) = the two separate calls."""
    load_omop(engine, dataset())
    definition = import_circe(DEFINITION)
    separate = generate_cohort(engine, definition, cohort_definition_id=3)
    select = "SELECT subject_id, cohort_start_date, cohort_end_date FROM cohort ORDER BY subject_id"
    expected_rows = engine.query(select)
    expected = analyze_cohort(engine, definition, threshold=1)
    for materialize in (None, False) if engine.name == "spark" else (None, True, False):  # Spark: no temp tables
        generation, analysis = generate_and_analyze(engine, definition, 3, threshold=1, materialize=materialize)
        rows = engine.query(select)
        assert rows.to_pylist() == expected_rows.to_pylist()
        assert (generation.persons, generation.rows) == (separate.persons, separate.rows) == (2, 2)
        assert generation.data_version == separate.data_version
        assert np.array_equal(analysis.person_id, expected.person_id)
        assert np.array_equal(analysis.mask, expected.mask)
        assert analysis.attrition() == expected.attrition()
    # one provenance row per cohort id, however often it is generated
    recorded = engine.query("SELECT cohort_definition_id, persons, cohort_table FROM cohort_generation").to_pylist()
    assert recorded == [{"cohort_definition_id": 3, "persons": 2, "cohort_table": "cohort"}]
    assert not [t for t in engine.list_tables() if t.startswith(("massalia_qualified", "c_", "stg_"))]


@pytest.mark.parametrize("engine", ["duckdb", "postgres"], indirect=True)
def test_failed_generation_keeps_the_previous_rows(engine: Engine, load_omop: Loader) -> None:
    """The rows of a cohort id and its provenance change together or not at all."""
    load_omop(engine, dataset())
    definition = import_circe(DEFINITION)
    generate_cohort(engine, definition, cohort_definition_id=5)
    before = engine.query("SELECT * FROM cohort ORDER BY subject_id").to_pylist()
    provenance = engine.query("SELECT * FROM cohort_generation").to_pylist()

    def failing(*args: object, **kwargs: object) -> int:  # the provenance row is the last write
        raise RuntimeError("disk full")

    engine.insert = failing  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="disk full"):
        generate_and_analyze(engine, import_circe({**DEFINITION, "InclusionRules": []}), 5)
    del engine.insert
    assert engine.query("SELECT * FROM cohort ORDER BY subject_id").to_pylist() == before
    assert engine.query("SELECT * FROM cohort_generation").to_pylist() == provenance


def test_attrition_what_if_and_explain(duckdb_engine: Engine, load_omop: Loader) -> None:
    load_omop(duckdb_engine, dataset())
    definition = import_circe(DEFINITION)
    analysis = analyze_cohort(duckdb_engine, definition, threshold=1)
    base, rules = analysis.attrition()
    assert (base.persons, base.events) == (4, 4)  # person 4 lacks 30 days of prior observation
    assert [(r.persons_cumulative, r.persons_alone) for r in rules] == [(3, 3), (2, 3)]
    assert analysis.count().persons == 2
    assert analysis.count([False, True]).persons == 3  # drop "women": the man with chemo comes in
    assert analysis.count([False, False]).persons == 4
    # the domain counts are exact; what a caller sees is released by the guarded services
    assert analyze_cohort(duckdb_engine, definition).count().persons == 2

    why = explain_person(duckdb_engine, definition, 2)
    assert not why.in_cohort
    (event,) = why.events
    assert [rule.satisfied for rule in event.rules] == [True, False]
    assert event.rules[1].evidence[0].records == []  # chemo 4 days before: outside the window
    why = explain_person(duckdb_engine, definition, 1)
    assert why.in_cohort and why.events[0].rules[1].evidence[0].records[0]["start_date"] == day(97)


def test_breakdowns_have_fixed_cells(duckdb_engine: Engine, load_omop: Loader) -> None:
    load_omop(duckdb_engine, dataset())
    generate_cohort(duckdb_engine, import_circe(DEFINITION))
    raw = cohort_breakdowns(duckdb_engine)
    assert raw["sex"] == {"FEMALE": 2, "MALE": 0, "unknown": 0}
    # Every age band and every care site is a cell, empty or not: which cells exist says nothing.
    assert raw["age_band"]["60-69"] == 2 and sum(raw["age_band"].values()) == 2
    assert set(raw["age_band"]) == {"0-17", "18-39", "40-49", "50-59", "60-69", "70-79", "80+", "unknown"}
    assert raw["site"]["CLCC Sud"] == 2 and "unknown" in raw["site"] and sum(raw["site"].values()) == 2


def test_what_if_toggle_is_fast_at_scale() -> None:
    rng = np.random.default_rng(1)
    events = 1_000_000  # about 100,000 patients with 10 qualified events each
    analysis = CohortAnalysis(
        rule_names=[f"r{i}" for i in range(8)],
        person_id=rng.integers(0, 100_000, events),
        start_date=rng.integers(0, 5_000, events).astype(np.int32),
        mask=rng.integers(0, 256, events),
        limit="first",
    )
    started = time.perf_counter()
    counts = [analysis.count([i != j for i in range(8)]) for j in range(8)]
    per_toggle = (time.perf_counter() - started) / 8
    assert all(c.persons is not None and 0 < c.persons <= 100_000 for c in counts)
    assert per_toggle < 0.2, f"a what-if toggle took {per_toggle * 1000:.0f} ms"
