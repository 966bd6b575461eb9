"""Synthetic control arms: the generator's truth recovered, MAIC's moments reached exactly, and the attacks.

The generator gives first-line chemotherapy no effect on death (``death_hr.chemo_line1 = 1``) but gives it
by stage and withholds it from the old. Taking stage II–III patients with first-line chemotherapy as a
"single-arm trial" and untreated stage II–III persons as the real-world pool, the naive HR is confounded
(far from 1) while the ATT-weighted one must cover 1. In summary mode the trial arm's baseline table is
computed from the warehouse (as a publication would report it): the MAIC weights must reproduce it to 1e-6.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from analytics_world import AnalyticsWarehouse, World, project_of, serve_api
from fastapi.testclient import TestClient
from lifelines import KaplanMeierFitter
from pydantic import ValidationError
from typer.testing import CliRunner

from massalia.cli import app as cli_app
from massalia.governance import AccessDenied, Caller, InvalidRequest, operator_principal
from massalia.health.analytics import run_control_arm
from massalia.health.analytics.control_arm import MAIC_TOLERANCE, MaicError, att_weights, maic_weights
from massalia.health.analytics.effectiveness import effective_sample_size
from massalia.health.analytics.requests import ControlArmRequest, TrialSummary
from massalia.health.marts.filters import FilterSpec, parse_clause

ELIGIBLE = "stage_group IN ('II', 'III')"
TRIAL = f"{ELIGIBLE} AND line1_modality = 'chemotherapy'"
CONTROL = f"{ELIGIBLE} AND line1_modality IS NULL"
MAIC_TRIAL = ("primary_site = 'colorectal' AND stage_group IN ('II', 'III') AND line1_modality = 'chemotherapy' "
              "AND ecog_at_diagnosis IS NOT NULL AND n_comorbidities IS NOT NULL")  # fmt: skip


def _eligibility() -> FilterSpec:
    return FilterSpec(all=[parse_clause("stage_group in II,III")])


def _individual(project: int, **extra: Any) -> ControlArmRequest:
    """Every baseline variable of the project as covariates (the PS is then the cross-validated ridge)."""
    return ControlArmRequest(
        project_id=project, filters=_eligibility(),
        trial=FilterSpec(all=[parse_clause("line1_modality = chemotherapy")]),
        controls=FilterSpec(all=[parse_clause("line1_modality is_null")]), **extra,
    )  # fmt: skip


def _scalar(world: World, sql: str) -> float:
    return float(world.engine.query(sql).column(0)[0].as_py())


def _published_table(world: World) -> dict[str, Any]:
    """A colorectal stage II–III chemotherapy 'trial': its baseline table and 24-month OS, as published."""
    frame = world.engine.query(f"SELECT age_at_diagnosis, stage_group, sex, ecog_at_diagnosis, n_comorbidities, "
                               f"os_days, os_event FROM mart_patient WHERE {MAIC_TRIAL}").to_pandas()  # fmt: skip
    baseline = [
        {"variable": "age_at_diagnosis", "statistic": "mean", "value": float(frame["age_at_diagnosis"].mean())},
        {"variable": "n_comorbidities", "statistic": "mean", "value": float(frame["n_comorbidities"].mean())},
        {"variable": "stage_group", "level": "III", "statistic": "proportion",
         "value": float((frame["stage_group"] == "III").mean())},
        {"variable": "sex", "level": "male", "statistic": "proportion",
         "value": float((frame["sex"] == "male").mean())},
        {"variable": "ecog_at_diagnosis", "level": "0", "statistic": "proportion",
         "value": float((frame["ecog_at_diagnosis"] == 0).mean())},
    ]  # fmt: skip
    fitter = KaplanMeierFitter().fit(frame["os_days"] / 30.4375, frame["os_event"].astype(bool))
    at24 = float(fitter.survival_function_at_times(24.0).iloc[0])
    return {"n": len(frame), "baseline": baseline, "km": [{"months": 24.0, "survival": at24}]}


# -- the estimators on their own ------------------------------------------------------------------------------


def test_maic_weights_reproduce_the_targets_and_shrink_the_sample() -> None:
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(60, 10, 2000), rng.random(2000) < 0.4, rng.random(2000) < 0.7]).astype(float)
    targets = np.array([66.0, 0.55, 0.6])
    fit = maic_weights(x, targets)
    assert np.max(np.abs(np.average(x, axis=0, weights=fit.weights) - targets)) < MAIC_TOLERANCE
    assert fit.weights.min() > 0 and math.isclose(fit.weights.sum(), 2000)
    assert effective_sample_size(fit.weights) < 2000
    # Targets equal to the sample's means: every weight is 1 (nothing to adjust).
    flat = maic_weights(x, x.mean(axis=0))
    assert np.allclose(flat.weights, 1.0, atol=1e-6)


def test_maic_refuses_a_target_outside_what_the_persons_span() -> None:
    x = np.array([[0.0, 50.0], [1.0, 60.0], [0.0, 70.0]])
    with pytest.raises(MaicError, match="column 1: target 80 is outside"):
        maic_weights(x, np.array([0.5, 80.0]))
    with pytest.raises(MaicError, match="column 0: target 1 is outside"):
        maic_weights(x, np.array([1.0, 60.0]))  # a proportion of 1 needs every weight on the 1s


def test_att_weights_are_the_odds_for_controls() -> None:
    assert att_weights(np.array([0.5, 0.2, 0.75]), np.array([True, False, False])).tolist() == [1.0, 0.25, 3.0]


# -- ground truth on the generated warehouse ------------------------------------------------------------------


def test_weighted_hazard_ratio_covers_the_truth_where_the_naive_one_is_biased(
    world: World, analytics_warehouse
) -> None:
    true_hr = analytics_warehouse.truth["hazard_model"]["death_hr"]["chemo_line1"]
    assert true_hr == 1.0
    result = run_control_arm(Caller(world.rita, world.gov), world.engine, _individual(world.study))
    naive, weighted = result["hazard_ratios"]["naive"], result["hazard_ratios"]["weighted"]
    assert naive["lower"] > true_hr, "the naive comparison is confounded by stage and age"
    assert weighted["lower"] <= true_hr <= weighted["upper"], weighted
    assert abs(math.log(weighted["hr"])) < abs(math.log(naive["hr"])) / 2
    assert "robust" in weighted["method"]
    trial_n = int(_scalar(world, f"SELECT count(*) FROM mart_patient WHERE {TRIAL}"))
    control_n = int(_scalar(world, f"SELECT count(*) FROM mart_patient WHERE {CONTROL}"))
    arms = result["arms"]
    assert arms["trial"]["n"]["count"] == trial_n and arms["control"]["n"]["count"] == control_n
    # ATT: the trial's weights are 1 (its ESS is its size); the controls' ESS is below their number.
    assert arms["trial"]["effective_sample_size"]["count"] == trial_n
    assert 10 <= arms["control"]["effective_sample_size"]["count"] < control_n
    # The confounders the generator uses to give chemotherapy (stage, the cancer) are balanced by the weights;
    # the covariates left imbalanced are listed for the reader (few controls carry the weight: ESS above).
    balance = {row["covariate"]: row for row in result["balance"]}
    for name in ("stage_group=III", "primary_site=prostate", "primary_site=lung"):
        assert abs(balance[name]["after"]) < abs(balance[name]["before"]), balance[name]
        assert abs(balance[name]["after"]) < 0.2, balance[name]
    assert set(result["imbalanced_after"]) == {name for name, row in balance.items() if abs(row["after"] or 0) > 0.1}
    assert "cross-validation" in result["propensity_score"]["model"] and result["weighted_outcome"] == "shown"
    assert arms["control"]["km"]["curve"][0]["estimate"] == 1.0 and result["provenance"]["rows_read"] > 0


def test_a_landmark_removes_the_immortal_time_of_the_untreated(world: World) -> None:
    """Persons dead before treatment could start are 'untreated' by construction; from a 4-month landmark they
    leave both arms (counted apart) and the weighted HR still covers the truth (colorectal, five covariates)."""
    covariates = ["stage_group", "age_at_diagnosis", "ecog_at_diagnosis", "sex", "n_comorbidities"]
    request = ControlArmRequest(
        project_id=world.study, landmark_months=4, covariates=covariates,
        filters=FilterSpec(all=[parse_clause("primary_site = colorectal"), parse_clause("stage_group in II,III")]),
        trial=FilterSpec(all=[parse_clause("line1_modality = chemotherapy")]),
        controls=FilterSpec(all=[parse_clause("line1_modality is_null")]),
    )  # fmt: skip
    result = run_control_arm(Caller(world.rita, world.gov), world.engine, request)
    arms = "primary_site = 'colorectal' AND stage_group IN ('II', 'III') AND (line1_modality = 'chemotherapy' OR " \
        "line1_modality IS NULL)"  # fmt: skip
    early = _scalar(world, f"SELECT count(*) FROM mart_patient WHERE {arms} AND os_days / 30.4375 <= 4")
    kept = _scalar(world, f"SELECT count(*) FROM mart_patient WHERE {arms} AND os_days / 30.4375 > 4")
    assert result["excluded_before_landmark"]["count"] == (early if early >= 10 else None)
    n = result["arms"]["trial"]["n"]["count"] + result["arms"]["control"]["n"]["count"]
    assert n == kept and result["landmark_months"] == 4
    weighted = result["hazard_ratios"]["weighted"]
    assert weighted["lower"] <= 1.0 <= weighted["upper"], weighted


def test_maic_reproduces_the_trial_table_and_recovers_its_survival(world: World) -> None:
    published = _published_table(world)
    eligibility = FilterSpec(all=[parse_clause("primary_site = colorectal"), parse_clause("stage_group in II,III")])
    request = ControlArmRequest(project_id=world.study, filters=eligibility,
                                controls=FilterSpec(all=[parse_clause("line1_modality is_null")]),
                                trial_summary=TrialSummary.model_validate(published))  # fmt: skip
    result = run_control_arm(Caller(world.rita, world.gov), world.engine, request)
    assert result["mode"] == "summary"
    for row, target in zip(result["balance"], published["baseline"], strict=True):
        assert abs(row["real_world_after"] - target["value"]) < MAIC_TOLERANCE, row
    assert result["max_gap_to_targets"] < MAIC_TOLERANCE
    assert result["effective_sample_size"]["count"] <= result["n"]["count"]
    # Chemotherapy has no effect on death in the generator: the trial's 24-month survival lies within the
    # weighted real-world curve's 95 % band there (the few stage III controls carry the weight: a wide band).
    compared = result["survival_comparison"][0]
    assert compared["real_world_weighted_lower"] <= compared["trial"] <= compared["real_world_weighted_upper"]
    assert compared["real_world_unweighted"] is not None and result["km_weighted"]["n"]["count"] > 10


# -- input validation ------------------------------------------------------------------------------------------


def test_a_bad_baseline_table_is_refused_naming_the_row_and_field(world: World) -> None:
    with pytest.raises(ValidationError, match=r"baseline\.1\n.*a proportion lies in 0–1, got 30"):
        TrialSummary.model_validate({"n": 50, "baseline": [
            {"variable": "age_at_diagnosis", "statistic": "mean", "value": 60},
            {"variable": "sex", "level": "male", "statistic": "proportion", "value": 30}]})  # fmt: skip
    with pytest.raises(ValidationError, match="baseline row 1: sex=male already given in row 0"):
        TrialSummary.model_validate({"n": 50, "baseline": [
            {"variable": "sex", "level": "male", "statistic": "proportion", "value": 0.3},
            {"variable": "sex", "level": "male", "statistic": "proportion", "value": 0.4}]})  # fmt: skip
    with pytest.raises(ValidationError, match="either trial"):
        ControlArmRequest(project_id=world.study)
    caller = Caller(world.rita, world.gov)
    cases = [
        ({"variable": "stage_group", "level": "V", "statistic": "proportion", "value": 0.3},
         r"trial_summary.baseline\[0\] \(stage_group\): level 'V' is not one of"),
        ({"variable": "stage_group", "statistic": "proportion", "value": 0.3}, "give level"),
        ({"variable": "tumour_colour", "statistic": "mean", "value": 1}, r"\(tumour_colour\): not a mart variable"),
        ({"variable": "age_at_diagnosis", "statistic": "mean", "value": 130},
         r"trial_summary.baseline: column 0: target 130 is outside"),
    ]  # fmt: skip
    for row, message in cases:
        summary = TrialSummary.model_validate({"n": 50, "baseline": [row]})
        with pytest.raises(InvalidRequest, match=message):
            run_control_arm(caller, world.engine, ControlArmRequest(project_id=world.study, trial_summary=summary))


# -- attacks ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["olga", "nora", "operator"])
def test_callers_without_an_approved_membership_are_refused(world: World, who: str) -> None:
    principal = {"olga": world.olga, "nora": world.nora, "operator": operator_principal()}[who]
    summary = TrialSummary.model_validate({"n": 50, "baseline": [
        {"variable": "age_at_diagnosis", "statistic": "mean", "value": 60}]})  # fmt: skip
    for request in (_individual(world.study), ControlArmRequest(project_id=world.study, trial_summary=summary)):
        with pytest.raises(AccessDenied, match="approved members of an approved, unexpired project"):
            run_control_arm(Caller(principal, world.gov), world.engine, request)
    if who == "nora":
        with pytest.raises(AccessDenied):
            run_control_arm(Caller(principal, world.gov), world.engine, _individual(world.draft))


def test_a_site_scoped_project_reads_only_its_sites(world: World) -> None:
    result = run_control_arm(Caller(world.rita, world.gov), world.engine, _individual(world.north))
    north = "care_site_code = 'chu_nord'"
    assert result["provenance"]["rows_read"] == _scalar(world, f"SELECT count(*) FROM mart_patient WHERE {ELIGIBLE} "
                                                               f"AND {north}")  # fmt: skip
    assert result["arms"]["trial"]["n"]["count"] == _scalar(
        world, f"SELECT count(*) FROM mart_patient WHERE {TRIAL} AND {north}"
    )
    # Naming another site's patients as the trial arm under the site-scoped project reads none of them.
    other = ControlArmRequest(project_id=world.north, filters=_eligibility(),
                              trial=FilterSpec(all=[parse_clause("care_site_code = clcc_sud")]))  # fmt: skip
    with pytest.raises(InvalidRequest, match="the trial arm has fewer than 10 persons in the project's scope"):
        run_control_arm(Caller(world.rita, world.gov), world.engine, other)


def test_a_tiny_trial_arm_is_refused_and_counts_are_protected(world: World) -> None:
    """Attack: a 'trial' of a handful of persons would publish their covariates' means in the balance table."""
    tiny = ControlArmRequest(project_id=world.study, filters=_eligibility(),
                             trial=FilterSpec(all=[parse_clause("primary_site = uterus"),
                                                   parse_clause("age_at_diagnosis < 40")]))  # fmt: skip
    assert _scalar(world, f"SELECT count(*) FROM mart_patient WHERE {ELIGIBLE} AND primary_site = 'uterus' "
                          "AND age_at_diagnosis < 40") < 10  # fmt: skip
    with pytest.raises(InvalidRequest, match="fewer than 10 persons"):
        run_control_arm(Caller(world.rita, world.gov), world.engine, tiny)
    result = run_control_arm(Caller(world.rita, world.gov), world.engine, _individual(world.study))
    for arm in result["arms"].values():
        for curve in (arm["km"], arm.get("km_unweighted") or arm["km"]):
            assert all(p["at_risk"]["count"] is None or p["at_risk"]["count"] >= 10 for p in curve["curve"])
    # MAIC on a control pool too small to describe is refused as well.
    summary = TrialSummary.model_validate({"n": 50, "baseline": [
        {"variable": "age_at_diagnosis", "statistic": "mean", "value": 60}]})  # fmt: skip
    small = ControlArmRequest(project_id=world.study, trial_summary=summary,
                              filters=FilterSpec(all=[parse_clause("primary_site = uterus"),
                                                      parse_clause("age_at_diagnosis < 40")]))  # fmt: skip
    with pytest.raises(InvalidRequest, match="fewer than 10 persons"):
        run_control_arm(Caller(world.rita, world.gov), world.engine, small)


def test_targets_at_the_edge_cannot_single_out_a_person(world: World) -> None:
    """Attack: a 'trial' mean at the oldest person's age puts nearly all the weight on them; the weighted curve
    would then be their survival. The weights' ESS is under the threshold, so the weighted outcome is withheld."""
    pool = f"{ELIGIBLE} AND primary_site = 'colorectal' AND line1_modality IS NULL"
    oldest = _scalar(world, f"SELECT max(age_at_diagnosis) FROM mart_patient WHERE {pool}")
    summary = TrialSummary.model_validate({"n": 30, "km": [{"months": 12, "survival": 0.9}], "baseline": [
        {"variable": "age_at_diagnosis", "statistic": "mean", "value": oldest - 0.001}]})  # fmt: skip
    request = ControlArmRequest(project_id=world.study, trial_summary=summary,
                                filters=FilterSpec(all=[parse_clause("primary_site = colorectal"),
                                                        parse_clause("stage_group in II,III")]),
                                controls=FilterSpec(all=[parse_clause("line1_modality is_null")]))  # fmt: skip
    result = run_control_arm(Caller(world.rita, world.gov), world.engine, request)
    assert result["effective_sample_size"] == {"count": None, "shown": "<10"}
    assert result["weighted_outcome"].startswith("withheld") and result["km_weighted"] is None
    assert result["median_weighted"] is None and result["survival_comparison"][0]["real_world_weighted"] is None


# -- interfaces ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    with serve_api(analytics_warehouse, tmp_path_factory.mktemp("control-arm")) as served_api:
        project = project_of(served_api.gov, served_api.users["rita"], served_api.users["dina"])
        yield {"app": served_api.app, "tokens": served_api.tokens, "project": project, "root": served_api.home.root}


def test_http_control_arm_for_members_only_with_row_errors(served: dict) -> None:
    def client(who: str) -> TestClient:
        http = TestClient(served["app"], raise_server_exceptions=False)
        http.headers["Authorization"] = f"Bearer {served['tokens'][who]}"
        return http

    body = {"project_id": served["project"],
            "filters": {"all": [{"variable": "stage_group", "op": "in", "value": ["II", "III"]}]},
            "controls": {"all": [{"variable": "line1_modality", "op": "is_null"}]},
            "trial_summary": {"n": 120, "median_months": 40.0, "baseline": [
                {"variable": "age_at_diagnosis", "statistic": "mean", "value": 62.0},
                {"variable": "stage_group", "level": "III", "statistic": "proportion", "value": 0.5},
                {"variable": "comorbidity_diabetes", "statistic": "proportion", "value": 0.2}]}}  # fmt: skip
    response = client("rita").post("/api/v1/analyses/control-arm", json=body)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [round(row["real_world_after"], 6) for row in result["balance"]] == [62.0, 0.5, 0.2]
    assert result["trial_median"] == 40.0 and result["km_weighted"]["curve"][0]["estimate"] == 1.0
    assert client("olga").post("/api/v1/analyses/control-arm", json=body).status_code == 403
    body["trial_summary"]["baseline"][1]["value"] = 1.5
    response = client("rita").post("/api/v1/analyses/control-arm", json=body)
    assert response.status_code == 422 and "baseline" in response.text and "0–1" in response.text
    body["trial_summary"]["baseline"][1] = {"variable": "stage_group", "level": "IX", "statistic": "proportion",
                                            "value": 0.5}  # fmt: skip
    response = client("rita").post("/api/v1/analyses/control-arm", json=body)
    assert response.status_code == 422 and "trial_summary.baseline[1] (stage_group)" in response.text


def test_command_line_control_arm_from_a_csv_table(served: dict, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"MASSALIA_TOKEN": served["tokens"]["rita"], "MASSALIA_HOME": str(served["root"]), "COLUMNS": "200"}
    table = tmp_path / "baseline.csv"
    table.write_text("variable,level,statistic,value\nage_at_diagnosis,,mean,62\nstage_group,III,proportion,0.5\n")
    common = ["analysis", "control-arm", "--project", str(served["project"]), "--where", "stage_group in II,III"]
    result = runner.invoke(cli_app, [*common, "--summary", str(table), "--trial-n", "120"], env=env)
    assert result.exit_code == 0, result.output
    assert "effective" in result.output and "trial not given" in result.output
    result = runner.invoke(cli_app, [*common, "--trial", "line1_modality = chemotherapy",
                                     "--control", "line1_modality is_null", "--covariate", "stage_group",
                                     "--covariate", "age_at_diagnosis"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "HR weighted" in result.output
    olga = {**env, "MASSALIA_TOKEN": served["tokens"]["olga"]}
    result = runner.invoke(cli_app, [*common, "--summary", str(table), "--trial-n", "120"], env=olga)
    assert result.exit_code == 3 and "approved members" in result.output
    table.write_text("variable,level,statistic,value\nage_at_diagnosis,,mean,sixty\n")
    result = runner.invoke(cli_app, [*common, "--summary", str(table), "--trial-n", "120"], env=env)
    assert result.exit_code == 1 and "row 2, field value: 'sixty' is not a number" in result.output
