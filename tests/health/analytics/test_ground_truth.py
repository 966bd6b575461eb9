"""On generated data the analyses recover the generator's ground truth (``ground_truth.json``).

Relapse: the generator draws it from a Weibull proportional-hazards model per cancer (``relapse_hr``), death
before relapse censoring it; a cause-specific Cox model stratified by primary site with the generator's
covariates must hold each true hazard ratio in its 95 % CI. (Death is not used: its hazard triples after a
relapse, so the baseline covariates' total effect on death is not the generator's conditional HR.)

Treatment: first-line chemotherapy has no effect on death in the generator (``death_hr.chemo_line1 = 1``)
but is given by stage and withheld from the old: the naive HR of stage II–III patients with first-line
chemotherapy against those without is far from 1, the propensity-adjusted ones are close to it.
"""

from __future__ import annotations

import math

import pytest
from analytics_world import World

from massalia.governance import Caller
from massalia.health.analytics.requests import CompareRequest, SurvivalRequest
from massalia.health.analytics.service import run_compare, run_survival
from massalia.health.marts.filters import FilterSpec, parse_clause


def test_relapse_hazard_ratios_lie_in_their_confidence_intervals(world: World, analytics_warehouse) -> None:
    truth = analytics_warehouse.truth["hazard_model"]["relapse_hr"]
    request = SurvivalRequest(
        project_id=world.study, endpoint="relapse", strata="primary_site",
        covariates=["stage_group", "ecog_at_diagnosis", "sex", "age_at_diagnosis", "n_comorbidities"],
        categorical=["ecog_at_diagnosis"],
    )  # fmt: skip
    result = run_survival(Caller(world.rita, world.gov), world.engine, request)
    terms = {term["term"]: term for term in result["cox"]["terms"]}
    expected = {"stage_group=II": truth["stage_II"], "stage_group=III": truth["stage_III"],
                "stage_group=IV": truth["stage_IV"], "ecog_at_diagnosis=1": truth["ecog_1"],
                "ecog_at_diagnosis=2": truth["ecog_2plus"], "sex=male": truth["male"],
                "n_comorbidities": truth["comorbidities"]}  # fmt: skip
    for name, hr in expected.items():
        assert terms[name]["lower"] <= hr <= terms[name]["upper"], (name, hr, terms[name])
    per_decade = terms["age_at_diagnosis"]
    assert per_decade["lower"] ** 10 <= truth["age_per_10y"] <= per_decade["upper"] ** 10
    assert result["cox"]["cause_specific"] and result["cox"]["references"]["stage_group"] == "I"


def test_adjusted_treatment_effect_is_closer_to_truth_than_the_naive_one(world: World, analytics_warehouse) -> None:
    true_hr = analytics_warehouse.truth["hazard_model"]["death_hr"]["chemo_line1"]
    assert true_hr == 1.0
    request = CompareRequest(
        project_id=world.study,
        filters=FilterSpec(all=[parse_clause("stage_group in II,III")],
                           any_of=[[parse_clause("line1_modality = chemotherapy"),
                                    parse_clause("line1_modality is_null")]]),
        treated=FilterSpec(all=[parse_clause("line1_modality = chemotherapy")]),
        comparator=FilterSpec(all=[parse_clause("line1_modality is_null")]),
        negative_controls=["second_cancer"],
    )  # fmt: skip
    result = run_compare(Caller(world.rita, world.gov), world.engine, request)
    hrs = result["hazard_ratios"]
    naive = abs(math.log(hrs["naive"]["hr"]) - math.log(true_hr))
    for method in ("matched", "ipw"):
        assert abs(math.log(hrs[method]["hr"]) - math.log(true_hr)) < naive / 2, (method, hrs)
        assert hrs[method]["lower"] <= true_hr <= hrs[method]["upper"], (method, hrs[method])
    assert hrs["naive"]["lower"] > true_hr, "the naive estimate is confounded by stage"
    balance = {row["covariate"]: row for row in result["balance"]}
    assert abs(balance["stage_group=III"]["after_weighting"]) < abs(balance["stage_group=III"]["before"])
    controls = result["negative_controls"]
    assert controls["estimates"][0]["outcome"] == "second_cancer"
    assert "not calibrated" in controls["note"] and any("Systematic error" in line for line in result["assumptions"])
    assert result["provenance"]["massalia_version"] and result["provenance"]["mart_build"]["build_id"]


@pytest.mark.parametrize("endpoint", ["os", "pfs", "relapse"])
def test_survival_by_group_with_competing_risks(world: World, endpoint: str) -> None:
    request = SurvivalRequest(project_id=world.study, endpoint=endpoint, group_by="stage_group",  # type: ignore[arg-type]
                              competing_risks=endpoint == "relapse")  # fmt: skip
    result = run_survival(Caller(world.rita, world.gov), world.engine, request)
    groups = result["km"]["groups"]
    assert set(groups) >= {"I", "II", "III", "IV"}
    assert result["logrank"]["p_value"] < 1e-6
    if endpoint == "relapse":
        curve = result["cumulative_incidence"]["curve"]
        assert curve[0]["estimate"] == 0.0 and curve[-1]["estimate"] > 0.1

    # Stage IV does worse than stage I at 24 months.
    def at(curve: list[dict], t: float) -> float:
        return [p["estimate"] for p in curve if p["time"] <= t][-1]

    assert at(groups["IV"]["curve"], 24) < at(groups["I"]["curve"], 24)
