"""Risk prediction on generated data: models recover the generator's signal, and the store keeps to its project.

Validation: the generator draws unplanned hospitalizations as a Poisson process whose per-person rate is
written in the truth files (``hospitalization_rate_per_year``), and relapse from a Weibull PH model whose
hazard ratios are in ``ground_truth.json``. Ranking the test persons by their *true* risk gives the oracle
AUC, the best any model could reach; the developed model's AUC CI must come near it (its features are the
mart's baseline variables, a noisy subset of the generator's covariates: ~0.05 below is expected).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from analytics_world import AnalyticsWarehouse, World
from sklearn.metrics import roc_auc_score

from massalia.governance import AccessDenied, Caller, InvalidRequest, ProjectScope, Role, operator_principal
from massalia.health.analytics.model_store import MODEL_FILE, ModelStore
from massalia.health.analytics.prediction import OUTCOMES, _rank_auc, calibration_bins, temporal_split
from massalia.health.analytics.prediction_service import (
    list_prediction_models,
    run_prediction_score,
    run_prediction_train,
)
from massalia.health.analytics.requests import PredictionRequest, PredictionScoreRequest
from massalia.health.marts.builder import MART_TABLE as MART
from massalia.health.marts.filters import FilterSpec, parse_clause
from massalia.health.synth.hazard import COVARIATES, linear_predictor

BOOT = 200  # bootstrap resamples: enough for a CI in a test, five times faster than the default


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    return ModelStore(tmp_path_factory.mktemp("prediction-home") / "models")


@pytest.fixture(scope="module")
def pseudo(world: World) -> int:
    """Rita's approved project with pseudonymized (row-level) access."""
    gov = world.gov
    dpo = gov.create_user("dora", None, [Role.DPO], actor=operator_principal())
    project = gov.create_project("Tumour board risks", "risk scores for the weekly tumour board",
                                 scope=ProjectScope(), access_level="pseudonymized",
                                 expires=dt.date.today() + dt.timedelta(days=365), actor=world.rita)  # fmt: skip
    request = gov.file_request(project.id, actor=world.rita, justification="board approved the protocol")
    gov.decide_request(request.id, True, "proportionate", actor=dpo)
    return project.id


@pytest.fixture(scope="module")
def truth(analytics_warehouse: AnalyticsWarehouse, world: World) -> pd.DataFrame:
    """The generator's per-patient truth, keyed by the warehouse's person_id."""
    folder = analytics_warehouse.path.parent / "sources" / "truth"
    frame = pd.concat([pq.read_table(path).to_pandas() for path in sorted(folder.glob("patients_part*.parquet"))])
    persons = world.engine.query(
        "SELECT p.person_id, p.person_source_value, cs.care_site_source_value AS site FROM person p "
        "JOIN care_site cs ON cs.care_site_id = p.care_site_id"
    ).to_pandas()
    return persons.merge(frame, left_on=["site", "person_source_value"], right_on=["site", "source_patient_id"])


@pytest.fixture(scope="module")
def hospitalization(world: World, store: ModelStore) -> dict:
    request = PredictionRequest(project_id=world.study, outcome="hospitalization", bootstrap=BOOT)
    return run_prediction_train(Caller(world.rita, world.gov), world.engine, store, request)


def _test_persons(world: World, result: dict, outcome: str) -> pd.DataFrame:
    """The test set's persons and labels, rebuilt from the mart (what the service used)."""
    cut = result["models"][0]["card"]["split"]["test_from_diagnosis_date"]
    rows = world.engine.query(
        f"SELECT person_id, diagnosis_date, had_relapse, days_to_relapse, os_days FROM {MART} "
        f"WHERE diagnosis_date >= DATE '{cut}'"
    ).to_pandas()
    return rows.assign(y=OUTCOMES[outcome].label(rows, 730) if outcome == "relapse" else np.nan)


def test_hospitalization_auc_is_near_the_oracle(world: World, hospitalization: dict, truth: pd.DataFrame) -> None:
    """The oracle ranks the test persons by their true rate; the models' AUC CI must reach near it."""
    card = hospitalization["models"][0]["card"]
    cut = card["split"]["test_from_diagnosis_date"]
    tar = card["time_at_risk"]["end_days"]
    assert tar == 183 and card["outcome"]["name"] == "hospitalization"
    test = truth[pd.to_datetime(truth["diagnosis_date"]) >= pd.Timestamp(cut)].copy()
    # The observed label as the warehouse holds it: an unplanned stay in the first 183 days, or followed 183 days.
    visits = world.engine.query(
        f"SELECT m.person_id, min(v.visit_start_date - m.diagnosis_date) AS day FROM {MART} m "
        "JOIN visit_occurrence v ON v.person_id = m.person_id WHERE v.visit_concept_id = 9203 "
        "AND v.visit_start_date >= m.diagnosis_date GROUP BY m.person_id"
    ).to_pandas()
    mart = world.engine.query(f"SELECT person_id, os_days FROM {MART}").to_pandas()
    test = test.merge(mart, on="person_id").merge(visits, on="person_id", how="left")
    day = pd.to_numeric(test["day"], errors="coerce").to_numpy(dtype=float)
    y = OUTCOMES["hospitalization"].label(test, tar, day)
    kept = ~np.isnan(y)
    oracle = roc_auc_score(y[kept], test["hospitalization_rate_per_year"].to_numpy()[kept])
    assert kept.sum() == hospitalization["population"]["test"]["count"]
    for model in hospitalization["models"]:
        auc = model["card"]["metrics"]["test"]["auc"]
        assert auc["lower"] < auc["auc"] < auc["upper"]
        assert auc["upper"] >= oracle - 0.05, (model["card"]["algorithm"], auc, oracle)
        assert auc["auc"] <= oracle + 0.05, "a model cannot beat the truth by more than chance"
        assert auc["auc"] > 0.6


def test_relapse_auc_is_near_the_oracle(world: World, store: ModelStore, truth: pd.DataFrame,
                                        analytics_warehouse: AnalyticsWarehouse) -> None:  # fmt: skip
    """The oracle is the true 2-year relapse risk from the generator's Weibull PH model and hazard ratios."""
    request = PredictionRequest(project_id=world.study, outcome="relapse", bootstrap=BOOT,
                                algorithms=["lasso_logistic"])  # fmt: skip
    result = run_prediction_train(Caller(world.rita, world.gov), world.engine, store, request)
    model = analytics_warehouse.truth["hazard_model"]
    tested = _test_persons(world, result, "relapse").merge(truth, on="person_id")
    tested = tested[~tested["y"].isna()]
    x = np.zeros((len(tested), len(COVARIATES)))
    column = {name: i for i, name in enumerate(COVARIATES)}
    for stage in ("II", "III", "IV"):
        x[:, column[f"stage_{stage}"]] = tested["stage"] == stage
    x[:, column["age_per_10y"]] = (tested["age_at_diagnosis"] - 65) / 10
    x[:, column["ecog_1"]] = tested["ecog"] == 1
    x[:, column["ecog_2plus"]] = tested["ecog"] >= 2
    x[:, column["male"]] = tested["sex"] == "M"
    x[:, column["comorbidities"]] = tested["n_comorbidities"]
    x[:, column["matched_targeted"]] = tested["matched_targeted"]
    x[:, column["hormone_therapy"]] = tested["hormone_regimen"].notna()
    x[:, column["triple_negative"]] = ((tested["cancer"] == "breast") & (tested["marker_er"] == 0)
                                      & (tested["marker_pr"] == 0) & (tested["marker_her2"] == 0))  # fmt: skip
    x[:, column["chemo_line1"]] = tested["chemo_line1"]
    scale = tested["cancer"].map(model["relapse_weibull_scale_years"]).to_numpy(dtype=float)
    risk = 1 - np.exp(-((2.0 / scale) ** model["relapse_shape"]) * np.exp(linear_predictor(x, model["relapse_hr"])))
    oracle = roc_auc_score(tested["y"], risk)
    auc = result["models"][0]["card"]["metrics"]["test"]["auc"]
    assert oracle > 0.7
    assert auc["upper"] >= oracle - 0.06 and auc["auc"] <= oracle + 0.05, (auc, oracle)


def test_model_card_and_calibration(hospitalization: dict) -> None:
    for model in hospitalization["models"]:
        card = model["card"]
        assert card["model_id"] == model["model_id"] and card["project_id"] > 0
        assert card["split"]["kind"] == "temporal" and len(card["training_cohort_hash"]) == 64
        assert card["data_version"]["build_id"] and "stage_group" in card["variables"]
        test = card["metrics"]["test"]
        assert 0 < test["brier"] < 0.25
        assert abs(test["mean_predicted"] - test["observed_rate"]) < 0.05
        bins = test["calibration"]
        assert len(bins) >= 3
        for row in bins:  # every released bin holds at least 10 cases and 10 non-cases: no small cell
            assert set(row) == {"predicted", "observed", "n", "outcomes"}, "a bin's bounds are one person's risk"
            assert row["observed"] is not None and row["outcomes"]["count"] >= 10
            assert row["n"]["count"] - row["outcomes"]["count"] >= 10
        assert sum(row["n"]["count"] for row in bins) == hospitalization["population"]["test"]["count"]
        assert card["metrics"]["feature_importance"][0]["auc_drop"] > 0
    assert hospitalization["models"][0]["card"]["metrics"]["nonzero_coefficients"] >= 1


def test_calibration_bins_merge_small_cells() -> None:
    risk = np.linspace(0.01, 0.2, 200)
    y = np.zeros(200)
    y[[5, 60, 120, 150, 170, 180, 185, 190, 195, 199, 198, 197]] = 1  # 12 cases, mostly at high risk
    bins = calibration_bins(y, risk, 10)
    assert len(bins) == 1 and bins[0]["outcomes"]["count"] == 12
    few = np.zeros(200)
    few[:3] = 1
    (only,) = calibration_bins(few, risk, 10)
    assert only["observed"] is None and only["outcomes"]["count"] is None


def test_temporal_split_holds_out_the_last_diagnosed() -> None:
    dates = pd.Series(pd.date_range("2015-01-01", periods=100, freq="7D"))
    test, cut = temporal_split(dates.sample(frac=1, random_state=1).reset_index(drop=True), 0.2)
    assert test.sum() == 20 and cut == str(dates.iloc[80].date())


def test_models_listed_for_members_only(world: World, store: ModelStore, hospitalization: dict) -> None:
    listed = list_prediction_models(Caller(world.rita, world.gov), world.engine, store, world.study)
    ids = {model["model_id"] for model in listed["models"]}
    assert {model["model_id"] for model in hospitalization["models"]} <= ids
    assert all(model["current_data"] for model in listed["models"])
    assert list_prediction_models(Caller(world.olga, world.gov), world.engine, store, world.other)["models"] == []
    with pytest.raises(AccessDenied):
        list_prediction_models(Caller(world.olga, world.gov), world.engine, store, world.study)


def test_aggregate_project_scores_only_a_distribution(world: World, store: ModelStore, hospitalization: dict) -> None:
    model_id = hospitalization["models"][0]["model_id"]
    result = run_prediction_score(Caller(world.rita, world.gov), world.engine, store, model_id,
                                  PredictionScoreRequest(project_id=world.study))  # fmt: skip
    assert "persons" not in result and result["n"]["count"] > 1000 and not result["row_level"]
    assert all(row["n"]["shown"] == "<10" or row["n"]["count"] >= 10 for row in result["risk_histogram"])
    with pytest.raises(AccessDenied, match="pseudonymized"):
        run_prediction_score(Caller(world.rita, world.gov), world.engine, store, model_id,
                             PredictionScoreRequest(project_id=world.study, persons=["P1-x"]))  # fmt: skip


def test_attack_model_of_project_a_refused_under_project_b(world: World, store: ModelStore, pseudo: int,
                                                           hospitalization: dict) -> None:  # fmt: skip
    """Rita is a member of both projects: the study's model still does not open under the pseudonymized one."""
    model_id = hospitalization["models"][0]["model_id"]
    with pytest.raises(AccessDenied, match="not trained under project"):
        run_prediction_score(Caller(world.rita, world.gov), world.engine, store, model_id,
                             PredictionScoreRequest(project_id=pseudo))  # fmt: skip
    # A card edited on disk to name project B is refused too (the seal is over the card's bytes).
    card_path = store.path(model_id) / "card.json"
    original = card_path.read_text()
    card_path.write_text(json.dumps({**json.loads(original), "project_id": pseudo}))
    try:
        with pytest.raises(AccessDenied):
            run_prediction_score(Caller(world.rita, world.gov), world.engine, store, model_id,
                                 PredictionScoreRequest(project_id=pseudo))  # fmt: skip
        assert model_id not in {m["model_id"] for m in
                                list_prediction_models(Caller(world.rita, world.gov), world.engine, store,
                                                       pseudo)["models"]}  # fmt: skip
    finally:
        card_path.write_text(original)


def test_attack_tampered_model_file_is_never_unpickled(world: World, store: ModelStore, hospitalization: dict,
                                                       tmp_path: Path) -> None:  # fmt: skip
    model_id = hospitalization["models"][1]["model_id"]
    path = store.path(model_id) / MODEL_FILE
    original = path.read_bytes()
    marker = tmp_path / "pwned"
    # A pickle that would create a file when loaded: the seal check must refuse it before joblib reads it.
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    try:
        with pytest.raises(AccessDenied):
            run_prediction_score(Caller(world.rita, world.gov), world.engine, store, model_id,
                                 PredictionScoreRequest(project_id=world.study))  # fmt: skip
        assert not marker.exists()
    finally:
        path.write_bytes(original)


@pytest.mark.parametrize("bad", ["../../etc", "0123456789ABCDEF", "x" * 16, ""])
def test_attack_model_id_is_no_path(world: World, store: ModelStore, bad: str) -> None:
    with pytest.raises(InvalidRequest, match="16 lower-case"):
        run_prediction_score(Caller(world.rita, world.gov), world.engine, store, bad,
                             PredictionScoreRequest(project_id=world.study))  # fmt: skip


def test_pseudonymized_project_scores_a_tumour_board_list(world: World, store: ModelStore, pseudo: int) -> None:
    caller = Caller(world.rita, world.gov)
    request = PredictionRequest(project_id=pseudo, outcome="progression", bootstrap=BOOT,
                                algorithms=["gradient_boosting"])  # fmt: skip
    trained = run_prediction_train(caller, world.engine, store, request)
    model_id = trained["models"][0]["model_id"]
    everyone = run_prediction_score(caller, world.engine, store, model_id, PredictionScoreRequest(project_id=pseudo))
    assert everyone["row_level"] and len(everyone["persons"]) > 1000
    board = [everyone["persons"][i]["pseudonym"] for i in (0, 500, 1000)]
    request = PredictionScoreRequest(project_id=pseudo, persons=[*board, "P9-unknown"])
    result = run_prediction_score(caller, world.engine, store, model_id, request)
    assert [row["pseudonym"] for row in result["persons"]] == board  # sorted by risk, highest first
    assert result["not_found"] == ["P9-unknown"]
    assert all(str(world.study) not in row["pseudonym"].split("-")[0] for row in result["persons"])


def test_attack_outsiders_cannot_train_or_score(world: World, store: ModelStore, hospitalization: dict) -> None:
    model_id = hospitalization["models"][0]["model_id"]
    for who, project in ((world.olga, world.study), (world.nora, world.draft)):
        with pytest.raises(AccessDenied):
            run_prediction_train(Caller(who, world.gov), world.engine, store,
                                 PredictionRequest(project_id=project, outcome="relapse"))  # fmt: skip
        with pytest.raises(AccessDenied):
            run_prediction_score(Caller(who, world.gov), world.engine, store, model_id,
                                 PredictionScoreRequest(project_id=project))  # fmt: skip


def test_attack_out_of_scope_site_rows_never_read(world: World, store: ModelStore) -> None:
    """Under the chu_nord project, the training population holds chu_nord persons only (visits included)."""
    request = PredictionRequest(project_id=world.north, outcome="hospitalization", bootstrap=BOOT,
                                algorithms=["lasso_logistic"])  # fmt: skip
    result = run_prediction_train(Caller(world.rita, world.gov), world.engine, store, request)
    north = world.engine.query(
        f"SELECT count(*) AS n FROM {MART} WHERE care_site_code = 'chu_nord'").to_pylist()[0]["n"]  # fmt: skip
    population = result["population"]
    assert population["target"]["count"] == north
    assert result["models"][0]["card"]["project_id"] == world.north


def test_filters_define_the_target_cohort(world: World, store: ModelStore) -> None:
    request = PredictionRequest(project_id=world.study, outcome="relapse", bootstrap=BOOT,
                                algorithms=["lasso_logistic"],
                                filters=FilterSpec(all=[parse_clause("stage_group in II,III")]))  # fmt: skip
    result = run_prediction_train(Caller(world.rita, world.gov), world.engine, store, request)
    n = world.engine.query(
        f"SELECT count(*) AS n FROM {MART} WHERE stage_group IN ('II', 'III')").to_pylist()[0]["n"]  # fmt: skip
    assert result["population"]["target"]["count"] == n
    assert result["models"][0]["card"]["target"]["filters"]["all"][0]["variable"] == "stage_group"


def test_rank_auc_equals_scikit_learns_with_ties() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        risk = np.round(rng.random(300), 1)  # many ties
        y = (rng.random(300) < risk).astype(float)
        assert _rank_auc(y, risk) == pytest.approx(roc_auc_score(y, risk), abs=1e-12)
    batch = np.stack([y, y[::-1]])
    assert _rank_auc(batch, np.stack([risk, risk])).shape == (2,)


def test_attack_visits_outside_the_project_period_never_read(world: World, store: ModelStore) -> None:
    """Under a project limited to 2012–2019, an emergency visit in 2020 is no outcome (it is never read)."""
    gov = world.gov
    end = dt.date(2019, 12, 31)
    dpo = gov.create_user("dana", None, [Role.DPO], actor=operator_principal())
    project = gov.create_project("Before 2020", "unplanned stays before the pandemic", access_level="aggregate",
                                 scope=ProjectScope(period_start=dt.date(2012, 1, 1), period_end=end),
                                 expires=dt.date.today() + dt.timedelta(days=30), actor=world.rita)  # fmt: skip
    gov.decide_request(gov.file_request(project.id, actor=world.rita, justification="protocol approved").id, True,
                       "proportionate", actor=dpo)  # fmt: skip
    request = PredictionRequest(project_id=project.id, outcome="hospitalization", bootstrap=BOOT,
                                algorithms=["lasso_logistic"])  # fmt: skip
    result = run_prediction_train(Caller(world.rita, gov), world.engine, store, request)
    rows = world.engine.query(
        f"SELECT m.person_id, m.os_days, m.diagnosis_date, "
        f"(SELECT min(v.visit_start_date) FROM visit_occurrence v WHERE v.person_id = m.person_id "
        f"AND v.visit_concept_id = 9203 AND v.visit_start_date >= m.diagnosis_date) AS first_any, "
        f"(SELECT min(v.visit_start_date) FROM visit_occurrence v WHERE v.person_id = m.person_id "
        f"AND v.visit_concept_id = 9203 AND v.visit_start_date >= m.diagnosis_date "
        f"AND v.visit_start_date <= DATE '{end}') AS first_in_period "
        f"FROM {MART} m WHERE m.diagnosis_date BETWEEN DATE '2012-01-01' AND DATE '{end}'"
    ).to_pandas()

    def cases(column: str) -> int:
        day = (pd.to_datetime(rows[column]) - pd.to_datetime(rows["diagnosis_date"])).dt.days.to_numpy(dtype=float)
        return int(np.nansum(OUTCOMES["hospitalization"].label(rows, 183, day)))

    population = result["population"]
    assert population["target"]["count"] == len(rows)
    read = population["train_outcomes"]["count"] + population["test_outcomes"]["count"]
    assert read == cases("first_in_period") < cases("first_any")
