"""Pregnancy facts from the generator through the ETL to the mart, and the users' example on a small home.

The generator records each pregnancy-associated breast cancer's pregnancy (ICD-10 Z33, or clcc_sud's local
code) mapped to 4217975 'Normal pregnancy'; the mart's ``pregnancy_associated`` must flag exactly the persons
the ground truth flags. On the 3,000-patient home they are fewer than the disclosure threshold: the
hypotheses analysis of the users' example must withhold the comparison rather than show them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from analytics_world import AnalyticsWarehouse, World

from massalia.governance import Caller
from massalia.health.analytics import run_hypotheses
from massalia.health.analytics.requests import HypothesesRequest
from massalia.health.marts.filters import FilterSpec, parse_clause


def where(*clauses: str) -> FilterSpec:
    return FilterSpec(all=[parse_clause(text) for text in clauses])


def test_the_mart_flags_exactly_the_ground_truths_pregnancies(
    world: World, analytics_warehouse: AnalyticsWarehouse
) -> None:
    truth = pd.read_parquet(Path(analytics_warehouse.path).parent / "sources" / "truth")
    persons = world.engine.query(
        "SELECT p.person_id, p.person_source_value, cs.care_site_source_value AS site, m.pregnancy_associated "
        "FROM person p JOIN care_site cs ON cs.care_site_id = p.care_site_id "
        "JOIN mart_patient m ON m.person_id = p.person_id"
    ).to_pandas()
    both = persons.merge(truth, left_on=["site", "person_source_value"], right_on=["site", "source_patient_id"],
                         suffixes=("_mart", "_truth"))  # fmt: skip
    assert len(both) == len(persons) and both["pregnancy_associated_truth"].sum() >= 3
    assert (both["pregnancy_associated_mart"] == both["pregnancy_associated_truth"]).all()
    concepts = world.engine.query(
        "SELECT DISTINCT c.concept_id, c.concept_name, c.standard_concept FROM condition_occurrence co "
        "JOIN concept c ON c.concept_id = co.condition_concept_id WHERE co.condition_source_value IN ('Z33', "
        "'DX-0047')"
    ).to_pylist()
    assert concepts == [{"concept_id": 4217975, "concept_name": "Normal pregnancy", "standard_concept": "S"}]


def test_attack_the_users_example_with_few_pregnancies_is_withheld(world: World) -> None:
    request = HypothesesRequest(project_id=world.study, filters=where("primary_site = breast"),
                                group_a=where("pregnancy_associated = true"),
                                group_b=where("pregnancy_associated = false"),
                                variables=["stage_group", "vital_status"])  # fmt: skip
    result = run_hypotheses(Caller(world.rita, world.gov), world.engine, request)
    assert result["groups"]["group_a"] == {"count": None, "shown": "<10"}
    assert result["comparisons"] == [] and "fewer than 10" in result["withheld"]
