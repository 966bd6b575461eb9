"""Pattern discovery through the guarded service on a demo warehouse: the whole run and its counting core.

Usage::

    python benchmarks/patterns.py --warehouse DIR/warehouse.duckdb [--runs 2]

The warehouse is opened read only and the analyses run under a throwaway governance of their own (an approved
researcher's project over everything), so the demo home is not written to. Massalia's figure is the whole
guarded run (rights check and audit entry, scoped mart query, items, itemset counts, rule tests, BH, care
steps read from OMOP and their sequences, small-cell protection, provenance); the core is ``itemset_counts``
alone on the same item matrix (no rules, no tests, no sequences).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from generated_warehouse import approved_researcher, median_time

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance
from massalia.health.analytics import run_patterns
from massalia.health.analytics.patterns import item_matrix, itemset_counts
from massalia.health.analytics.requests import DEFAULT_PATTERN_VARIABLES, PatternsRequest
from massalia.health.marts.catalogue import VariableType, load_catalogue


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        DuckDBEngine(args.warehouse, read_only=True) as engine,
        Governance(f"sqlite:///{tmp}/metadata.sqlite", Path(tmp) / "ledger", key_path=Path(tmp) / "key") as gov,
    ):
        caller, project = approved_researcher(gov, "Patterns benchmark")
        columns = set(engine.query("SELECT * FROM mart_patient LIMIT 0").to_pandas().columns)
        names = [name for name in DEFAULT_PATTERN_VARIABLES if name in columns]  # a mart built before a variable
        for sequences in (False, True):
            request = PatternsRequest(project_id=project, variables=names, sequences=sequences)
            seconds, result = median_time(args.runs, lambda r=request: run_patterns(caller, engine, r))
            rules = result["associations"]
            print(f"patterns ({'rules + sequences' if sequences else 'rules only'}) on {result['persons']['shown']} "
                  f"persons, {len(names)} variables -> {rules['items_mined']} items: {seconds:.2f} s; "
                  f"{rules['tested']} rules tested, {rules['significant']} significant (BH), "
                  f"{rules['withheld_small_cells']} withheld")  # fmt: skip
        frame = engine.query(f"SELECT {', '.join(names)} FROM mart_patient").to_pandas()
        catalogue = load_catalogue()
        booleans = [n for n in names if catalogue.variable(n).type is VariableType.BOOLEAN]
        items = item_matrix(frame, names, booleans)
        share = items.mean(axis=0)
        items = items.loc[:, (share * len(items) >= 20) & (share <= 0.8)]
        matrix = items.to_numpy(dtype=bool)
        seconds, counts = median_time(args.runs, lambda: itemset_counts(matrix, 20, 3))
        print(f"itemset counts alone on the same {items.shape[1]} items: {seconds:.2f} s ({len(counts)} itemsets)")


if __name__ == "__main__":
    main()
