"""Two-cohort hypothesis tests: generator-made differences are found, a true null is not, attacks fail.

The generator (``synth/cohort.py``) draws the care site independently of everything else, so age, sex and
stage do not differ between sites (a true null), while stage drives death (``synth/hazard.py``) and the age
at diagnosis depends on the cancer.
"""

from __future__ import annotations

import numpy as np
import pytest
from analytics_world import World
from statsmodels.stats.multitest import multipletests

from massalia.governance import AccessDenied, Caller, InvalidRequest
from massalia.health.analytics import run_hypotheses
from massalia.health.analytics.hypotheses import adjust, compare_levels, compare_numbers
from massalia.health.analytics.requests import HypothesesRequest
from massalia.health.marts.filters import FilterSpec, parse_clause


def where(*clauses: str) -> FilterSpec:
    return FilterSpec(all=[parse_clause(text) for text in clauses])


def by_variable(result: dict) -> dict[str, dict]:
    return {row["variable"]: row for row in result["comparisons"]}


def test_generator_differences_are_detected_and_the_null_is_not(world: World) -> None:
    names = ["stage_group", "metastatic_at_diagnosis", "care_site_code", "sex"]
    deaths = HypothesesRequest(project_id=world.study, group_a=where("vital_status = deceased"),
                               group_b=where("vital_status = alive"), variables=names)  # fmt: skip
    # care_site_code is text: refused by type, so the site-independent null is checked below
    with pytest.raises(InvalidRequest, match="care_site_code"):
        run_hypotheses(Caller(world.rita, world.gov), world.engine, deaths)
    deaths = deaths.model_copy(update={"variables": ["stage_group", "metastatic_at_diagnosis"]})
    rows = by_variable(run_hypotheses(Caller(world.rita, world.gov), world.engine, deaths))
    assert rows["stage_group"]["test"] == "chi_square" and rows["stage_group"]["p_holm"] < 1e-6
    assert rows["stage_group"]["effect"]["measure"] == "cramers_v" and rows["stage_group"]["effect"]["lower"] > 0.1
    metastatic = rows["metastatic_at_diagnosis"]
    assert metastatic["test"] == "fisher_exact" and metastatic["p_bh"] < 1e-6
    assert metastatic["effect"]["level"] == "true" and metastatic["effect"]["lower"] > 0  # the dead: more metastatic

    sites = HypothesesRequest(project_id=world.study, group_a=where("care_site_code = chu_nord"),
                              group_b=where("care_site_code != chu_nord"),
                              variables=["age_at_diagnosis", "sex", "stage_group", "primary_site"])  # fmt: skip
    result = run_hypotheses(Caller(world.rita, world.gov), world.engine, sites)
    assert result["multiplicity"]["tests"] == 4
    for row in result["comparisons"]:
        assert not row["significant_bh"] and not row["significant_holm"], row

    cancers = HypothesesRequest(project_id=world.study, group_a=where("primary_site = lung"),
                                group_b=where("primary_site = breast"), variables=["age_at_diagnosis"])  # fmt: skip
    age = by_variable(run_hypotheses(Caller(world.rita, world.gov), world.engine, cancers))["age_at_diagnosis"]
    assert age["test"] == "welch_t" and age["p_holm"] < 1e-6 and age["mann_whitney"]["p"] < 1e-6
    assert age["effect"]["measure"] == "hedges_g" and age["effect"]["lower"] > 0.2  # lung cancers come later


def test_adjusted_p_values_are_statsmodels() -> None:
    pvalues = [0.001, 0.04, 0.03, 0.2, 0.5, 0.012]
    adjusted = adjust(pvalues, 0.05)
    assert np.allclose(adjusted["bh"], multipletests(pvalues, method="fdr_bh")[1])
    assert np.allclose(adjusted["holm"], multipletests(pvalues, method="holm")[1])
    assert adjusted["bh"] != adjusted["holm"]


def test_effect_sizes_recover_known_values() -> None:
    rng = np.random.default_rng(5)
    numbers = compare_numbers(rng.normal(1.0, 1.0, 4000), rng.normal(0.0, 1.0, 4000))
    assert numbers["effect"]["lower"] < 1.0 < numbers["effect"]["upper"]
    a = ["yes"] * 600 + ["no"] * 400
    b = ["yes"] * 400 + ["no"] * 600
    levels = compare_levels(a, b, ["yes", "no"], threshold=10)
    assert levels["effect"]["estimate"] == pytest.approx(0.2) and levels["effect"]["lower"] < 0.2
    three = compare_levels(["x"] * 50 + ["y"] * 50 + ["z"] * 5, ["x"] * 50 + ["y"] * 50 + ["z"] * 5,
                           ["x", "y", "z"], threshold=10)  # fmt: skip
    assert three["p"] == pytest.approx(1.0) and three["table"]["z"]["group_a"] == {"count": None, "shown": "<10"}


@pytest.mark.parametrize("who", ["olga", "nora"])
def test_attack_a_non_member_is_refused(world: World, who: str) -> None:
    principal, project = (world.olga, world.study) if who == "olga" else (world.nora, world.draft)
    request = HypothesesRequest(project_id=project, group_a=where("sex = female"), group_b=where("sex = male"),
                                variables=["age_at_diagnosis"])  # fmt: skip
    with pytest.raises(AccessDenied, match="approved members of an approved, unexpired project"):
        run_hypotheses(Caller(principal, world.gov), world.engine, request)


def test_attack_small_groups_are_withheld(world: World) -> None:
    tiny = HypothesesRequest(project_id=world.study, filters=where("primary_site = ovary", "stage_group = IV"),
                             group_a=where("sex = female"), group_b=where("sex = male"),
                             variables=["age_at_diagnosis", "stage_group"])  # fmt: skip
    result = run_hypotheses(Caller(world.rita, world.gov), world.engine, tiny)
    assert result["groups"]["group_b"] == {"count": None, "shown": "<10"}
    assert result["comparisons"] == [] and "withheld" in result


def test_attack_identifiers_are_not_compared(world: World) -> None:
    request = HypothesesRequest(project_id=world.study, group_a=where("sex = female"), group_b=where("sex = male"),
                                variables=["person_id"])  # fmt: skip
    with pytest.raises(InvalidRequest, match="person_id"):
        run_hypotheses(Caller(world.rita, world.gov), world.engine, request)


def test_attack_out_of_scope_sites_are_never_compared(world: World) -> None:
    request = HypothesesRequest(project_id=world.north, group_a=where("sex = female"), group_b=where("sex = male"),
                                variables=["age_at_diagnosis"])  # fmt: skip
    result = run_hypotheses(Caller(world.rita, world.gov), world.engine, request)
    counts = world.engine.query("SELECT sex, count(*) FROM mart_patient WHERE care_site_code = 'chu_nord' "
                                "GROUP BY sex").to_pydict()  # fmt: skip
    north = dict(zip(counts["sex"], counts["count_star()"], strict=True))
    assert result["groups"]["group_a"]["count"] == north["female"]
    assert result["groups"]["group_b"]["count"] == north["male"]


def test_requests_are_bounded() -> None:
    with pytest.raises(ValueError, match="group_b names no condition"):
        HypothesesRequest(project_id=1, group_a=where("sex = female"), group_b=FilterSpec(), variables=["sex"])
    with pytest.raises(ValueError, match="at most 50"):
        HypothesesRequest(project_id=1, group_a=where("sex = female"), group_b=where("sex = male"),
                          variables=[f"v{i}" for i in range(51)])  # fmt: skip
    with pytest.raises(ValueError, match="compared once"):
        HypothesesRequest(project_id=1, group_a=where("sex = female"), group_b=where("sex = male"),
                          variables=["sex", "sex"])  # fmt: skip
