"""Oncology rules fail on hand-made violations and pass on consistent records."""

from __future__ import annotations

from datetime import date

import pytest
from quality_warehouse import Rows, build

from massalia.engine import Engine
from massalia.health.quality import run_quality
from massalia.health.quality.oncology import oncology_rules
from massalia.quality.report import FAILED, NOT_APPLICABLE, PASSED


def _staging(stage: int):
    def mutate(rows: Rows) -> None:
        base = {"person_id": 1, "measurement_date": date(2015, 6, 1), "measurement_type_concept_id": 32817}
        rows["measurement"] += [
            {**base, "measurement_id": 10, "measurement_concept_id": 1635142},
            {**base, "measurement_id": 11, "measurement_concept_id": stage},
        ]

    return mutate


def _chemo(start: date):
    def mutate(rows: Rows) -> None:
        rows["condition_occurrence"].append(
            {
                "condition_occurrence_id": 9,
                "person_id": 1,
                "condition_concept_id": 4112853,
                "condition_start_date": date(2015, 6, 1),
                "condition_type_concept_id": 32817,
            }
        )
        rows["drug_exposure"] = [
            {
                "drug_exposure_id": 1,
                "person_id": 1,
                "drug_concept_id": 1378383,
                "drug_exposure_start_date": start,
                "drug_exposure_end_date": start,
                "drug_type_concept_id": 32817,
            }
        ]
        rows["procedure_occurrence"] = [
            {
                "procedure_occurrence_id": 1,
                "person_id": 1,
                "procedure_concept_id": 0,
                "procedure_date": date(2015, 7, 1),
                "procedure_type_concept_id": 32817,
            }
        ]

    return mutate


def _her2(answer: int):
    def mutate(rows: Rows) -> None:
        rows["measurement"].append(
            {
                "measurement_id": 20,
                "person_id": 2,
                "measurement_concept_id": 3004053,
                "measurement_date": date(2015, 6, 1),
                "measurement_type_concept_id": 32817,
                "value_as_concept_id": answer,
            }
        )

    return mutate


def _episode(with_condition: bool):
    def mutate(rows: Rows) -> None:
        rows["episode"] = [
            {
                "episode_id": 1,
                "person_id": 2,
                "episode_concept_id": 32533,
                "episode_start_date": date(2015, 6, 1),
                "episode_object_concept_id": 4112853,
                "episode_type_concept_id": 32817,
            }
        ]
        if with_condition:
            rows["condition_occurrence"][1]["condition_concept_id"] = 4112853

    return mutate


CASES = [
    ("tnmM1StageIV", _staging(1634191), _staging(1633987)),
    ("treatmentBeforeFirstCancerDiagnosis", _chemo(date(2015, 1, 1)), _chemo(date(2015, 7, 1))),
    ("biomarkerValueOutsideAnswerSet", _her2(8507), _her2(45884084)),
    ("cancerEpisodeWithoutCancerCondition", _episode(False), _episode(True)),
]


@pytest.mark.parametrize(("rule", "broken", "clean"), CASES, ids=[c[0] for c in CASES])
def test_rule_fails_when_broken_and_passes_when_not(duckdb_engine: Engine, rule, broken, clean) -> None:
    build(duckdb_engine, broken)
    (result,) = run_quality(duckdb_engine, checks=[rule]).results
    assert result.status == FAILED, result
    assert result.level == "ONCOLOGY" and result.num_violated_rows == 1
    build(duckdb_engine, clean)
    (result,) = run_quality(duckdb_engine, checks=[rule]).results
    assert result.status == PASSED, result


def test_rules_are_not_applicable_without_their_tables(duckdb_engine: Engine) -> None:
    build(duckdb_engine)
    report = run_quality(duckdb_engine, checks=["oncologyEventsAfterDeath", "episodeDatesOutsideEvents"])
    assert {r.status for r in report.results} == {NOT_APPLICABLE}


def test_every_rule_parses_and_reads_known_tables() -> None:
    rules = oncology_rules()
    assert len(rules) >= 8
    for rule, description, _ in rules:
        assert description.kahn_category in {"Conformance", "Completeness", "Plausibility"}
        assert all(table.isidentifier() for table, _ in rule.tables)
