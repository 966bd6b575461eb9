"""Benchmark: synthetic control arms (ATT weighting and MAIC) on a generated warehouse.

Generates ``--patients`` patients (the real generator, no documents), runs the real ETL and mart build into
DuckDB (skipped when ``--data DIR`` already holds ``warehouse.duckdb``), then times the guarded entry point as an
approved member would call it: individual-data mode (trial = stage II–III with first-line chemotherapy, controls
= untreated stage II–III; every baseline covariate, then colorectal only with five prespecified ones) and MAIC to
the colorectal trial arm's baseline table (age, stage III, sex, ECOG 0, comorbidities). Prints the median of
``--runs`` runs and the estimates against the generator's truth (``death_hr.chemo_line1 = 1``). Not a test.

Usage::

    python benchmarks/control_arm.py --patients 20000 [--data DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from generated_warehouse import approved_researcher, generated_warehouse, median_time

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance
from massalia.health.analytics import run_control_arm
from massalia.health.analytics.requests import ControlArmRequest, TrialSummary
from massalia.health.marts.filters import FilterSpec, parse_clause

TRIAL = "primary_site = 'colorectal' AND stage_group IN ('II', 'III') AND line1_modality = 'chemotherapy'"
COVARIATES = ["stage_group", "age_at_diagnosis", "ecog_at_diagnosis", "sex", "n_comorbidities"]


def _summary(engine: DuckDBEngine) -> TrialSummary:
    """The trial arm's baseline table, as its publication would give it."""
    row = engine.query(
        "SELECT avg(age_at_diagnosis) AS age, avg(n_comorbidities) AS com, avg((stage_group = 'III')::int) AS s3, "
        "avg((sex = 'male')::int) AS male, avg((ecog_at_diagnosis = 0)::int) AS e0, count(*) AS n "
        f"FROM mart_patient WHERE {TRIAL} AND ecog_at_diagnosis IS NOT NULL AND n_comorbidities IS NOT NULL"
    ).to_pylist()[0]
    return TrialSummary.model_validate({"n": row["n"], "baseline": [
        {"variable": "age_at_diagnosis", "statistic": "mean", "value": row["age"]},
        {"variable": "n_comorbidities", "statistic": "mean", "value": row["com"]},
        {"variable": "stage_group", "level": "III", "statistic": "proportion", "value": row["s3"]},
        {"variable": "sex", "level": "male", "statistic": "proportion", "value": row["male"]},
        {"variable": "ecog_at_diagnosis", "level": "0", "statistic": "proportion", "value": row["e0"]},
    ]})  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--data", type=Path, default=None, help="Folder to keep (or reuse) the warehouse in.")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = args.data or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        path = generated_warehouse(root, args.patients)
        gov_root = Path(scratch) / "gov"
        gov_root.mkdir()
        with (
            DuckDBEngine(path, read_only=True) as engine,
            Governance(f"sqlite:///{(gov_root / 'm.sqlite').as_posix()}", gov_root / "ledger",
                       key_path=gov_root / "master.key") as gov,
        ):  # fmt: skip
            caller, project_id = approved_researcher(gov, "control arm benchmark")
            untreated = FilterSpec(all=[parse_clause("line1_modality is_null")])
            chemotherapy = FilterSpec(all=[parse_clause("line1_modality = chemotherapy")])
            stages = parse_clause("stage_group in II,III")
            eligibility = FilterSpec(all=[parse_clause("primary_site = colorectal"), stages])
            designs = {
                "all sites, every baseline covariate": ControlArmRequest(
                    project_id=project_id, filters=FilterSpec(all=[stages]), controls=untreated, trial=chemotherapy),
                "colorectal, five covariates": ControlArmRequest(
                    project_id=project_id, filters=eligibility, controls=untreated, trial=chemotherapy,
                    covariates=COVARIATES),
                "colorectal, five covariates, 4-month landmark": ControlArmRequest(
                    project_id=project_id, filters=eligibility, controls=untreated, trial=chemotherapy,
                    covariates=COVARIATES, landmark_months=4),
            }  # fmt: skip
            for label, individual in designs.items():
                seconds, result = median_time(args.runs, lambda: run_control_arm(caller, engine, individual))  # noqa: B023
                hrs, arms = result["hazard_ratios"], result["arms"]
                print(f"individual (ATT), {label}: {seconds:.2f} s (median of {args.runs}); trial "
                      f"{arms['trial']['n']['shown']}, controls {arms['control']['n']['shown']} (ESS "
                      f"{arms['control']['effective_sample_size']['shown']}); PS AUC "
                      f"{result['propensity_score']['auc']:.3f}; weighted outcome "
                      f"{result['weighted_outcome']}")  # fmt: skip
                for name, hr in hrs.items():
                    shown = "withheld" if hr is None else f"{hr['hr']:.3f} ({hr['lower']:.3f}-{hr['upper']:.3f})"
                    print(f"  HR {name}: {shown}; truth 1.0")
            summary = ControlArmRequest(project_id=project_id, filters=eligibility, controls=untreated,
                                        trial_summary=_summary(engine))  # fmt: skip
            seconds, result = median_time(args.runs, lambda: run_control_arm(caller, engine, summary))
            print(f"MAIC: {seconds:.2f} s (median of {args.runs}); {result['n']['shown']} persons, ESS "
                  f"{result['effective_sample_size']['shown']}, largest gap to the targets "
                  f"{result['max_gap_to_targets']:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
