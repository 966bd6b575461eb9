"""Benchmark: risk-model development and scoring through the guarded service, with the oracle AUC.

Generates a warehouse (generator, ETL, mart) of ``--patients`` persons (or reuses ``--data``), then as an
approved member of a project: trains both learners for each outcome, scores the whole cohort, and prints
the wall time, the test AUC (95 % CI) and, for unplanned hospitalization, the oracle AUC (test persons
ranked by the generator's true rate, ``hospitalization_rate_per_year`` in the truth files).

Usage::

    python benchmarks/prediction.py --patients 20000 [--data DIR] [--outcome hospitalization --outcome relapse]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from sklearn.metrics import roc_auc_score

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance, ProjectScope, Role, operator_principal
from massalia.health.analytics.model_store import ModelStore
from massalia.health.analytics.prediction import OUTCOMES
from massalia.health.analytics.prediction_service import run_prediction_score, run_prediction_train
from massalia.health.analytics.requests import PredictionRequest, PredictionScoreRequest
from massalia.health.etl import run_etl
from massalia.health.marts.builder import MART_TABLE, build_mart
from massalia.health.synth import generate
from massalia.health.synth.hazard import COVARIATES, linear_predictor


def _warehouse(root: Path, patients: int) -> Path:
    path = root / "warehouse.duckdb"
    if path.exists():
        return path
    started = time.perf_counter()
    generate(root / "sources", patients, seed=11, chunk_size=min(patients, 20000), with_documents=False)
    with DuckDBEngine(path) as engine:
        run_etl(engine, root / "sources", metadata_url=f"sqlite:///{(root / 'etl.sqlite').as_posix()}")
        build_mart(engine)
    print(f"warehouse of {patients} patients built in {time.perf_counter() - started:.0f} s")
    return path


def _truth_design(rows: pd.DataFrame) -> np.ndarray:
    """The generator's covariates (``hazard.COVARIATES``) rebuilt from its per-patient truth."""
    x = np.zeros((len(rows), len(COVARIATES)))
    column = {name: i for i, name in enumerate(COVARIATES)}
    for stage in ("II", "III", "IV"):
        x[:, column[f"stage_{stage}"]] = rows["stage"] == stage
    x[:, column["age_per_10y"]] = (rows["age_at_diagnosis"] - 65) / 10
    x[:, column["ecog_1"]] = rows["ecog"] == 1
    x[:, column["ecog_2plus"]] = rows["ecog"] >= 2
    x[:, column["male"]] = rows["sex"] == "M"
    x[:, column["comorbidities"]] = rows["n_comorbidities"]
    x[:, column["matched_targeted"]] = rows["matched_targeted"]
    x[:, column["hormone_therapy"]] = rows["hormone_regimen"].notna()
    x[:, column["triple_negative"]] = (
        (rows["cancer"] == "breast") & (rows["marker_er"] == 0) & (rows["marker_pr"] == 0) & (rows["marker_her2"] == 0)
    )
    x[:, column["chemo_line1"]] = rows["chemo_line1"]
    return x


def _oracle(engine: DuckDBEngine, root: Path, outcome: str, cut: str, tar: int) -> float:
    """AUC of the test persons ranked by their true risk (hospitalization rate; 2-year relapse probability)."""
    truth = pd.concat([pq.read_table(p).to_pandas() for p in sorted((root / "sources" / "truth").glob("patients_*"))])
    rows = engine.query(
        f"SELECT m.person_id, m.os_days, m.diagnosis_date, m.had_relapse, m.days_to_relapse, "
        f"p.person_source_value, cs.care_site_source_value AS site, "
        f"(SELECT min(v.visit_start_date - m.diagnosis_date) FROM visit_occurrence v WHERE v.person_id = m.person_id "
        f"AND v.visit_concept_id = 9203 AND v.visit_start_date >= m.diagnosis_date) AS day FROM {MART_TABLE} m "
        f"JOIN person p ON p.person_id = m.person_id JOIN care_site cs ON cs.care_site_id = p.care_site_id "
        f"WHERE m.diagnosis_date >= DATE '{cut}'"
    ).to_pandas()
    rows = rows.merge(truth, left_on=["site", "person_source_value"], right_on=["site", "source_patient_id"])
    y = OUTCOMES[outcome].label(rows, tar, pd.to_numeric(rows["day"]).to_numpy(dtype=float))
    if outcome == "hospitalization":
        risk = rows["hospitalization_rate_per_year"].to_numpy(dtype=float)
    else:
        model = json.loads((root / "sources" / "ground_truth.json").read_text(encoding="utf-8"))["hazard_model"]
        scale = rows["cancer"].map(model["relapse_weibull_scale_years"]).to_numpy(dtype=float)
        lp = linear_predictor(_truth_design(rows), model["relapse_hr"])
        risk = 1 - np.exp(-((tar / 365.25 / scale) ** model["relapse_shape"]) * np.exp(lp))
    kept = ~np.isnan(y)
    return float(roc_auc_score(y[kept], risk[kept]))


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=20000)
    parser.add_argument("--data", type=Path, default=None, help="A folder to build the warehouse in (reused).")
    parser.add_argument("--outcome", action="append", default=None, choices=sorted(OUTCOMES))
    args = parser.parse_args()
    root = args.data or Path(tempfile.mkdtemp(prefix="massalia-prediction-"))
    root.mkdir(parents=True, exist_ok=True)
    path = _warehouse(root, args.patients)
    gov_root = Path(tempfile.mkdtemp(prefix="massalia-prediction-gov-"))
    operator = operator_principal()
    with (
        DuckDBEngine(path, read_only=True) as engine,
        Governance(f"sqlite:///{gov_root / 'metadata.sqlite'}", gov_root / "ledger", key_path=gov_root / "key") as gov,
    ):
        rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=operator)
        dina = gov.create_user("dina", None, [Role.DPO], actor=operator)
        project = gov.create_project("Benchmark", "risk prediction benchmark", scope=ProjectScope(),
                                     access_level="pseudonymized", expires=dt.date.today() + dt.timedelta(days=9),
                                     actor=rita)  # fmt: skip
        gov.decide_request(gov.file_request(project.id, actor=rita, justification="benchmark run").id, True,
                           "benchmark", actor=dina)  # fmt: skip
        caller, store = Caller(rita, gov), ModelStore(gov_root / "models")
        for outcome in args.outcome or ["hospitalization", "relapse"]:
            started = time.perf_counter()
            result = run_prediction_train(caller, engine, store, PredictionRequest(project_id=project.id,
                                                                                   outcome=outcome))  # fmt: skip
            elapsed = time.perf_counter() - started
            population = result["population"]
            print(f"{outcome}: train {population['train']['shown']} ({population['train_outcomes']['shown']} "
                  f"outcomes), test {population['test']['shown']} ({population['test_outcomes']['shown']}); "
                  f"both models developed in {elapsed:.1f} s")  # fmt: skip
            for model in result["models"]:
                card = model["card"]
                auc = card["metrics"]["test"]["auc"]
                print(f"  {card['algorithm']}: AUC {auc['auc']:.3f} ({auc['lower']:.3f}–{auc['upper']:.3f}), "
                      f"Brier {card['metrics']['test']['brier']:.4f}")  # fmt: skip
            if outcome in ("hospitalization", "relapse"):
                card = result["models"][0]["card"]
                oracle = _oracle(engine, root, outcome, card["split"]["test_from_diagnosis_date"],
                                 card["time_at_risk"]["end_days"])  # fmt: skip
                print(f"  oracle AUC (true risks): {oracle:.3f}")
            started = time.perf_counter()
            scored = run_prediction_score(caller, engine, store, result["models"][-1]["model_id"],
                                          PredictionScoreRequest(project_id=project.id))  # fmt: skip
            print(f"  scored {len(scored['persons'])} persons in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
