"""Benchmark: four ATLAS-style cohorts, Massalia on DuckDB vs OHDSI-shaped SQL on PostgreSQL 15.

One command, side by side in one run, for each patient count:

* **Massalia** (DuckDB): full generation of each cohort = ``generate_and_analyze`` (cohort rows written
  to the ``cohort`` table, provenance recorded, and the inclusion-rule bitmask of every qualified event,
  from one run of the steps) + its attrition table; Q4 adds the attrition by 5-year age band x sex from the same
  bitmasks. The definitions are Massalia JSON files under ``benchmarks/cohorts/``.
* **PostgreSQL peer**: the same cohorts as OHDSI WebAPI runs them on PostgreSQL 15 (Circe-shaped SQL,
  temporary tables with ``ANALYZE`` between steps, OHDSI's indexes), rendered at run time from
  ``../shared/bench/peer-sql/build_queries.py`` with the concept ids of the definitions, into a
  temporary folder; each ``qN_tt.sql`` timed end to end (all statements).
* **hand-written DuckDB SQL** (``benchmarks/cohorts/hand/qN.sql``): the same outputs (events with
  their rule bitmask, the cohort table, the rule statistics), written directly.
* **raw scan**: DuckDB ``count(*)`` + ``sum(column)`` of each table the cohort touches.
* **what-if toggle**: ``analyze_cohort(...).count(enabled)`` over every on/off combination of the rules.

Each timing is the median of ``--runs`` warm runs; the first (cold) run of each is reported too.
Correctness first: the persons/events counts and a fingerprint of the cohort rows of Massalia, the
peer and the hand SQL must agree (Q4: the whole age band x sex table), else a mismatch report is
printed and the exit status is 1.

The data (extracts, DuckDB warehouse, CSV export for the peer) come from ``etl_load.py``'s phases,
imported, and are cached under ``--data`` between runs.

Usage::

    python benchmarks/cohorts.py --patients 100000 [--patients 1000000] [--data DIR] [--runs 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import etl_load  # noqa: E402  (the data phases are shared with the ETL benchmark, not copied)

ROOT = HERE.parent
DEFINITIONS = HERE / "cohorts"
HAND = DEFINITIONS / "hand"
PEER_SQL = ROOT.parent / "shared" / "bench" / "peer-sql"
VOCABULARY_TABLES = ("concept", "concept_ancestor")
PEER_TABLES = (
    "concept", "concept_ancestor", "person", "observation_period", "condition_occurrence", "drug_exposure",
    "measurement", "death", "visit_occurrence",
)  # fmt: skip
PEER_SETTINGS = {
    # A reasonably tuned PostgreSQL for a 2-core, 23 GB machine (an OHDSI site would tune at least these).
    "maintenance_work_mem": "1GB", "max_wal_size": "8GB", "shared_buffers": "4GB", "work_mem": "256MB",
    "effective_cache_size": "12GB", "random_page_cost": "1.1", "max_parallel_workers_per_gather": "2",
    "temp_buffers": "256MB",
}  # fmt: skip
BREAST_TABLES = {
    "concept": "concept_id", "concept_ancestor": "descendant_concept_id", "person": "year_of_birth",
    "observation_period": "person_id", "condition_occurrence": "condition_concept_id",
}  # fmt: skip
Q2_TABLES = BREAST_TABLES | {"drug_exposure": "drug_concept_id", "measurement": "value_as_number"}


DEFAULT_PRIOR_DAYS = 365
"""Prior observation required at the breast-cancer entry event (Q1, Q2, Q4), as written in the definitions."""


@dataclass(frozen=True)
class Cohort:
    """One benchmarked cohort: its Massalia definition, peer script, hand SQL and the tables it reads."""

    key: str
    title: str
    definition: str
    tables: dict[str, str]
    strata: bool = False


COHORTS = (
    Cohort("q1", "women 40-75 at first breast cancer, {prior} d prior observation", "q1.json", BREAST_TABLES),
    Cohort("q2", "Q1 + chemotherapy 0-90 d after + hemoglobin > 10 in 30 d before", "q2.json", Q2_TABLES),
    Cohort("q3", "first lung cancer, alive at 1 year, >= 2 visits in the year", "q3.json", {
        "concept": "concept_id", "concept_ancestor": "descendant_concept_id", "observation_period": "person_id",
        "condition_occurrence": "condition_concept_id", "death": "person_id", "visit_occurrence": "visit_concept_id",
    }),
    Cohort("q4", "Q2 attrition by 5-year age band x sex", "q2.json", Q2_TABLES | {"person": "year_of_birth"},
           strata=True),
)  # fmt: skip


# --- data ----------------------------------------------------------------------------------------
def prepare_data(n: int, data: Path, *, seed: int, export_peer: bool = True) -> tuple[Path, dict[str, Any]]:
    """Generate, ETL and export ``n`` patients under ``data/n{n}`` unless already there; return the folder.

    Each step leaves a ``<step>.json`` marker (its result) when it completes; a step is rerun only when
    its marker is missing (and then every later step too). ``export_peer=False`` (``--skip-peer``) skips
    the CSV export, which only the PostgreSQL peer reads (≈ 55 GB at 1,000,000 patients).
    """
    base = data.resolve() / f"n{n}"
    base.mkdir(parents=True, exist_ok=True)
    sources, warehouse, export = base / "sources", base / "warehouse.duckdb", base / "export"
    steps: dict[str, Any] = {}
    redo = False

    def done(step: str) -> bool:
        marker = base / f"{step}.json"
        if not redo and marker.exists():
            steps[step] = json.loads(marker.read_text().strip().splitlines()[-1])
            return True
        return False

    def record(step: str, result: dict[str, Any]) -> None:
        (base / f"{step}.json").write_text(json.dumps(result))
        steps[step] = result

    if not done("generate"):
        redo = True
        shutil.rmtree(sources, ignore_errors=True)
        print(f"[{n:,}] generating the extracts (no documents)…", flush=True)
        record("generate", etl_load.run_phase("generate", sources=sources, n=n, seed=seed, docs=0))
    if not done("etl"):
        redo = True
        for path in base.glob("warehouse.duckdb*"):
            path.unlink()
        (base / "metadata.sqlite").unlink(missing_ok=True)
        print(f"[{n:,}] ETL into the DuckDB warehouse…", flush=True)
        metadata = base / "metadata.sqlite"
        record("etl", etl_load.run_phase("etl", sources=sources, warehouse=warehouse, metadata=metadata))
    if export_peer and not done("export"):
        shutil.rmtree(export, ignore_errors=True)
        print(f"[{n:,}] exporting the OMOP tables as CSV for the PostgreSQL peer…", flush=True)
        start = time.perf_counter()
        etl_load.run_phase("export", warehouse=warehouse, export=export)
        export_vocabulary(warehouse, export)
        record("export", {"seconds": time.perf_counter() - start})
    return base, steps


SHARED_ID_COLUMNS = frozenset({"provider_id", "care_site_id", "location_id"})
"""Id columns that point at tables every copy shares (not offset when replicating)."""
SKIPPED_TABLES = ("cohort", "cohort_generation")
REPLICA_ID_STRIDE = 1 << 50
"""Added k times to every record id of copy k (the generated ids stay below 2**50)."""


def replicate_warehouse(source: Path, target: Path, copies: int) -> dict[str, Any]:
    """Build ``target`` from ``copies`` copies of the patients of ``source`` (disjoint person and record ids).

    For a larger warehouse than this machine's disk lets the ETL build: every table with a person_id
    (and EPISODE_EVENT) is copied ``copies`` times, copy k adding k * 2**50 to each BIGINT id column
    except those pointing at shared tables (provider, care site, location); vocabulary and reference
    tables are copied once; ETL bookkeeping and cohort tables are left out. Every cohort of the copy
    holds exactly ``copies`` times the persons of the source (compare with the source's own run).
    """
    import duckdb
    from rich.progress import track

    start = time.perf_counter()
    target.unlink(missing_ok=True)
    con = duckdb.connect(str(target))
    con.execute(f"ATTACH '{source.as_posix()}' AS src (READ_ONLY)")
    tables = [name for (name,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = 'src' ORDER BY table_name").fetchall()
        if name not in SKIPPED_TABLES and not name.startswith("etl_")]  # fmt: skip
    rows = 0
    for table in track(tables, description=f"copying {copies}×"):
        columns = con.execute(
            "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = 'src' AND table_name = ?"
            " ORDER BY column_index", [table]).fetchall()  # fmt: skip
        names = [name for name, _ in columns]
        offset = {name for name, kind in columns if kind == "BIGINT" and name.endswith("_id")
                  and name not in SHARED_ID_COLUMNS}  # fmt: skip
        clinical = "person_id" in names or table == "episode_event"
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM src.{table} LIMIT 0")
        for k in range(copies if clinical else 1):
            select = ", ".join(f'"{n}" + {k * REPLICA_ID_STRIDE}' if n in offset and k else f'"{n}"' for n in names)
            con.execute(f"INSERT INTO {table} SELECT {select} FROM src.{table}")
        rows += con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    con.execute("DETACH src")
    con.execute("CHECKPOINT")
    con.close()
    return {"seconds": time.perf_counter() - start, "rows": rows, "copies": copies, "source": str(source)}


def prepare_replica(n: int, data: Path, source_n: int, *, seed: int) -> tuple[Path, dict[str, Any]]:
    """The warehouse of ``n`` patients as ``n // source_n`` copies of the generated ``source_n`` one."""
    if n % source_n:
        raise SystemExit(f"--replicate-from {source_n} must divide --patients {n}")
    source, steps = prepare_data(source_n, data, seed=seed, export_peer=False)
    base = data.resolve() / f"n{n}-replica-of-{source_n}"
    base.mkdir(parents=True, exist_ok=True)
    marker = base / "replicate.json"
    if not marker.exists():
        print(f"[{n:,}] replicating the {source_n:,}-patient warehouse {n // source_n}×…", flush=True)
        marker.write_text(json.dumps(replicate_warehouse(source / "warehouse.duckdb", base / "warehouse.duckdb",
                                                         n // source_n)))  # fmt: skip
    return base, {**steps, "replicate": json.loads(marker.read_text())}


def export_vocabulary(warehouse: Path, export: Path) -> None:
    """The vocabulary tables the peer's concept sets read (``etl_load``'s export has the clinical ones)."""
    from massalia.engine.duckdb import DuckDBEngine

    engine = DuckDBEngine(warehouse, read_only=True)
    try:
        for table in VOCABULARY_TABLES:
            engine.execute_native(f"COPY {table} TO '{(export / f'{table}.csv').as_posix()}' (FORMAT csv, HEADER)")
    finally:
        engine.close()


def load_peer(dsn: str, export: Path) -> dict[str, float]:
    """Load the peer's tables (COPY), build OHDSI's indexes, then VACUUM ANALYZE (a site's steady state)."""
    import psycopg

    from massalia.health.omop.schema import cdm_table

    export.chmod(0o755)
    for path in export.iterdir():
        path.chmod(0o644)
    missing = [t for t in PEER_TABLES if not (export / f"{t}.csv").exists()]
    if missing:
        raise SystemExit(f"the export {export} lacks {', '.join(missing)}: delete {export.parent / 'export.json'}")
    timings: dict[str, float] = {}
    with psycopg.connect(dsn, autocommit=True) as connection:
        start = time.perf_counter()
        for table in PEER_TABLES:
            connection.execute(cdm_table(table).create_statement("postgres", primary_key=False))
            connection.execute(f"COPY {table} FROM '{(export / f'{table}.csv').as_posix()}' (FORMAT csv, HEADER)")
        timings["copy_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        for statement in etl_load.PEER_INDEXES.read_text().split(";"):
            body = "\n".join(line for line in statement.splitlines() if not line.startswith("--")).strip()
            table = body.split(" ON ")[1].split()[0] if " ON " in body else None
            if body and table in PEER_TABLES:
                connection.execute(body)
        timings["index_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        for table in PEER_TABLES:
            connection.execute(f"VACUUM ANALYZE {table}")
        timings["analyze_seconds"] = time.perf_counter() - start
    return timings


# --- the peer's SQL --------------------------------------------------------------------------------
def concept_ids() -> dict[str, list[int]]:
    """The concept ids of the definitions' concept sets, by the peer's names (one source of truth)."""
    from massalia.health.cohorts import CohortDefinition

    q2 = CohortDefinition.from_json((DEFINITIONS / "q2.json").read_text())
    q3 = CohortDefinition.from_json((DEFINITIONS / "q3.json").read_text())

    def ids(definition: CohortDefinition, codeset_id: int) -> list[int]:
        concept_set = definition.concept_set(codeset_id)
        if concept_set is None:
            raise SystemExit(f"concept set {codeset_id} missing from the benchmark definitions")
        return [item.concept.concept_id for item in concept_set.expression.items]

    return {"BREAST": ids(q2, 0), "CHEMO": ids(q2, 1), "HGB": ids(q2, 2), "LUNG": ids(q3, 3)}


def render_peer(folder: Path, prior_days: int = DEFAULT_PRIOR_DAYS) -> dict[str, list[str]]:
    """Render the peer's ``qN_tt.sql`` with our concept ids into ``folder``; return each one's statements.

    ``prior_days`` replaces the peer's 365 days of prior observation at the breast-cancer entry.
    """
    ids = concept_ids()
    for name in ("BREAST", "HGB", "LUNG"):
        if len(ids[name]) != 1:
            raise SystemExit(f"the peer takes one {name} concept, the definitions have {ids[name]}")
    text = (PEER_SQL / "build_queries.py").read_text()
    constants = f"BREAST, LUNG, HGB = {ids['BREAST'][0]}, {ids['LUNG'][0]}, {ids['HGB'][0]}"
    text, replaced = re.subn(r"^BREAST, LUNG, HGB = .*$", constants, text, count=1, flags=re.M)
    chemo = ",".join(str(i) for i in ids["CHEMO"])
    text, replaced_chemo = re.subn(r'^CHEMO = ".*"$', f'CHEMO = "{chemo}"', text, count=1, flags=re.M)
    entry = f"primary_condition(0, Q1_WHERE, {int(prior_days)})"
    text, replaced_prior = re.subn(r"primary_condition\(0, Q1_WHERE, 365\)", entry, text, count=1)
    if not (replaced and replaced_chemo and replaced_prior):
        raise SystemExit(f"{PEER_SQL / 'build_queries.py'} changed: its concept-id constants were not found")
    (folder / "build_queries.py").write_text(text)
    subprocess.run([sys.executable, str(folder / "build_queries.py")], check=True, capture_output=True)
    scripts = {}
    for cohort in COHORTS:
        sql = (folder / "queries" / f"{cohort.key}_tt.sql").read_text()
        scripts[cohort.key] = [s for s in (part.strip() for part in sql.split(";\n")) if _has_sql(s)]
    return scripts


def _has_sql(statement: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines())


def run_peer_script(connection: Any, statements: list[str]) -> tuple[list[tuple], list[tuple[str, float]]]:
    """Run every statement of a peer script; return the rows of its SELECT and each statement's seconds."""
    rows: list[tuple] = []
    steps = []
    for statement in statements:
        start = time.perf_counter()
        cursor = connection.execute(statement)
        if cursor.description is not None:
            rows = cursor.fetchall()
        label = next(line for line in statement.splitlines() if line.strip() and not line.startswith("--"))
        steps.append((label.strip()[:60], time.perf_counter() - start))
    return rows, steps


# --- timing helpers -------------------------------------------------------------------------------
def timed(action: Callable[[], Any], runs: int) -> dict[str, Any]:
    """First (cold) run, then ``runs`` warm runs: their times and the last result."""
    times = []
    result = None
    for _ in range(runs + 1):
        start = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - start)
    return {"first": times[0], "median": statistics.median(times[1:]), "warm": times[1:], "result": result}


def fingerprint_rows(rows: list[tuple]) -> dict[str, int]:
    """Persons, events and sums of the ids and dates of cohort rows (subject_id, start, end)."""
    epoch = dt.date(1970, 1, 1)

    def day(value: dt.date) -> dt.date:  # the peer's date arithmetic can give timestamps
        return value.date() if isinstance(value, dt.datetime) else value

    return {
        "persons": len({r[0] for r in rows}),
        "events": len(rows),
        "id_sum": sum(int(r[0]) for r in rows),
        "start_sum": sum((day(r[1]) - epoch).days for r in rows),
        "end_sum": sum((day(r[2]) - epoch).days for r in rows),
    }


def fingerprint_table(engine: Any, table: str, cohort_definition_id: int) -> dict[str, int]:
    """The same fingerprint, computed by DuckDB over a cohort table."""
    row = engine.query_native(
        "SELECT count(DISTINCT subject_id) AS persons, count(*) AS events, coalesce(sum(subject_id), 0) AS id_sum,"
        " coalesce(sum(cohort_start_date - DATE '1970-01-01'), 0) AS start_sum,"
        " coalesce(sum(cohort_end_date - DATE '1970-01-01'), 0) AS end_sum"
        f" FROM {table} WHERE cohort_definition_id = {int(cohort_definition_id)}"
    ).to_pylist()[0]
    return {k: int(v) for k, v in row.items()}


# --- Massalia ------------------------------------------------------------------------------------
def massalia_strata(engine: Any, analysis: Any) -> dict[tuple[int, int], tuple[int, int, int, int]]:
    """Attrition by 5-year age band x sex from the analysis bitmasks: qualified, rule 1, rule 2, final."""
    import numpy as np

    person = engine.query_native("SELECT person_id, year_of_birth, gender_concept_id FROM person ORDER BY person_id")
    ids = person.column("person_id").to_numpy().astype(np.int64)
    where = np.searchsorted(ids, analysis.person_id)
    year = analysis.start_date.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    band = (np.floor((year - person.column("year_of_birth").to_numpy()[where]) / 5) * 5).astype(np.int64)
    gender = person.column("gender_concept_id").to_numpy()[where].astype(np.int64)
    full = analysis.required_mask()
    keys, inverse = np.unique(np.stack([band, gender], axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    columns = [np.ones_like(analysis.mask), analysis.mask & 1, (analysis.mask >> 1) & 1, analysis.mask == full]
    counts = [np.bincount(inverse, weights=c.astype(np.int64), minlength=len(keys)).astype(int) for c in columns]
    return {
        (int(k[0]), int(k[1])): tuple(int(c[i]) for c in counts)  # type: ignore[misc]
        for i, k in enumerate(keys)
    }


def massalia_run(engine: Any, definition: Any, cohort_definition_id: int, strata: bool) -> dict[str, Any]:
    """Full generation: cohort rows written + inclusion-rule statistics (+ strata for Q4)."""
    import numpy as np

    from massalia.health.cohorts.service import generate_and_analyze

    t0 = time.perf_counter()
    generation, analysis = generate_and_analyze(engine, definition, cohort_definition_id)
    t1 = time.perf_counter()
    base, rules = analysis.attrition(allowed_raw=True)
    t2 = time.perf_counter()
    masks, mask_counts = np.unique(analysis.mask, return_counts=True)
    result: dict[str, Any] = {
        "persons": generation.persons, "events": generation.rows, "generate_seconds": t1 - t0,
        "analyze_seconds": t2 - t1, "analysis": analysis,
        "masks": {int(m): int(c) for m, c in zip(masks, mask_counts, strict=True)},
        "attrition": [base.__dict__] + [r.__dict__ for r in rules],
    }  # fmt: skip
    if strata:
        result["strata"] = massalia_strata(engine, analysis)
        result["strata_seconds"] = time.perf_counter() - t2
    return result


def toggle_times(analysis: Any, repeat: int = 20) -> list[float]:
    """Seconds of ``analysis.count(enabled)`` for every on/off combination of the rules, ``repeat`` times."""
    times = []
    for flags in itertools.product((True, False), repeat=len(analysis.rule_names)):
        for _ in range(repeat):
            start = time.perf_counter()
            analysis.count(list(flags), allowed_raw=True)
            times.append(time.perf_counter() - start)
    return times


def load_definition(cohort: Cohort, prior_days: int) -> Any:
    """The cohort's Massalia definition, its entry's prior observation set to ``prior_days`` if it has one."""
    from massalia.health.cohorts import CohortDefinition

    definition = CohortDefinition.from_json((DEFINITIONS / cohort.definition).read_text())
    primary = definition.primary_criteria
    if primary.observation_window.prior_days != DEFAULT_PRIOR_DAYS:
        return definition
    window = primary.observation_window.model_copy(update={"prior_days": prior_days})
    return definition.model_copy(update={"primary_criteria": primary.model_copy(update={"observation_window": window})})


# --- hand-written SQL and raw scan ---------------------------------------------------------------
def hand_statements(key: str, prior_days: int = DEFAULT_PRIOR_DAYS) -> list[str]:
    """The statements of ``hand/{key}.sql`` (one per ``;`` at a line end), with ``prior_days`` at the entry."""
    text = (HAND / f"{key}.sql").read_text()
    window = f"op.observation_period_start_date + {DEFAULT_PRIOR_DAYS} AND"
    if window in text:
        text = text.replace(window, f"op.observation_period_start_date + {int(prior_days)} AND")
    return [s for s in (part.strip() for part in re.split(r";\s*\n", text)) if _has_sql(s)]


def run_hand(engine: Any, statements: list[str]) -> list[dict[str, Any]]:
    """Run the hand SQL; return the rows of its last statement (rule statistics or attrition)."""
    for statement in statements[:-1]:
        engine.execute_native(statement)
    return engine.query_native(statements[-1]).to_pylist()


def raw_scan(engine: Any, tables: dict[str, str]) -> list[tuple]:
    """``count(*)`` and the sum of one column of each table."""
    return [
        tuple(engine.query_native(f"SELECT count(*) AS n, sum({column}) AS s FROM {table}").to_pylist()[0].values())
        for table, column in tables.items()
    ]


# --- the run -------------------------------------------------------------------------------------
def bench(
    n: int, *, data: Path, seed: int, runs: int, skip_peer: bool, prior_days: int, replicate_from: int | None = None
) -> dict[str, Any]:
    """Prepare the data, then time the four cohorts on the four systems; return the results."""
    from massalia.engine.duckdb import DuckDBEngine

    if replicate_from is not None:
        if not skip_peer:
            raise SystemExit("--replicate-from needs --skip-peer (the peer loads the CSV export of generated data)")
        base, steps = prepare_replica(n, data, replicate_from, seed=seed)
    else:
        base, steps = prepare_data(n, data, seed=seed, export_peer=not skip_peer)
    warehouse = base / "warehouse.duckdb"
    result: dict[str, Any] = {
        "patients": n, "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "loadavg_start": os.getloadavg(), "cpus": os.cpu_count(), "runs": runs, "prior_days": prior_days,
        "data": steps, "cohorts": {},
    }  # fmt: skip
    cohorts: dict[str, dict[str, Any]] = {c.key: {"title": c.title.format(prior=prior_days)} for c in COHORTS}

    if not skip_peer:
        import psycopg
        from local_postgres import LocalPostgres

        with tempfile.TemporaryDirectory(prefix="massalia-peer-sql-") as folder:
            scripts = render_peer(Path(folder), prior_days)
        with LocalPostgres(settings=PEER_SETTINGS) as server:
            print(f"[{n:,}] loading the PostgreSQL peer…", flush=True)
            result["peer_load"] = load_peer(server.dsn, base / "export")
            with psycopg.connect(server.dsn, autocommit=True) as connection:
                for cohort in COHORTS:
                    print(f"[{n:,}] {cohort.key} PostgreSQL peer…", flush=True)
                    timing = timed(lambda c=cohort: run_peer_script(connection, scripts[c.key]), runs)
                    rows, steps = timing.pop("result")
                    timing["slowest_statements"] = sorted(steps, key=lambda step: -step[1])[:3]
                    if cohort.strata:  # age band, gender id, gender name, qualified, rule 1, rule 2, final
                        timing["strata"] = {(int(r[0]), int(r[1])): tuple(int(v) for v in r[3:7]) for r in rows}
                    else:
                        timing["fingerprint"] = fingerprint_rows(rows)
                    cohorts[cohort.key]["peer"] = timing

    for index, cohort in enumerate(COHORTS, start=1):
        definition = load_definition(cohort, prior_days)
        entry = cohorts[cohort.key]
        print(f"[{n:,}] {cohort.key} Massalia, hand SQL, raw scan…", flush=True)
        # a fresh engine for each system, so each first run starts with an empty DuckDB buffer pool
        engine = DuckDBEngine(warehouse)
        try:
            timing = timed(lambda e=engine, d=definition, i=index, s=cohort.strata: massalia_run(e, d, i, s), runs)
            last = timing.pop("result")
            analysis = last.pop("analysis")
            timing |= last
            timing["fingerprint"] = fingerprint_table(engine, "cohort", index)
            toggles = toggle_times(analysis)
            timing["toggle_median"] = statistics.median(toggles)
            timing["toggle_max"] = max(toggles)
            entry["massalia"] = timing
        finally:
            engine.close()
        engine = DuckDBEngine(warehouse)
        try:
            statements = hand_statements(cohort.key, prior_days)
            timing = timed(lambda e=engine, s=statements: run_hand(e, s), runs)
            rows = timing.pop("result")
            if cohort.strata:
                timing["strata"] = {
                    (r["age_band_start"], r["gender_concept_id"]): (
                        r["qualified"],
                        r["rule_1"],
                        r["rule_2"],
                        r["final"],
                    )
                    for r in rows
                }
            else:
                timing["masks"] = {int(r["mask"]): int(r["events"]) for r in rows}
            timing["fingerprint"] = fingerprint_table(engine, "hand_cohort", index)
            entry["hand"] = timing
            engine.execute_native("DROP TABLE IF EXISTS hand_cohort")
        finally:
            engine.close()
        engine = DuckDBEngine(warehouse)
        try:
            timing = timed(lambda e=engine, t=cohort.tables: raw_scan(e, t), runs)
            timing["rows"] = sum(int(r[0]) for r in timing.pop("result"))
            entry["raw_scan"] = timing
        finally:
            engine.close()
    result["cohorts"] = cohorts
    result["loadavg_end"] = os.getloadavg()
    result["mismatches"] = check(result)
    return result


def check(result: dict[str, Any]) -> list[str]:
    """Every disagreement between Massalia, the hand SQL and the peer, in words (empty when they agree)."""
    problems = []
    for cohort in COHORTS:
        entry = result["cohorts"][cohort.key]
        massalia, hand, peer = entry["massalia"], entry["hand"], entry.get("peer")
        if massalia["fingerprint"] != hand["fingerprint"]:
            problems.append(f"{cohort.key}: cohort rows differ, Massalia {massalia['fingerprint']} vs hand SQL "
                            f"{hand['fingerprint']}")  # fmt: skip
        if cohort.strata:
            for name, other in (("hand SQL", hand), ("PostgreSQL peer", peer)):
                if other is not None and other["strata"] != massalia["strata"]:
                    keys = sorted(set(other["strata"]) | set(massalia["strata"]))
                    diff = [(k, massalia["strata"].get(k), other["strata"].get(k)) for k in keys
                            if massalia["strata"].get(k) != other["strata"].get(k)]  # fmt: skip
                    problems.append(f"{cohort.key}: attrition by age band x sex differs from the {name} in "
                                    f"{len(diff)} cells (band, gender: Massalia vs {name}): {diff[:5]}")  # fmt: skip
            continue
        if massalia["masks"] != hand["masks"]:
            problems.append(f"{cohort.key}: inclusion-rule bitmask counts differ, Massalia {massalia['masks']} vs "
                            f"hand SQL {hand['masks']}")  # fmt: skip
        if peer is not None and peer["fingerprint"] != massalia["fingerprint"]:
            problems.append(f"{cohort.key}: cohort rows differ, Massalia {massalia['fingerprint']} vs PostgreSQL "
                            f"peer {peer['fingerprint']}")  # fmt: skip
    return problems


def print_result(result: dict[str, Any]) -> None:
    """The side-by-side Rich table, the ratios and the load average."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=180)
    table = Table(title=f"Cohorts at {result['patients']:,} patients — median of {result['runs']} warm runs "
                        "(first run in brackets), milliseconds")  # fmt: skip
    for column in ("cohort", "persons", "Massalia (DuckDB)", "PostgreSQL 15 peer", "hand DuckDB SQL", "raw scan",
                   "PG / Massalia", "Massalia / hand", "Massalia / raw", "toggle (ms)"):  # fmt: skip
        table.add_column(column, justify="left" if column == "cohort" else "right")

    def ms(timing: dict[str, Any] | None) -> str:
        return "-" if timing is None else f"{timing['median'] * 1000:,.0f} ({timing['first'] * 1000:,.0f})"

    for cohort in COHORTS:
        entry = result["cohorts"][cohort.key]
        massalia, peer, hand, scan = entry["massalia"], entry.get("peer"), entry["hand"], entry["raw_scan"]
        m = massalia["median"]
        table.add_row(
            cohort.key,
            f"{massalia['persons']:,}",
            ms(massalia),
            ms(peer),
            ms(hand),
            ms(scan),
            f"{peer['median'] / m:.2f}×" if peer else "-",
            f"{m / hand['median']:.2f}×",
            f"{m / scan['median']:.1f}×",
            f"{massalia['toggle_median'] * 1000:.3f}",
        )
    console.print(table)
    for cohort in COHORTS:
        console.print(f"{cohort.key}: {result['cohorts'][cohort.key]['title']}")
    if "peer_load" in result:
        load = result["peer_load"]
        console.print(f"PostgreSQL peer load (untimed in the table): COPY {load['copy_seconds']:.0f} s, OHDSI indexes "
                      f"{load['index_seconds']:.0f} s, VACUUM ANALYZE {load['analyze_seconds']:.0f} s")  # fmt: skip
    if "peer_load" in result:
        slowest = {c.key: result["cohorts"][c.key]["peer"]["slowest_statements"][0] for c in COHORTS}
        console.print("PostgreSQL slowest statement (last run): " + "; ".join(
            f"{key} {label!r} {seconds * 1000:.0f} ms" for key, (label, seconds) in slowest.items()))  # fmt: skip
    console.print("Massalia split (median run's last): " + "; ".join(
        f"{c.key} generate {result['cohorts'][c.key]['massalia']['generate_seconds'] * 1000:.0f} ms + attrition "
        f"{result['cohorts'][c.key]['massalia']['analyze_seconds'] * 1000:.0f} ms" for c in COHORTS))  # fmt: skip
    console.print(f"Targets at 1M: PG / Massalia ≥ 3, Massalia / hand ≤ 1.2, Massalia / raw ≤ 3, toggle < 200 ms "
                  f"(100k) / 1 s (1M). Load average {result['loadavg_start'][0]:.2f} at start, "
                  f"{result['loadavg_end'][0]:.2f} at end, {result['cpus']} CPUs.")  # fmt: skip
    if result["mismatches"]:
        console.print("[bold red]MISMATCH[/]: the systems disagree:")
        for problem in result["mismatches"]:
            console.print(f"  - {problem}")
    else:
        peer = " = PostgreSQL peer (rows; Q4 the age band x sex attrition)" if "peer_load" in result else ""
        console.print(f"[green]Counts agree[/]: Massalia = hand SQL (rows, rule bitmasks){peer}.")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {(",".join(map(str, k)) if isinstance(k, tuple) else str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def main() -> None:
    """Parse the command line and run the benchmark for each patient count."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, action="append", help="patient counts (repeatable; default 100000)")
    parser.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "out" / "cohorts",
                        help="folder caching the extracts, warehouse and peer export between runs")  # fmt: skip
    parser.add_argument("--runs", type=int, default=5, help="warm runs per measurement (median reported)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument(
        "--prior-days",
        type=int,
        default=DEFAULT_PRIOR_DAYS,
        help="prior observation required at the breast-cancer entry (Q1, Q2, Q4); the issue says 365",
    )
    parser.add_argument("--skip-peer", action="store_true", help="do not run the PostgreSQL peer")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument(
        "--replicate-from",
        type=int,
        metavar="N",
        help="build the warehouse as copies of the generated N-patient one (when the ETL of --patients does not"
        " fit this machine's disk); needs --skip-peer",
    )
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    results = []
    for n in args.patients or [100_000]:
        result = bench(
            n,
            data=args.data,
            seed=args.seed,
            runs=args.runs,
            skip_peer=args.skip_peer,
            prior_days=args.prior_days,
            replicate_from=args.replicate_from,
        )
        print_result(result)
        results.append(result)
    if args.json:
        args.json.write_text(json.dumps(_jsonable(results), indent=1, default=str))
    if any(r["mismatches"] for r in results):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
