"""Benchmark: generation + full ETL into OMOP on DuckDB vs a plain PostgreSQL bulk load of the same rows.

One command, side by side in one run, for each patient count:

1. **generate** the three sites' extracts (Massalia's generator);
2. **etl**: Massalia's full ETL (parse, map, validate, load) from the extracts into OMOP on DuckDB;
3. **peer**: PostgreSQL 15 loading the *same final OMOP rows* with a plain bulk load, the way an
   OHDSI site does it: server-side ``COPY ... FROM file (FORMAT csv)`` of each table (rows pre-sorted
   by person_id), then OHDSI's person/concept indexes (``../shared/bench/peer-sql/indexes_pg.sql``; no
   primary keys and no ANALYZE, to keep the peer as fast as the reference measurement).
   Exporting the rows to CSV for the peer is not timed.

Each phase runs in its own process so its peak RSS is its own (``os.wait4``). The ratio printed is
PostgreSQL's plain load time over Massalia's full ETL time (target ≥ 2.5).

Usage::

    python benchmarks/etl_load.py --patients 100000 [--patients 1000000] [--no-documents] [--skip-peer]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_INDEXES = ROOT.parent / "shared" / "bench" / "peer-sql" / "indexes_pg.sql"
CLINICAL_TABLES = (
    "person",
    "observation_period",
    "visit_occurrence",
    "condition_occurrence",
    "drug_exposure",
    "procedure_occurrence",
    "measurement",
    "observation",
    "death",
    "note",
    "episode",
    "episode_event",
    "location",
    "care_site",
    "provider",
    "cdm_source",
    "source_to_concept_map",
)


# --- phases (each runs in a child process) ---------------------------------------------------
def phase_generate(args: argparse.Namespace) -> dict:
    from massalia.health.synth import generate

    start = time.perf_counter()
    summary = generate(Path(args.sources), args.n, seed=args.seed, with_documents=bool(args.docs))
    seconds = time.perf_counter() - start
    rows = getattr(summary, "total_rows", None)
    return {"seconds": seconds, "rows": rows}


def phase_etl(args: argparse.Namespace) -> dict:
    from massalia.engine.duckdb import DuckDBEngine
    from massalia.health.etl import run_etl

    engine = DuckDBEngine(args.warehouse)
    start = time.perf_counter()
    report = run_etl(engine, Path(args.sources), metadata_url=f"sqlite:///{args.metadata}")
    seconds = time.perf_counter() - start
    rows = {t: engine.row_count(t) for t in CLINICAL_TABLES if engine.table_exists(t)}
    engine.close()
    return {"seconds": seconds, "rows": sum(rows.values()), "tables": rows, "report": str(report)[:2000]}


def phase_export(args: argparse.Namespace) -> dict:
    """Untimed, in its own process (so its memory is not the ETL's): the final rows as the peer's CSV input."""
    from massalia.engine.duckdb import DuckDBEngine

    engine = DuckDBEngine(args.warehouse, read_only=True)
    export = Path(args.export)
    export.mkdir(parents=True, exist_ok=True)
    for table in CLINICAL_TABLES:
        if not engine.table_exists(table) or engine.row_count(table) == 0:
            continue
        order = "ORDER BY person_id" if "person_id" in {c.name for c in engine.describe(table)} else ""
        engine.execute_native(
            f"COPY (SELECT * FROM {table} {order}) TO '{(export / f'{table}.csv').as_posix()}' (FORMAT csv, HEADER)"
        )
    engine.close()
    return {"seconds": 0.0}


def phase_peer(args: argparse.Namespace) -> dict:
    import psycopg
    from local_postgres import LocalPostgres

    from massalia.health.omop.schema import cdm_table

    export = Path(args.export)
    export.chmod(0o755)
    for path in export.iterdir():
        path.chmod(0o644)
    settings = {"maintenance_work_mem": "1GB", "max_wal_size": "8GB"}
    with LocalPostgres(settings=settings) as server, psycopg.connect(server.dsn, autocommit=True) as connection:
        tables = sorted(p.stem for p in export.glob("*.csv"))
        for table in tables:
            connection.execute(cdm_table(table).create_statement("postgres", primary_key=False))
        rows = 0
        start = time.perf_counter()
        for table in tables:
            cursor = connection.execute(
                f"COPY {table} FROM '{(export / f'{table}.csv').as_posix()}' (FORMAT csv, HEADER)"
            )
            rows += cursor.rowcount
        copy_seconds = time.perf_counter() - start
        index_start = time.perf_counter()
        for statement in PEER_INDEXES.read_text().split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            table = body.split(" ON ")[1].split()[0] if " ON " in body else None
            if body and table in tables:
                connection.execute(body)
        index_seconds = time.perf_counter() - index_start
    return {
        "seconds": copy_seconds + index_seconds,
        "copy_seconds": copy_seconds,
        "index_seconds": index_seconds,
        "rows": rows,
    }


PHASES = {"generate": phase_generate, "etl": phase_etl, "export": phase_export, "peer": phase_peer}


# --- driver ------------------------------------------------------------------------------------
def run_phase(name: str, **options: object) -> dict:
    """Run one phase in a child process; return its JSON result plus its own peak RSS."""
    command = [sys.executable, __file__, "--phase", name]
    for key, value in options.items():
        command += [f"--{key}", str(value)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(process.pid, 0)
    output = process.stdout.read() if process.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"phase {name} failed (exit {os.waitstatus_to_exitcode(status)})")
    result = json.loads(output.strip().splitlines()[-1])
    result["peak_rss_gb"] = usage.ru_maxrss / 1024 / 1024  # ru_maxrss is in KiB on Linux
    return result


def bench(n: int, *, seed: int, documents: bool, skip_peer: bool, workdir: Path) -> dict:
    base = workdir / f"n{n}"
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    sources, export = base / "sources", Path(tempfile.mkdtemp(prefix="massalia-peer-"))
    result = {"patients": n}
    try:
        result["generate"] = run_phase("generate", sources=sources, n=n, seed=seed, docs=int(documents))
        result["etl"] = run_phase(
            "etl",
            sources=sources,
            warehouse=base / "warehouse.duckdb",
            metadata=base / "metadata.sqlite",
        )
        if not skip_peer:
            run_phase("export", warehouse=base / "warehouse.duckdb", export=export)
            result["peer"] = run_phase("peer", export=export)
    finally:
        shutil.rmtree(export, ignore_errors=True)
    return result


def print_result(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['patients']:,} patients")
    for column in ("step", "seconds", "rows", "rows/s", "peak RSS (GB)"):
        table.add_column(column, justify="right" if column != "step" else "left")
    labels = {
        "generate": "generate (Massalia)",
        "etl": "full ETL into OMOP, DuckDB (Massalia)",
        "peer": "plain COPY + OHDSI indexes, PostgreSQL 15 (peer)",
    }
    for step in ("generate", "etl", "peer"):
        if step not in result:
            continue
        r = result[step]
        rows = r.get("rows") or 0
        table.add_row(
            labels[step],
            f"{r['seconds']:.1f}",
            f"{rows:,}",
            f"{rows / r['seconds']:,.0f}" if rows else "-",
            f"{r['peak_rss_gb']:.2f}",
        )
    Console().print(table)
    if "peer" in result:
        peer = result["peer"]
        ratio = peer["seconds"] / result["etl"]["seconds"]
        Console().print(
            f"PostgreSQL plain load {peer['seconds']:.1f} s (COPY {peer['copy_seconds']:.1f} s + keys/indexes "
            f"{peer['index_seconds']:.1f} s) / Massalia full ETL {result['etl']['seconds']:.1f} s = "
            f"[bold]{ratio:.2f}×[/] (target ≥ 2.5×)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, action="append", help="patient counts (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-documents", dest="documents", action="store_false")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--workdir", type=Path, default=ROOT / "benchmarks" / "out")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    # phase arguments (internal)
    parser.add_argument("--phase", choices=sorted(PHASES))
    for name in ("sources", "warehouse", "metadata", "export"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--n", type=int)
    parser.add_argument("--docs", type=int, default=1)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return
    results = []
    for n in args.patients or [100_000]:
        result = bench(n, seed=args.seed, documents=args.documents, skip_peer=args.skip_peer, workdir=args.workdir)
        print_result(result)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
