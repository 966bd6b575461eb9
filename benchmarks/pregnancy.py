"""The users' example, breast cancer and pregnancy, through the guarded analyses on a generated warehouse.

Usage::

    python benchmarks/pregnancy.py --root DIR [--patients 150000]

Generates (once, kept in ``DIR``) a warehouse whose pregnancy-associated breast cancers carry the ground
truth's hazard ratios (``ground_truth.json`` ``pregnancy``: relapse 1.60, death 1.44, Azim et al. 2012), then,
as an approved researcher, among women with breast cancer diagnosed before 45: the cause-specific Cox model
of relapse with ``pregnancy_associated`` and the baseline prognostic factors (``survival``), the overall
survival model, the two groups compared (``hypotheses``) and the unexpected patterns (``patterns``). Prints the
estimates beside the truth and the wall time of each run. Not a test: the planted effect is recovered in
tests/health/synth/test_pregnancy.py at the generator's level and checked through the mart there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from generated_warehouse import approved_researcher, generated_warehouse

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance
from massalia.health.analytics import run_hypotheses, run_patterns, run_survival
from massalia.health.analytics.requests import HypothesesRequest, PatternsRequest, SurvivalRequest
from massalia.health.marts.filters import FilterSpec, parse_clause

YOUNG_BREAST = ("primary_site = breast", "sex = female", "age_at_diagnosis < 45")
COVARIATES = ["pregnancy_associated", "stage_group", "age_at_diagnosis", "ecog_at_diagnosis", "her2_status",
              "er_status"]  # fmt: skip


def where(*clauses: str) -> FilterSpec:
    return FilterSpec(all=[parse_clause(text) for text in clauses])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="Folder of the generated warehouse (kept).")
    parser.add_argument("--patients", type=int, default=150_000)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    path = generated_warehouse(args.root, args.patients)
    truth = json.loads((args.root / "sources" / "ground_truth.json").read_text(encoding="utf-8"))["pregnancy"]
    gov_root = args.root / f"gov-{time.time_ns()}"
    with (
        DuckDBEngine(path, read_only=True) as engine,
        Governance(f"sqlite:///{(gov_root / 'metadata.sqlite').as_posix()}", gov_root / "ledger",
                   key_path=gov_root / "master.key") as gov,
    ):  # fmt: skip
        caller, project = approved_researcher(gov, "Breast cancer and pregnancy")
        # the overall-survival model with the receptor statuses did not converge in lifelines (150,000 patients):
        # stage and age only there
        for endpoint, truth_hr, covariates in (("relapse", truth["relapse_hr"], COVARIATES),
                                               ("os", truth["death_hr"], COVARIATES[:3])):  # fmt: skip
            t0 = time.perf_counter()
            request = SurvivalRequest(project_id=project, filters=where(*YOUNG_BREAST), endpoint=endpoint,
                                      covariates=covariates, categorical=["ecog_at_diagnosis"])  # fmt: skip
            result = run_survival(caller, engine, request)
            term = next(t for t in result["cox"]["terms"] if t["term"].startswith("pregnancy_associated"))
            print(f"{endpoint}: n={result['cox']['n']['shown']} events={result['cox']['events']['shown']} "
                  f"HR pregnancy {term['hr']:.2f} ({term['lower']:.2f}-{term['upper']:.2f}), ground truth "
                  f"{truth_hr} ({'direct effect' if endpoint == 'os' else 'cause-specific'}); "
                  f"{time.perf_counter() - t0:.2f} s")  # fmt: skip
        t0 = time.perf_counter()
        compared = ["stage_group", "age_at_diagnosis", "had_relapse", "vital_status"]
        request = HypothesesRequest(project_id=project, filters=where(*YOUNG_BREAST),
                                    group_a=where("pregnancy_associated = true"),
                                    group_b=where("pregnancy_associated = false"), variables=compared)  # fmt: skip
        result = run_hypotheses(caller, engine, request)
        print(f"hypotheses: {result['groups']} in {time.perf_counter() - t0:.2f} s")
        for row in result["comparisons"]:
            effect = row.get("effect") or {}
            print(f"  {row['variable']}: {row.get('test')} p_holm={row.get('p_holm')} {effect.get('measure')} "
                  f"{effect.get('estimate')}")  # fmt: skip
        t0 = time.perf_counter()
        result = run_patterns(caller, engine, PatternsRequest(project_id=project, filters=where("sex = female")))
        rules = result["associations"]
        print(f"patterns (women): {rules['tested']} rules tested, {rules['significant']} significant, "
              f"sequences {result['sequences']['tested']}; {time.perf_counter() - t0:.2f} s")  # fmt: skip
        for rule in [r for r in rules["rules"] if "pregnancy_associated=true" in (*r["antecedent"], r["consequent"])]:
            print(f"  {rule['antecedent']} => {rule['consequent']} lift {rule['lift']} q {rule['q']:.2g}")


if __name__ == "__main__":
    main()
