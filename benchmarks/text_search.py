"""Full-text search of clinical notes: Tantivy (massalia.text) against PostgreSQL full-text search, same run.

Generates ``--patients`` patients' French documents with the real generator (seed 11), then inflates them
to ``--notes`` notes when more are asked for (copies of the generated notes under new note and person ids:
texts repeat beyond the generated pool, which the figures should be read with). Measures:

- indexing: notes/s of a full Tantivy build (the same path as ``massalia text index``; also notes per
  CPU-second of this process, which holds Tantivy's writer threads), and PostgreSQL's build (COPY +
  ``to_tsvector('french')`` of accent-folded text + GIN index + ANALYZE);
- p50/p95 latency of a term query, a phrase query and a term query filtered by a cohort (``--cohort-share``
  of all the persons indexed, 10 % by default), each a top-10 page with total count, site and kind facets
  and highlighted snippets, on both backends, and the ratios PostgreSQL / Tantivy. Both backends must find
  the same totals and facet counts for every query (checked: the run stops otherwise).

The PostgreSQL peer is tuned as a search server would be (:data:`PG_SETTINGS`: buffers that hold the
table, work memory for the bitmaps, no JIT) and searched through Massalia's backend
(:class:`massalia.text.postgres_index.PostgresTextIndex`): one statement per page that matches the rows once
(GIN) and reads the page, the total and the facets from them, ``ts_headline`` on the page's rows only.

Run from the repository: ``PYTHONPATH=src python benchmarks/text_search.py`` (small), ``--patients 5000
--notes 640000`` for the issue's size (about 100,000 persons) and ``--notes 1000000``; ``--skip-peer``
without a PostgreSQL server. Targets: >= 5,000 notes/s, p95 < 50 ms, >= 10x PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.documents.search import NOTES_SCHEMA, _note_batches, _rows
from massalia.health.etl import run_etl
from massalia.health.synth import generate
from massalia.text import SearchRequest, TantivyIndex

PG_SETTINGS = {
    "shared_buffers": "2GB",  # the 1,000,000-note table and its indexes stay in PostgreSQL's own cache
    "effective_cache_size": "8GB",
    "work_mem": "64MB",  # exact (not lossy) bitmaps and in-memory sorts for large hit sets
    "maintenance_work_mem": "1GB",  # the GIN build in memory
    "random_page_cost": "1.1",  # data in memory / on SSD
    "jit": "off",  # JIT compiles for tens of ms on costly plans: a search server turns it off
}
"""The peer's server settings, as a PostgreSQL search deployment on this machine would set them."""
QUERIES = {
    "term": "métastases",
    "phrase": '"tumeur maligne du sein"',
    "cohort": "métastases",  # with the cohort's person ids as a filter
}


def generated_notes(root: Path, patients: int) -> pa.Table:
    """The notes of ``patients`` generated patients (made once in ``root``), with the person's site."""
    path = root / f"notes-{patients}.duckdb"
    if not path.exists():
        t0 = time.perf_counter()
        generate(root / f"sources-{patients}", patients, seed=11, chunk_size=min(patients, 20_000), with_documents=True)
        with DuckDBEngine(path) as engine:
            run_etl(engine, root / f"sources-{patients}", metadata_url=f"sqlite:///{(root / 'etl.sqlite').as_posix()}")
        print(f"generated {patients:,} patients' documents in {time.perf_counter() - t0:.1f} s")
    with DuckDBEngine(path, read_only=True) as engine:
        return pa.concat_tables(list(_note_batches(engine, -(2**63))))


def inflated(pool: pa.Table, notes: int) -> Iterator[list[dict[str, Any]]]:
    """``notes`` notes in batches: the pool, then copies under new note and person ids."""
    rows = list(_rows(pool))
    top_note = max(r["note_id"] for r in rows) + 1
    top_person = max(r["person_id"] for r in rows) + 1
    made, copy = 0, 0
    while made < notes:
        batch = []
        for row in rows[: notes - made]:
            batch.append({**row, "note_id": row["note_id"] + copy * top_note,
                          "person_id": row["person_id"] + copy * top_person})  # fmt: skip
        made += len(batch)
        copy += 1
        for start in range(0, len(batch), 20_000):
            yield batch[start : start + 20_000]


def all_persons(pool: pa.Table, notes: int) -> list[int]:
    """The person ids of the ``notes`` notes :func:`inflated` makes (copies under new person ids)."""
    return sorted({row["person_id"] for batch in inflated(pool, notes) for row in batch})


def same_answers(tantivy: dict[str, Any], postgres: dict[str, Any]) -> list[str]:
    """Where the two backends disagree on a query's total or facet counts (empty: they agree)."""
    return [f"{name}: Tantivy {tantivy[name]['answer']} / PostgreSQL {postgres[name]['answer']}"
            for name in tantivy if tantivy[name]["answer"] != postgres[name]["answer"]]  # fmt: skip


def server_cpu(data_dir: Path) -> Callable[[], float]:
    """CPU seconds used so far by a PostgreSQL server (its postmaster and every process it started)."""
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")

    def used() -> float:
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            if int(entry.name) == postmaster or int(fields[1]) == postmaster:  # fields[1]: the parent's pid
                total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        return total / tick

    return used


def percentiles(call: Callable[[], Any], runs: int, cpu: Callable[[], float] | None = None) -> dict[str, float]:
    """p50 and p95 of ``runs`` calls in milliseconds (after two warm-up calls), and the mean CPU ms per call.

    The CPU time is this process's (Tantivy searches in it) plus ``cpu()``'s (a server's): unlike the
    latency, it does not grow with the machine's load.
    """
    for _ in range(2):
        call()
    times = []
    cpu0, server0 = time.process_time(), cpu() if cpu else 0.0
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    used = time.process_time() - cpu0 + ((cpu() - server0) if cpu else 0.0)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
            "cpu_ms": round(used * 1000 / runs, 2)}  # fmt: skip


def requests(persons: list[int]) -> dict[str, SearchRequest]:
    facets = ("site", "note_type")
    return {
        "term": SearchRequest(QUERIES["term"], facets=facets),
        "phrase": SearchRequest(QUERIES["phrase"], facets=facets),
        "cohort": SearchRequest(QUERIES["cohort"], ids={"person_id": persons}, facets=facets),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2000, help="patients generated (the pool of texts)")
    parser.add_argument("--notes", type=int, default=0, help="notes indexed (default: the pool's)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per query")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "massalia-bench-text")
    parser.add_argument("--cohort-share", type=float, default=0.10, help="share of all persons in the cohort")
    parser.add_argument("--skip-peer", action="store_true", help="no PostgreSQL comparison")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    pool = generated_notes(args.data, args.patients)
    notes = args.notes or pool.num_rows
    result: dict[str, Any] = {"patients": args.patients, "pool_notes": pool.num_rows, "notes": notes,
                              "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}  # fmt: skip

    root = args.data / f"index-{uuid.uuid4().hex[:8]}"
    try:
        run(args, pool, notes, root, result)
    finally:
        shutil.rmtree(root, ignore_errors=True)  # the index is data of this run only
    if args.json:
        args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


def run(args: argparse.Namespace, pool: pa.Table, notes: int, root: Path, result: dict[str, Any]) -> None:
    """Build and query both backends, filling ``result``; stop if they disagree on a total or a facet."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    with TantivyIndex.build(root, "notes", NOTES_SCHEMA) as index:
        for batch in inflated(pool, notes):
            index.add_new(batch)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    result["tantivy_index"] = {"seconds": round(seconds, 2), "notes_per_s": round(notes / seconds),
                               "cpu_seconds": round(cpu, 2), "notes_per_cpu_s": round(notes / cpu),
                               "loadavg_end": os.getloadavg()}  # fmt: skip
    print(f"Tantivy: indexed {notes:,} notes in {seconds:.1f} s ({notes / seconds:,.0f} notes/s,"
          f" {notes / cpu:,.0f} notes per CPU-second)", flush=True)  # fmt: skip
    index = TantivyIndex.open(root, "notes", NOTES_SCHEMA)
    everyone = all_persons(pool, notes)
    persons = sorted(random.Random(11).sample(everyone, max(1, round(len(everyone) * args.cohort_share))))
    result["persons"], result["cohort_persons"] = len(everyone), len(persons)
    result["tantivy"] = {}
    for name, request in requests(persons).items():
        found = index.search(request)
        timing = percentiles(lambda r=request: index.search(r), args.runs)
        result["tantivy"][name] = {**timing, "total": found.total, "answer": [found.total, found.facets],
                                   "loadavg": os.getloadavg()[0]}  # fmt: skip
        print(f"Tantivy {name:7s} {timing} total {found.total:,}", flush=True)

    if args.skip_peer:
        return
    from local_postgres import LocalPostgres

    from massalia.engine.postgres import PostgresEngine
    from massalia.text.postgres_index import PostgresTextIndex

    with LocalPostgres(settings=PG_SETTINGS) as server:
        engine = PostgresEngine(server.dsn, schema="bench")
        pg = PostgresTextIndex(engine, "notes", NOTES_SCHEMA)
        t0 = time.perf_counter()
        pg.build(inflated(pool, notes))
        seconds = time.perf_counter() - t0
        result["postgres_index"] = {"seconds": round(seconds, 2), "notes_per_s": round(notes / seconds),
                                    "loadavg_end": os.getloadavg()}  # fmt: skip
        print(f"PostgreSQL: indexed {notes:,} notes in {seconds:.1f} s ({notes / seconds:,.0f} notes/s)", flush=True)
        result["postgres"] = {}
        for name, request in requests(persons).items():
            found = pg.search(request)
            timing = percentiles(lambda r=request: pg.search(r), max(20, args.runs // 4), server_cpu(server.data_dir))
            mine = result["tantivy"][name]
            ratios = {
                f"ratio_{p}": round(timing[f"{p}_ms"] / max(mine[f"{p}_ms"], 1e-3), 1) for p in ("p50", "p95", "cpu")
            }
            result["postgres"][name] = {**timing, "total": found.total, "answer": [found.total, found.facets],
                                        "loadavg": os.getloadavg()[0], **ratios}  # fmt: skip
            print(f"PostgreSQL {name:7s} {timing} total {found.total:,}: Tantivy"
                  f" {result['postgres'][name]['ratio_p50']}x faster (p50)", flush=True)  # fmt: skip
        engine.close()
    differences = same_answers(result["tantivy"], result["postgres"])
    if differences:
        raise SystemExit("the backends disagree:\n" + "\n".join(differences))
    result["loadavg_end"] = os.getloadavg()


if __name__ == "__main__":
    main()
