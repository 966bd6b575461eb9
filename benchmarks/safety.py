"""Measure the incident log: generation, load (map, validate, dedup, publish), map/stats aggregation and search.

Run: ``python benchmarks/safety.py [--events 1300000] [--dir /tmp/safety-bench] [--runs 60] [--reuse]``.
About 1,300,000 true events give about 1,000,000 incidents once the three logs are loaded and deduplicated.
Aggregations go through the guarded services (rights checked, decision audited in the transparency log) with
random filters (a period of one to six months, type families, zones, a source); the same grid query without
governance, straight on the engine, is printed next to it (what governance costs). Search: the reports are
indexed (narratives and attachments, :mod:`massalia.safety.search`), then searched through the guarded service
(rights, audit with the query's keyed hash) by a manager (hits and snippets, page of 10) with words and phrases
of the narratives, half of them under a random filter. Not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from massalia.engine import Engine, connect
from massalia.governance import Caller, Governance, Role, operator_principal
from massalia.pipelines import LineageStore
from massalia.safety import search, services
from massalia.safety.catalogue import load_catalogue
from massalia.safety.log import INCIDENTS, REPORTS, load_delivery
from massalia.safety.query import IncidentFilter
from massalia.safety.synth.generator import GeneratorConfig, generate


def random_filter(rng: random.Random) -> IncidentFilter:
    """A period of one to six months, one to four families, sometimes zones, sometimes a source."""
    start = dt.datetime(2025, rng.randint(1, 7), 1)
    end = start + dt.timedelta(days=30 * rng.randint(1, 6))
    families = tuple(rng.sample(sorted(load_catalogue().families), rng.randint(1, 4)))
    zones = tuple(f"D{z:02d}" for z in rng.sample(range(1, 17), rng.randint(1, 5))) if rng.random() < 0.5 else ()
    sources = (rng.choice(["mc", "csu", "dtp"]),) if rng.random() < 0.3 else ()
    return IncidentFilter(start, end, zones, families, (), sources)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


QUERIES = ("vol", "tapage", "bruit", "agression", "véhicule", "dégradation", '"tapage nocturne"', "vol AND sac",
           "audition", "rixe OR bagarre", "stationnement -gênant", "ivresse", "commissariat", "caméra")  # fmt: skip


def measure_search(gov: Governance, engine: Engine, manager: Caller, root: Path, filters: list[IncidentFilter],
                   runs: int, reuse: bool) -> dict[str, object]:  # fmt: skip
    """Index the reports (unless reused), then search p50/p95 through the guarded service."""
    figures: dict[str, object] = {}
    admin = Caller(gov.create_user("ada.admin", None, [Role.ADMIN], actor=operator_principal()), gov, "bench")
    if not (reuse and search.TantivyIndex.exists(root, search.INDEX_NAME)):
        started = time.perf_counter()
        summary = search.index_reports(admin, engine, root, rebuild=True)
        seconds = time.perf_counter() - started
        rate = round(summary.indexed / seconds)
        figures["index"] = {"seconds": round(seconds, 1), "documents": summary.indexed, "docs_per_s": rate,
                            "attachments": summary.documents_read}  # fmt: skip
        print(f"index: {seconds:.1f} s, {summary.indexed:,} documents ({summary.indexed / seconds:,.0f}/s), "
              f"{summary.documents_read} attachments read")  # fmt: skip
    rng = random.Random(16)
    asks = [(rng.choice(QUERIES), filters[i % len(filters)] if rng.random() < 0.5 else IncidentFilter())
            for i in range(max(runs, 100))]  # fmt: skip
    search.search_reports(manager, engine, root, "vol")  # warm
    samples, totals = [], []
    cpu = time.process_time()  # the whole process's CPU (the audit writer's thread included): load-independent
    for query, where in asks:
        started = time.perf_counter()
        found = search.search_reports(manager, engine, root, query, where=where)
        samples.append(time.perf_counter() - started)
        totals.append(found.total or 0)
    cpu_ms = round((time.process_time() - cpu) * 1000 / len(asks), 1)
    figures["search_identified"] = {**percentiles(samples), "cpu_ms": cpu_ms, "median_total": statistics.median(totals)}
    print(f"search (manager, page of 10 with snippets and facets): {figures['search_identified']}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_300_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--reuse", action="store_true", help="Reuse the logs and warehouse already in --dir.")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--no-search", action="store_true", help="Skip indexing and search.")
    args = parser.parse_args()
    root = args.dir or Path(tempfile.mkdtemp(prefix="safety-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    figures: dict[str, object] = {"events": args.events}
    logs = root / "logs"
    warehouse = root / "warehouse.duckdb"
    if not args.reuse:
        warehouse.unlink(missing_ok=True)
        (root / "lineage.sqlite").unlink(missing_ok=True)
        started = time.perf_counter()
        generated = generate(logs, GeneratorConfig(events=args.events))
        seconds = time.perf_counter() - started
        rows = sum(generated.rows.values())
        figures["generate"] = {"seconds": round(seconds, 1), "rows": rows, "rows_per_s": round(rows / seconds)}
        print(f"generate: {seconds:.1f} s, {rows:,} source rows ({rows / seconds:,.0f} rows/s)")
    with connect("duckdb", path=warehouse) as engine:
        if not args.reuse:
            store = LineageStore(f"sqlite:///{(root / 'lineage.sqlite').as_posix()}")
            started = time.perf_counter()
            result = load_delivery(engine, logs, store)
            seconds = time.perf_counter() - started
            rows = sum(f.rows_read for f in result.files)
            figures["load"] = {
                "seconds": round(seconds, 1),
                "rows_read": rows,
                "rows_per_s": round(rows / seconds),
                "added": result.rows_added,
            }
            print(
                f"load: {seconds:.1f} s, {rows:,} rows read ({rows / seconds:,.0f} rows/s), added {result.rows_added}"
            )
        incidents = engine.row_count(INCIDENTS)
        figures["incidents"] = incidents
        figures["reports"] = engine.row_count(REPORTS)
        print(f"incidents: {incidents:,} (reports {figures['reports']:,})")
        gov_root = Path(tempfile.mkdtemp(prefix="safety-bench-gov-"))
        with Governance(f"sqlite:///{(gov_root / 'm.sqlite').as_posix()}", gov_root / "ledger",
                        key_path=gov_root / "k") as gov:  # fmt: skip
            manager = Caller(gov.create_user("max.manager", None, [Role.SAFETY_MANAGER],
                                             actor=operator_principal()), gov, "bench")  # fmt: skip
            # A partner's map goes through the noisy release of the fixed grid (every cell of the city, empty or
            # not); the benchmark gives it a budget for every run (each new filter is a new, paid release).
            os.environ.setdefault("MASSALIA_DISCLOSURE_BUDGET", "1000")
            os.environ.setdefault("MASSALIA_DISCLOSURE_LOCKOUT_REPEATS", "1000")
            partner = Caller(gov.create_user("pat.partner", None, [Role.PARTNER], actor=operator_principal()),
                             gov, "bench")  # fmt: skip
            rng = random.Random(11)
            filters = [random_filter(rng) for _ in range(args.runs)]
            for name, call in (
                ("map_grid_500m", lambda f: services.map_grid(manager, engine, f, 500)),
                ("map_grid_500m_partner", lambda f: services.map_grid(partner, engine, f, 500)),
                ("timeline_day", lambda f: services.timeline(manager, engine, f, "day")),
                ("stats_by_zone", lambda f: services.statistics(manager, engine, f, "zone")),
                (
                    "grid_sql_without_governance",
                    lambda f: engine.query(
                        f"SELECT floor(i.x_l93 / 500) AS gx, floor(i.y_l93 / 500) AS gy, count(*) AS n "
                        f"FROM {INCIDENTS} AS i WHERE {f.where('i')} GROUP BY 1, 2"
                    ),
                ),
            ):
                call(filters[0])  # warm
                samples = []
                cpu = time.process_time()
                for f in filters:
                    started = time.perf_counter()
                    call(f)
                    samples.append(time.perf_counter() - started)
                figures[name] = {
                    **percentiles(samples),
                    "cpu_ms": round((time.process_time() - cpu) * 1000 / len(filters), 1),
                }
                print(f"{name}: {figures[name]}")
            everything = services.map_grid(manager, engine, IncidentFilter(), 250)
            counted = sum(c["count"] for c in everything["cells"]) + sum(everything["without_point"].values())
            print(f"no cap: the 250 m grid of every incident counts {counted:,} of {incidents:,}")
            figures["grid_counts_every_incident"] = counted == incidents
            if not args.no_search:
                figures.update(measure_search(gov, engine, manager, root / "indexes", filters, args.runs, args.reuse))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
