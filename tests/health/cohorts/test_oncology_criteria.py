"""Oncology criteria on a small hand-made OMOP fixture: exact persons, identical rows on every engine.

Four persons, each record placed so that one criterion attribute decides (see ``ROWS``): person 1
breast cancer (ICD-O-3 concept) stage II, cN1, pT2, HER2+, a first line with trastuzumab then
hormone therapy; person 2 colon cancer stage IV (cM1, cN0), EGFR-, PD-L1 60 %, line 1, a progression,
line 2 of immunotherapy; person 3 breast cancer coded in SNOMED with an ICD-O-3 source value, then
a colon cancer, "stage III" and pN0 from source values only, PD-L1 10 %, a recurrence; person 4 a
breast cancer diagnosis that is no tumour record (no disease episode).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pyarrow as pa
import pytest
from cohort_omop import day, omop_tables
from hypothesis import given, settings
from hypothesis import strategies as st

from massalia.engine import Engine
from massalia.health.cohorts import CirceExportError, CohortDefinition, import_circe, to_circe
from massalia.health.cohorts.criteria import Biomarker, CancerDiagnosis, DiseaseProgression, TnmStage, TreatmentLine
from massalia.health.cohorts.explain import explain_person
from massalia.health.cohorts.lint import lint
from massalia.health.cohorts.service import generate_cohort
from massalia.health.omop.schema import cdm_table

BREAST_ICDO, COLON_ICDO, BREAST_SNOMED = 101, 102, 103
T2, M1, STAGE4, STAGE2, N1_CLINICAL = 201, 202, 203, 204, 205
HER2, EGFR = 301, 302
DOCETAXEL, TRASTUZUMAB, TAMOXIFEN = 401, 402, 403
FEMALE, MALE = 8532, 8507
TUMOUR_FIELD, DRUG_FIELD = 1147127, 1147094


def _concept(concept_id: int, code: str, vocabulary: str, domain: str = "Condition") -> dict[str, Any]:
    return {
        "concept_id": concept_id,
        "concept_name": code,
        "domain_id": domain,
        "vocabulary_id": vocabulary,
        "concept_class_id": "Test",
        "concept_code": code,
        "valid_start_date": day(0),
        "valid_end_date": dt.date(2099, 12, 31),
    }


CONCEPTS = [
    _concept(BREAST_ICDO, "8500/3-C50.9", "ICDO3"),
    _concept(COLON_ICDO, "8140/3-C18.7", "ICDO3"),
    _concept(BREAST_SNOMED, "254837009", "SNOMED"),
    _concept(T2, "AJCC/UICC-T2", "Cancer Modifier", "Measurement"),
    _concept(M1, "AJCC/UICC-M1", "Cancer Modifier", "Measurement"),
    _concept(STAGE4, "Stage-4", "Cancer Modifier", "Measurement"),
    _concept(STAGE2, "Stage-2", "Cancer Modifier", "Measurement"),
    _concept(N1_CLINICAL, "c-8th_AJCC/UICC-N1", "Cancer Modifier", "Measurement"),
    _concept(HER2, "85319-2", "LOINC", "Measurement"),
    _concept(EGFR, "3236", "OMOP Genomic", "Measurement"),
    _concept(DOCETAXEL, "72962", "RxNorm", "Drug"),
    _concept(TRASTUZUMAB, "224905", "RxNorm", "Drug"),
    _concept(TAMOXIFEN, "10324", "RxNorm", "Drug"),
]


def _tumour(cid: int, person: int, concept: int, offset: int, source: str) -> dict[str, Any]:
    return {
        "condition_occurrence_id": cid,
        "person_id": person,
        "condition_concept_id": concept,
        "condition_start_date": day(offset),
        "condition_type_concept_id": 32817,
        "condition_source_value": source,
    }


def _stage(mid: int, person: int, concept: int, offset: int, source: str, tumour: int) -> dict[str, Any]:
    return {
        "measurement_id": mid,
        "person_id": person,
        "measurement_concept_id": concept,
        "measurement_date": day(offset),
        "measurement_type_concept_id": 32817,
        "measurement_source_value": source,
        "measurement_event_id": tumour,
        "meas_event_field_concept_id": TUMOUR_FIELD,
    }


def _marker(
    mid: int,
    person: int,
    concept: int,
    offset: int,
    source: str,
    *,
    status: int | None = None,
    number: float | None = None,
    tumour: int | None = None,
) -> dict[str, Any]:
    return {
        "measurement_id": mid,
        "person_id": person,
        "measurement_concept_id": concept,
        "measurement_date": day(offset),
        "measurement_type_concept_id": 32817,
        "measurement_source_value": source,
        "value_as_concept_id": status,
        "value_as_number": number,
        "measurement_event_id": tumour,
        "meas_event_field_concept_id": TUMOUR_FIELD if tumour else None,
    }


def _episode(
    eid: int,
    person: int,
    concept: int,
    start: int,
    end: int | None,
    number: int | None,
    source: str,
    parent: int | None = None,
) -> dict[str, Any]:
    return {
        "episode_id": eid,
        "person_id": person,
        "episode_concept_id": concept,
        "episode_start_date": day(start),
        "episode_end_date": day(end) if end is not None else None,
        "episode_parent_id": parent,
        "episode_number": number,
        "episode_object_concept_id": 0,
        "episode_type_concept_id": 32817,
        "episode_source_value": source,
    }


def _drug(did: int, person: int, concept: int, offset: int) -> dict[str, Any]:
    return {
        "drug_exposure_id": did,
        "person_id": person,
        "drug_concept_id": concept,
        "drug_exposure_start_date": day(offset),
        "drug_exposure_end_date": day(offset),
        "drug_type_concept_id": 32817,
    }


ROWS: dict[str, list[dict[str, Any]]] = {
    "person": [
        {
            "person_id": 1,
            "gender_concept_id": FEMALE,
            "year_of_birth": 1960,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
        },
        {
            "person_id": 2,
            "gender_concept_id": MALE,
            "year_of_birth": 1950,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
        },
        {
            "person_id": 3,
            "gender_concept_id": FEMALE,
            "year_of_birth": 1980,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
        },
        {
            "person_id": 4,
            "gender_concept_id": MALE,
            "year_of_birth": 1970,
            "race_concept_id": 0,
            "ethnicity_concept_id": 0,
        },
    ],
    "observation_period": [
        {
            "observation_period_id": p,
            "person_id": p,
            "observation_period_start_date": day(-365),
            "observation_period_end_date": day(1400),
            "period_type_concept_id": 32817,
        }
        for p in (1, 2, 3, 4)
    ],
    "condition_occurrence": [
        _tumour(1001, 1, BREAST_ICDO, 9, "8500/3-C50.9"),
        _tumour(1002, 2, COLON_ICDO, 20, "8140/3-C18.7"),
        _tumour(1003, 3, BREAST_SNOMED, 5, "8500/3-C50.4"),
        _tumour(1004, 3, COLON_ICDO, 400, "8140/3-C18.7"),
        _tumour(1005, 4, BREAST_ICDO, 30, "8500/3-C50.9"),  # no disease episode: not a tumour record
    ],
    "measurement": [
        _stage(2001, 1, STAGE2, 9, "stade II", 1001),
        _stage(2002, 1, 0, 9, "cN1", 1001),
        _stage(2003, 1, T2, 9, "pT2", 1001),
        _marker(2004, 1, HER2, 12, "85319-2", status=9191, tumour=1001),
        _stage(2011, 2, STAGE4, 20, "stade IV", 1002),
        _stage(2012, 2, M1, 20, "cM1", 1002),
        _stage(2013, 2, 0, 20, "cN0", 1002),
        _marker(2014, 2, EGFR, 25, "MOL-EGFR", status=9189, tumour=1002),
        _marker(2015, 2, 0, 25, "MOL-PDL1", number=60.0, tumour=1002),
        _stage(2021, 3, 0, 5, "stage III", 1003),
        _stage(2022, 3, 0, 5, "pN0", 1003),
        _marker(2023, 3, 0, 8, "BM-PDL1", number=10.0, tumour=1003),
        _stage(2024, 3, N1_CLINICAL, 400, "cN1", 1004),
    ],
    "drug_exposure": [
        _drug(7001, 1, DOCETAXEL, 40),
        _drug(7002, 1, TRASTUZUMAB, 40),
        _drug(7003, 1, DOCETAXEL, 61),
        _drug(7004, 1, TAMOXIFEN, 150),
        _drug(7011, 2, DOCETAXEL, 30),
        _drug(7012, 2, DOCETAXEL, 230),
    ],
    "episode": [
        _episode(5001, 1, 32528, 9, None, None, "T1"),
        _episode(5002, 2, 32528, 20, None, None, "T2"),
        _episode(5003, 3, 32528, 5, None, None, "T3"),
        _episode(5004, 3, 32528, 400, None, None, "T4"),
        _episode(6001, 1, 32531, 40, 61, 1, "chemotherapy+targeted", 5001),
        _episode(6002, 1, 32531, 150, 150, None, "hormone", 5001),
        _episode(6011, 2, 32531, 30, 30, 1, "chemotherapy", 5002),
        _episode(6012, 2, 32677, 200, None, 1, "progression: secondary malignant neoplasm", 5002),
        _episode(6013, 2, 32531, 230, 230, 2, "immunotherapy", 5002),
        _episode(6021, 3, 32529, 300, None, 1, "recurrence", 5003),
    ],
    "episode_event": [
        *(
            {"episode_id": e, "event_id": c, "episode_event_field_concept_id": TUMOUR_FIELD}
            for e, c in ((5001, 1001), (5002, 1002), (5003, 1003), (5004, 1004))
        ),
        *(
            {"episode_id": e, "event_id": d, "episode_event_field_concept_id": DRUG_FIELD}
            for e, d in ((6001, 7001), (6001, 7002), (6001, 7003), (6002, 7004), (6011, 7011), (6013, 7012))
        ),
    ],
    "concept": CONCEPTS,
    "concept_ancestor": [
        {
            "ancestor_concept_id": c["concept_id"],
            "descendant_concept_id": c["concept_id"],
            "min_levels_of_separation": 0,
            "max_levels_of_separation": 0,
        }
        for c in CONCEPTS
    ],
}


def load(engine: Engine) -> None:
    for name, table in omop_tables(ROWS).items():
        engine.create_table(name, table)
    for name in ("episode", "episode_event"):
        schema = cdm_table(name).arrow_schema()
        rows = ROWS[name]
        engine.create_table(
            name,
            pa.table({f.name: pa.array([r.get(f.name) for r in rows], type=f.type) for f in schema}, schema=schema),
        )


def concept_set(codeset_id: int, *concept_ids: int) -> dict[str, Any]:
    return {
        "id": codeset_id,
        "name": f"set {codeset_id}",
        "expression": {"items": [{"concept": {"CONCEPT_ID": c}} for c in concept_ids]},
    }


def entry(criterion: dict[str, Any], *concept_sets: dict[str, Any]) -> dict[str, Any]:
    return {"concept_sets": list(concept_sets), "primary_criteria": {"criteria_list": [criterion]}}


def window(before: int | None, after: int | None) -> dict[str, Any]:
    return {"start": {"days": before, "coeff": -1}, "end": {"days": after, "coeff": 1}}


def rule(name: str, *items: dict[str, Any], kind: str = "ALL") -> dict[str, Any]:
    return {"name": name, "expression": {"type": kind, "criteria_list": list(items)}}


CASES: dict[str, tuple[dict[str, Any], set[int]]] = {
    "topography C50 (ICD-O-3 concept or source value)": (
        entry({"kind": "CancerDiagnosis", "topography": ["C50"]}),
        {1, 3},
    ),
    "first cancer is colon": (entry({"kind": "CancerDiagnosis", "topography": ["C18"], "first": True}), {2}),
    "any colon cancer": (entry({"kind": "CancerDiagnosis", "topography": ["C18.7"]}), {2, 3}),
    "histology 8500, behaviour 3": (
        entry({"kind": "CancerDiagnosis", "histology": ["8500"], "behaviour": ["3"]}),
        {1, 3},
    ),
    "age at diagnosis >= 60": (entry({"kind": "CancerDiagnosis", "age": {"op": "gte", "value": 60}}), {1, 2}),
    "diagnosed before day 10, women": (
        entry(
            {
                "kind": "CancerDiagnosis",
                "gender": [{"CONCEPT_ID": FEMALE}],
                "occurrence_start_date": {"op": "lt", "value": str(day(10))},
            }
        ),
        {1, 3},
    ),
    "diagnosis concept set": (entry({"kind": "CancerDiagnosis", "codeset_id": 1}, concept_set(1, BREAST_SNOMED)), {3}),
    "stage group >= III": (entry({"kind": "TnmStage", "axis": "group", "value": {"op": "gte", "value": 3}}), {2, 3}),
    "stage group II": (entry({"kind": "TnmStage", "axis": "group", "value": {"op": "eq", "value": 2}}), {1}),
    "M1": (entry({"kind": "TnmStage", "axis": "M", "value": {"op": "eq", "value": 1}}), {2}),
    "clinical N+": (
        entry({"kind": "TnmStage", "axis": "N", "staging": "clinical", "value": {"op": "gte", "value": 1}}),
        {1, 3},
    ),
    "clinical N+ of a breast cancer": (
        entry(
            {
                "kind": "TnmStage",
                "axis": "N",
                "staging": "clinical",
                "value": {"op": "gte", "value": 1},
                "cancer_codeset_id": 1,
            },
            concept_set(1, BREAST_ICDO, BREAST_SNOMED),
        ),
        {1},
    ),
    "pathological N": (entry({"kind": "TnmStage", "axis": "N", "staging": "pathological"}), {3}),
    "pathological T2": (
        entry({"kind": "TnmStage", "axis": "T", "staging": "pathological", "value": {"op": "eq", "value": 2}}),
        {1},
    ),
    "HER2 positive": (entry({"kind": "Biomarker", "codeset_id": 1, "status": "positive"}, concept_set(1, HER2)), {1}),
    "EGFR negative": (
        entry({"kind": "Biomarker", "codeset_id": 1, "value_as_concept": [{"CONCEPT_ID": 9189}]}, concept_set(1, EGFR)),
        {2},
    ),
    "PD-L1 >= 50 %": (
        entry(
            {
                "kind": "Biomarker",
                "marker_source_value": {"op": "endsWith", "text": "PDL1"},
                "value_as_number": {"op": "gte", "value": 50},
            }
        ),
        {2},
    ),
    "any PD-L1 of a breast cancer": (
        entry(
            {"kind": "Biomarker", "marker_source_value": {"op": "contains", "text": "PDL1"}, "cancer_codeset_id": 1},
            concept_set(1, BREAST_SNOMED),
        ),
        {3},
    ),
    "second line": (entry({"kind": "TreatmentLine", "line": {"op": "gte", "value": 2}}), {2}),
    "first line": (entry({"kind": "TreatmentLine", "line": {"op": "eq", "value": 1}}), {1, 2}),
    "hormone or immunotherapy": (entry({"kind": "TreatmentLine", "modality": ["hormone", "immunotherapy"]}), {1, 2}),
    "regimen with trastuzumab": (entry({"kind": "TreatmentLine", "codeset_id": 1}, concept_set(1, TRASTUZUMAB)), {1}),
    "line ended by day 60": (
        entry({"kind": "TreatmentLine", "occurrence_end_date": {"op": "lte", "value": str(day(60))}}),
        {2},
    ),
    "progression or recurrence": (entry({"kind": "DiseaseProgression"}), {2, 3}),
    "progression after day 250": (
        entry(
            {
                "kind": "DiseaseProgression",
                "number": {"op": "eq", "value": 1},
                "occurrence_start_date": {"op": "gt", "value": str(day(250))},
            }
        ),
        {3},
    ),
    "first cancer, second line within 2 years": (
        {
            "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "first": True}]},
            "inclusion_rules": [
                rule(
                    "line 2",
                    {
                        "criteria": {"kind": "TreatmentLine", "line": {"op": "gte", "value": 2}},
                        "start_window": window(0, 730),
                    },
                )
            ],
        },
        {2},
    ),
    "HER2+ around diagnosis or M1 within 30 days (nested group)": (
        {
            "concept_sets": [concept_set(1, HER2)],
            "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "first": True}]},
            "inclusion_rules": [
                {
                    "name": "any",
                    "expression": {
                        "type": "ALL",
                        "groups": [
                            {
                                "type": "ANY",
                                "criteria_list": [
                                    {
                                        "criteria": {"kind": "Biomarker", "codeset_id": 1, "status": "positive"},
                                        "start_window": window(30, 60),
                                    },
                                    {
                                        "criteria": {
                                            "kind": "TnmStage",
                                            "axis": "M",
                                            "value": {"op": "eq", "value": 1},
                                        },
                                        "start_window": window(0, 30),
                                    },
                                ],
                            }
                        ],
                    },
                }
            ],
        },
        {1, 2},
    ),
    "no progression within a year": (
        {
            "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "first": True}]},
            "inclusion_rules": [
                rule(
                    "no progression",
                    {
                        "criteria": {"kind": "DiseaseProgression"},
                        "start_window": window(0, 365),
                        "occurrence": {"type": 0, "count": 0},
                    },
                )
            ],
        },
        {1},
    ),
    "stage group and N recorded at diagnosis": (
        {
            "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis"}]},
            "inclusion_rules": [
                rule(
                    "group and N",
                    *(
                        {
                            "criteria": {"kind": "TnmStage", "axis": axis},
                            "start_window": window(0, 0),
                            "occurrence": {"type": 2, "count": 1},
                        }
                        for axis in ("group", "N")
                    ),
                )
            ],
        },
        {1, 2, 3},
    ),
    "stage IV as a nested criterion of the diagnosis": (
        entry(
            {
                "kind": "CancerDiagnosis",
                "correlated_criteria": {
                    "type": "ALL",
                    "criteria_list": [
                        {
                            "criteria": {"kind": "TnmStage", "axis": "group", "value": {"op": "eq", "value": 4}},
                            "start_window": window(0, 0),
                        }
                    ],
                },
            }
        ),
        {2},
    ),
}


def persons(engine: Engine, definition: dict[str, Any]) -> list[tuple[Any, ...]]:
    generate_cohort(engine, CohortDefinition.model_validate(definition), cohort_definition_id=3)
    rows = engine.query(
        "SELECT subject_id, cohort_start_date, cohort_end_date FROM cohort "
        "WHERE cohort_definition_id = 3 ORDER BY subject_id, cohort_start_date"
    ).to_pylist()
    return [(r["subject_id"], r["cohort_start_date"], r["cohort_end_date"]) for r in rows]


@pytest.fixture(scope="module")
def duck_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Every case's cohort rows on DuckDB (the reference the other engines must reproduce)."""
    from massalia.engine.duckdb import DuckDBEngine

    with DuckDBEngine() as engine:
        load(engine)
        return {name: persons(engine, definition) for name, (definition, _) in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_each_criterion_selects_the_expected_persons(name: str, duck_rows: dict[str, list[tuple[Any, ...]]]) -> None:
    _, wanted = CASES[name]
    assert {row[0] for row in duck_rows[name]} == wanted


@pytest.mark.parametrize(
    "engine",
    [pytest.param(name, marks=getattr(pytest.mark, name), id=name) for name in ("postgres", "spark")],
    indirect=True,
)
def test_identical_rows_on_every_engine(engine: Engine, duck_rows: dict[str, list[tuple[Any, ...]]]) -> None:
    """PostgreSQL (materialized steps) and Spark give DuckDB's rows."""
    load(engine)
    # Spark starts a job per step: one small case there, every case on PostgreSQL.
    names = ["stage group >= III"] if engine.name == "spark" else list(CASES)
    for name in names:
        assert persons(engine, CASES[name][0]) == duck_rows[name], name


def test_explain_person_shows_the_evidence_records(duckdb_engine: Engine) -> None:
    load(duckdb_engine)
    definition = CohortDefinition.model_validate(CASES["first cancer, second line within 2 years"][0])
    explanation = explain_person(duckdb_engine, definition, 2)
    assert explanation.in_cohort
    (evidence,) = explanation.events[0].rules[0].evidence
    assert [r["record_id"] for r in evidence.records] == [6013]
    assert evidence.description.startswith("TreatmentLine")
    assert not explain_person(duckdb_engine, definition, 1).in_cohort


def test_circe_export_refuses_oncology_criteria_by_name() -> None:
    definition = CohortDefinition.model_validate(CASES["HER2+ around diagnosis or M1 within 30 days (nested group)"][0])
    with pytest.raises(CirceExportError) as error:
        to_circe(definition)
    paths = [path for path, _ in error.value.problems]
    assert paths == [
        "$.primary_criteria.criteria_list[0]",
        "$.inclusion_rules[0].expression.groups[0].criteria_list[0].criteria",
        "$.inclusion_rules[0].expression.groups[0].criteria_list[1].criteria",
    ]
    assert "CancerDiagnosis" in str(error.value) and "TnmStage" in str(error.value)
    # Circe JSON cannot carry them in either direction.
    with pytest.raises(ValueError, match="TnmStage"):
        import_circe({"PrimaryCriteria": {"CriteriaList": [{"TnmStage": {"axis": "M"}}]}})


def test_lint_reports_impossible_stages_and_lines() -> None:
    definition = CohortDefinition.model_validate(
        {
            "primary_criteria": {
                "criteria_list": [
                    {"kind": "TnmStage", "axis": "M", "value": {"op": "gte", "value": 2}},
                    {"kind": "TreatmentLine", "line": {"op": "lt", "value": 1}},
                    {"kind": "TnmStage", "axis": "T", "value": {"op": "bt", "value": 2, "extent": 4}},
                ]
            }
        }
    )
    findings = {(f.code, f.path) for f in lint(definition)}
    assert ("impossible-stage", "$.primary_criteria.criteria_list[0].value") in findings
    assert ("impossible-line", "$.primary_criteria.criteria_list[1].line") in findings
    assert not any(
        path.startswith("$.primary_criteria.criteria_list[2].")
        for code, path in findings
        if code.startswith("impossible")
    )
    assert sum(code == "not-circe-exportable" for code, _ in findings) == 3
    assert not any(code == "missing-concept-set" for code, _ in findings)


def test_bad_icdo3_codes_are_refused_with_their_value() -> None:
    with pytest.raises(ValueError, match="topography 'breast'"):
        CancerDiagnosis(topography=["breast"])
    with pytest.raises(ValueError, match="histology '85000/3'"):
        CancerDiagnosis(histology=["85000/3"])


ranges = st.builds(
    lambda op, v: {"op": op, "value": v}, st.sampled_from(["lt", "lte", "eq", "gt", "gte"]), st.integers(0, 4)
)
oncology_criteria = st.one_of(
    st.builds(
        lambda t, h, first: {"kind": "CancerDiagnosis", "topography": t, "histology": h, "first": first},
        st.lists(st.sampled_from(["C50", "C18.7", "C34"]), max_size=2) | st.none(),
        st.lists(st.sampled_from(["8500/3", "814"]), max_size=2) | st.none(),
        st.booleans() | st.none(),
    ),
    st.builds(
        lambda axis, v, s: {"kind": "TnmStage", "axis": axis, "value": v, "staging": s},
        st.sampled_from(["T", "N", "M", "group"]),
        ranges | st.none(),
        st.sampled_from(["clinical", "pathological"]) | st.none(),
    ),
    st.builds(
        lambda status, v: {
            "kind": "Biomarker",
            "status": status,
            "value_as_number": v,
            "marker_source_value": {"op": "contains", "text": "PDL1"},
        },
        st.sampled_from(["positive", "negative"]) | st.none(),
        ranges | st.none(),
    ),
    st.builds(
        lambda line, m: {"kind": "TreatmentLine", "line": line, "modality": m},
        ranges | st.none(),
        st.lists(st.sampled_from(["chemotherapy", "targeted", "immunotherapy", "hormone"]), max_size=2) | st.none(),
    ),
    st.builds(lambda n: {"kind": "DiseaseProgression", "number": n}, ranges | st.none()),
)


@settings(max_examples=60, deadline=None)
@given(entry_criterion=oncology_criteria, correlated=oncology_criteria, before=st.integers(0, 400))
def test_massalia_json_round_trips(entry_criterion: dict[str, Any], correlated: dict[str, Any], before: int) -> None:
    definition = CohortDefinition.model_validate(
        {
            "primary_criteria": {"criteria_list": [entry_criterion]},
            "inclusion_rules": [rule("r", {"criteria": correlated, "start_window": window(before, 30)})],
        }
    )
    assert CohortDefinition.from_json(definition.to_json()) == definition
    assert CohortDefinition.from_json(json.dumps(json.loads(definition.to_json()))) == definition
    assert isinstance(
        definition.primary_criteria.criteria_list[0],
        CancerDiagnosis | TnmStage | Biomarker | TreatmentLine | DiseaseProgression,
    )
