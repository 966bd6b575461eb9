"""Survival and treatment comparison through the guarded service on a demo home, against the bare libraries.

Usage::

    massalia demo --patients 100000 --no-serve          # with MASSALIA_HOME=DIR: the home measured here
    python benchmarks/analytics.py --home DIR [--runs 3]

The issue's targets at 100,000 patients: KM and Cox on a cohort under 2 s, a propensity-score analysis with
a few hundred covariates under 30 s. Massalia's figures are whole guarded runs (rights check and audit entry,
scoped query of the mart, estimation, small-cell protection, provenance) as the demo researcher under the
demo's approved project. The peer, in the same process: the same estimators of lifelines and scikit-learn
called directly on the same rows read with one plain query — what an analyst's notebook would run, with no
governance — on one native thread as the service's estimators run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance
from massalia.health.analytics import run_compare, run_survival
from massalia.health.analytics.design import baseline_covariates, covariate_matrix
from massalia.health.analytics.requests import CompareRequest, SurvivalRequest
from massalia.health.marts.catalogue import load_catalogue
from massalia.health.marts.filters import FilterSpec, parse_clause

PROJECT_TITLE = "Démo : faisabilité en oncologie"
COX_COVARIATES = ["age_at_diagnosis", "stage_group", "ecog_at_diagnosis"]
TREATED = ["received_chemotherapy = true"]
COMPARATOR = ["received_chemotherapy = false"]


def timed(call: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall time in seconds of ``runs`` calls (after one warm-up call), and the last result."""
    result = call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def demo_caller(home: Home, root: Path) -> tuple[Caller, int, Governance]:
    accounts = (root / "demo-accounts.txt").read_text(encoding="utf-8").splitlines()
    username, _, password = next(line.split() for line in accounts if line.startswith("researcher.demo "))
    gov = Governance(home.metadata_url, home.ledger, key_path=root / "keys" / "master.key")
    principal = gov.authenticate_password(username, password)
    project = next(p.id for p in gov.list_projects(actor=principal) if p.title == PROJECT_TITLE)
    return Caller(principal, gov, "benchmark"), project, gov


def peer_survival(frame: pd.DataFrame) -> None:
    """KM overall and by stage, then a Cox model, straight from lifelines."""
    data = frame.dropna(subset=["os_days", "os_event"]).copy()
    KaplanMeierFitter().fit(data["os_days"] / 30.4375, data["os_event"].astype(bool))
    for _, group in data.groupby("stage_group", dropna=False):
        KaplanMeierFitter().fit(group["os_days"] / 30.4375, group["os_event"].astype(bool))
    design = pd.get_dummies(data[COX_COVARIATES].astype({"stage_group": str}), columns=["stage_group"],
                            drop_first=True, dtype=float)  # fmt: skip
    design = design.fillna(design.median())
    design["T"], design["E"] = data["os_days"] / 30.4375, data["os_event"].astype(int)
    CoxPHFitter(penalizer=0.01).fit(design, "T", "E")


def peer_compare(frame: pd.DataFrame, covariates: list[str]) -> None:
    """A regularized propensity model over the same covariates, IPW weights and a weighted Cox, straight."""
    data = frame.dropna(subset=["os_days", "os_event"]).reset_index(drop=True)
    design = covariate_matrix(data, covariates, load_catalogue(), categorical=["ecog_at_diagnosis"],
                              missing="indicator")  # fmt: skip
    data, x = data.iloc[design.kept].reset_index(drop=True), design.matrix.to_numpy()
    treated = data["received_chemotherapy"].astype(bool).to_numpy()
    ps = LogisticRegression(C=1.0, max_iter=1000).fit(x, treated).predict_proba(x)[:, 1]
    weights = np.where(treated, 1 / ps, 1 / (1 - ps))
    model = pd.DataFrame({"treated": treated.astype(float), "w": weights, "T": data["os_days"] / 30.4375,
                          "E": data["os_event"].astype(int)})  # fmt: skip
    CoxPHFitter().fit(model, "T", "E", weights_col="w", robust=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    home = Home(args.home)
    caller, project, gov = demo_caller(home, args.home)
    catalogue = load_catalogue()
    covariates = baseline_covariates(catalogue, ())
    survival_request = SurvivalRequest(project_id=project, group_by="stage_group", covariates=COX_COVARIATES,
                                       categorical=["stage_group"])  # fmt: skip
    compare_request = CompareRequest(
        project_id=project, treated=FilterSpec(all=[parse_clause(c) for c in TREATED]),
        comparator=FilterSpec(all=[parse_clause(c) for c in COMPARATOR]),
    )  # fmt: skip
    with DuckDBEngine(home.warehouse, read_only=True) as engine:
        patients = engine.scalar_int("SELECT count(*) FROM mart_patient")
        columns = sorted({"os_days", "os_event", "stage_group", "received_chemotherapy", *COX_COVARIATES, *covariates})
        frame = engine.query(f"SELECT {', '.join(columns)} FROM mart_patient").to_pandas()
        ours_km, result = timed(lambda: run_survival(caller, engine, survival_request), args.runs)
        with threadpool_limits(limits=1):  # the same native threads as the guarded service's estimators
            peer_km, _ = timed(lambda: peer_survival(frame), args.runs)
        ours_ps, compared = timed(lambda: run_compare(caller, engine, compare_request), max(1, args.runs - 2))
        with threadpool_limits(limits=1):
            peer_ps, _ = timed(lambda: peer_compare(frame, covariates), max(1, args.runs - 2))
    gov.close()
    width = compared.get("covariates", {}).get("count") if isinstance(compared.get("covariates"), dict) else None
    print(f"Analytics on {args.home} ({patients:,} patients in the mart, project {project}):")
    print(f"  survival (KM overall + by stage, log-rank, Cox {len(COX_COVARIATES)} covariates): "
          f"Massalia {ours_km:.2f} s, bare lifelines {peer_km:.2f} s, ratio {ours_km / peer_km:.2f}x "
          f"(target < 2 s); {result['km']['all']['n']['shown']} persons")  # fmt: skip
    print(f"  compare (PS over {len(covariates)} baseline variables{f' -> {width} columns' if width else ''}, "
          f"matching, IPW, balance, adjusted HR): Massalia {ours_ps:.2f} s, bare scikit-learn + lifelines "
          f"(PS + IPW Cox only) {peer_ps:.2f} s, ratio {ours_ps / peer_ps:.2f}x (target < 30 s)")  # fmt: skip


if __name__ == "__main__":
    main()
