"""A tiny, clean OMOP warehouse for rule tests; each test breaks one rule in it."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from massalia.engine import Engine
from massalia.health.omop.schema import cdm_table

Rows = dict[str, list[dict[str, Any]]]

# (concept_id, name, domain, vocabulary, class, standard, code)
CONCEPTS = [
    (0, "No matching concept", "Metadata", "None", "Undefined", None, "No matching concept"),
    (8507, "MALE", "Gender", "Gender", "Gender", "S", "M"),
    (8532, "FEMALE", "Gender", "Gender", "Gender", "S", "F"),
    (9201, "Inpatient Visit", "Visit", "Visit", "Visit", "S", "IP"),
    (32817, "EHR", "Type Concept", "Type Concept", "Type Concept", "S", "OMOP4976890"),
    (201826, "Type 2 diabetes mellitus", "Condition", "SNOMED", "Clinical Finding", "S", "44054006"),
    (45576876, "Type 2 diabetes mellitus", "Condition", "ICD10CM", "4-char billing code", None, "E11.9"),
    (4112853, "Malignant tumor of breast", "Condition", "SNOMED", "Clinical Finding", "S", "254837009"),
    (443392, "Malignant neoplastic disease", "Condition", "SNOMED", "Clinical Finding", "S", "363346000"),
    (1378382, "paclitaxel", "Drug", "RxNorm", "Ingredient", "S", "56946"),
    (1378383, "paclitaxel 6 MG/ML Injectable Solution", "Drug", "RxNorm", "Clinical Drug", "S", "1790099"),
    (21601387, "ANTINEOPLASTIC AGENTS", "Drug", "ATC", "ATC 1st", "C", "L01"),
    (3013721, "Aspartate aminotransferase", "Measurement", "LOINC", "Lab Test", "S", "1920-8"),
    (8645, "unit per liter", "Unit", "UCUM", "Unit", "S", "U/L"),
    (1635142, "AJCC/UICC M1 Category", "Measurement", "Cancer Modifier", "Staging/Grading", "S", "AJCC/UICC-M1"),
    (1633987, "Stage 4", "Measurement", "Cancer Modifier", "Staging/Grading", "S", "Stage-4"),
    (1634191, "Stage 3", "Measurement", "Cancer Modifier", "Staging/Grading", "S", "Stage-3"),
    (
        3004053,
        "ERBB2 gene duplication [Presence] in Tissue by FISH",
        "Measurement",
        "LOINC",
        "Lab Test",
        "S",
        "31150-6",
    ),
    (45884084, "Positive", "Meas Value", "LOINC", "Answer", "S", "LA6576-8"),
    (4199600, "Candidal balanitis", "Condition", "SNOMED", "Clinical Finding", "S", "60826003"),
]


def clean_rows() -> Rows:
    """Two persons (person 2 died on 2020-01-01) with consistent events."""
    day = date
    concept = [
        dict(
            zip(
                (
                    "concept_id",
                    "concept_name",
                    "domain_id",
                    "vocabulary_id",
                    "concept_class_id",
                    "standard_concept",
                    "concept_code",
                ),
                c,
                strict=True,
            )
        )
        | {"valid_start_date": day(1970, 1, 1), "valid_end_date": day(2099, 12, 31)}
        for c in CONCEPTS
    ]
    return {
        "concept": concept,
        "concept_ancestor": [
            {
                "ancestor_concept_id": a,
                "descendant_concept_id": d,
                "min_levels_of_separation": 0,
                "max_levels_of_separation": 0,
            }
            for a, d in [
                (443392, 443392),
                (443392, 4112853),
                (21601387, 1378382),
                (21601387, 1378383),
                (1378382, 1378383),
            ]
        ],
        "person": [
            {
                "person_id": p,
                "gender_concept_id": g,
                "year_of_birth": 1970,
                "month_of_birth": 1,
                "day_of_birth": 1,
                "birth_datetime": datetime(1970, 1, 1, 10, 30),
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
            }
            for p, g in [(1, 8507), (2, 8532)]
        ],
        "observation_period": [
            {
                "observation_period_id": p,
                "person_id": p,
                "observation_period_start_date": day(2000, 1, 1),
                "observation_period_end_date": day(2019, 12, 31),
                "period_type_concept_id": 32817,
            }
            for p in (1, 2)
        ],
        "death": [{"person_id": 2, "death_date": day(2020, 1, 1), "death_type_concept_id": 32817}],
        "visit_occurrence": [
            {
                "visit_occurrence_id": 1,
                "person_id": 1,
                "visit_concept_id": 9201,
                "visit_start_date": day(2010, 1, 1),
                "visit_end_date": day(2010, 1, 2),
                "visit_type_concept_id": 32817,
            },
        ],
        "condition_occurrence": [
            {
                "condition_occurrence_id": i,
                "person_id": p,
                "condition_concept_id": 201826,
                "condition_start_date": s,
                "condition_end_date": day(s.year, s.month, 20),
                "condition_type_concept_id": 32817,
                "condition_source_value": "E11.9",
                "condition_source_concept_id": 45576876,
                "visit_occurrence_id": v,
            }
            for i, p, s, v in [(1, 1, day(2010, 1, 1), 1), (2, 2, day(2019, 6, 1), None)]
        ]
        + [
            # a male-only condition on the male person (plausibleGender)
            {
                "condition_occurrence_id": 3,
                "person_id": 1,
                "condition_concept_id": 4199600,
                "condition_start_date": day(2011, 1, 1),
                "condition_type_concept_id": 32817,
                "condition_source_value": "B37.42",
                "condition_source_concept_id": 4199600,
            }
        ],
        "drug_era": [
            {
                "drug_era_id": 1,
                "person_id": 1,
                "drug_concept_id": 1378382,
                "drug_era_start_date": day(2015, 7, 1),
                "drug_era_end_date": day(2015, 8, 1),
            }
        ],
        "measurement": [
            {
                "measurement_id": 1,
                "person_id": 1,
                "measurement_concept_id": 3013721,
                "measurement_date": day(2010, 1, 1),
                "measurement_type_concept_id": 32817,
                "value_as_number": 30.0,
                "unit_concept_id": 8645,
            },
        ],
    }


def cdm_rows(engine: Engine, table: str, rows: list[dict[str, Any]]) -> None:
    """Create CDM ``table`` holding ``rows`` (unlisted columns are NULL)."""
    schema = pa.schema([field.with_nullable(True) for field in cdm_table(table).arrow_schema()])
    columns = [pa.array([row.get(field.name) for row in rows], type=field.type) for field in schema]
    engine.create_table(table, pa.Table.from_arrays(columns, schema=schema), schema=schema)


Mutation = Callable[[Rows], None]


def build(engine: Engine, mutate: Mutation | None = None) -> Rows:
    """Create the warehouse on ``engine`` after applying ``mutate`` to a fresh copy of the rows."""
    rows = copy.deepcopy(clean_rows())
    if mutate is not None:
        mutate(rows)
    for table, data in rows.items():
        cdm_rows(engine, table, data)
    return rows
