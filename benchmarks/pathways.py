"""Benchmark: care pathways and conformance to reference practice on a generated warehouse.

Generates ``--patients`` patients (the real generator, no documents), runs the real ETL and mart build into
DuckDB (skipped when ``--data DIR`` already holds ``warehouse.duckdb``), then times the guarded entry points
as an approved member would call them: ``run_pathways`` (K = 4 steps, top 10) and ``run_conformance`` (the
shipped reference rules, outcomes included). Prints the median of ``--runs`` runs and a few figures of the
result. Not a test: it takes minutes at 100,000 patients.

Usage::

    python benchmarks/pathways.py --patients 100000 [--data DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from generated_warehouse import approved_researcher, generated_warehouse, median_time

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance
from massalia.health.analytics import run_conformance, run_pathways
from massalia.health.analytics.requests import ConformanceRequest, PathwaysRequest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
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
            caller, project_id = approved_researcher(gov, "pathways benchmark")
            seconds, result = median_time(
                args.runs, lambda: run_pathways(caller, engine, PathwaysRequest(project_id=project_id))
            )
            links = len(result["sankey"]["links"])
            print(f"pathways: {seconds:.2f} s (median of {args.runs}); {result['persons']['shown']} persons, "
                  f"{len(result['pathways'])} pathways shown, {links} Sankey links")  # fmt: skip
            conformance = ConformanceRequest(project_id=project_id)
            seconds, result = median_time(args.runs, lambda: run_conformance(caller, engine, conformance))
            print(f"conformance: {seconds:.2f} s (median of {args.runs}); {len(result['rules'])} rules")
            for rule in result["rules"]:
                overall = rule["overall"]
                shown = "suppressed" if overall["rate"] is None else (
                    f"{overall['rate']:.3f} ({overall['lower']:.3f}-{overall['upper']:.3f})")  # fmt: skip
                print(f"  {rule['id']}: {shown} of {overall['evaluable']['shown']} evaluable")


if __name__ == "__main__":
    main()
