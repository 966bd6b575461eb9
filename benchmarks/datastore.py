"""Datastore load: a generated ~475 MB, 1,000,000-row CSV made queryable, against PostgreSQL ``COPY`` of the same file.

Massalia's figure is the whole guarded path a producer's upload takes (``massalia.opendata.datastore.load_file``:
rights check and audit, encoding detection, delimiter sniffing, type inference, Arrow parse, atomic table
creation in the DuckDB warehouse, registration), then the first ``datastore_search`` (a filter with its total) and
``datastore_search_sql`` (a GROUP BY) — "queryable" means those answered. The peer is a throwaway PostgreSQL 15
(``tests/pg_local.py``, ``fsync=off``) loading the same file with ``COPY … FROM STDIN (FORMAT csv)`` into a table
whose types were declared by hand (no inference: the peer's best case), then the same two queries. CKAN's XLoader
takes about 206 s for a 1M-row, 475 MB CSV (ckanext-xloader#25); the issue's target is < 20 s.

Usage::

    python benchmarks/datastore.py                 # 1,000,000 rows
    python benchmarks/datastore.py --rows 100000   # smaller
    python benchmarks/datastore.py --skip-peer --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance, operator_principal
from massalia.opendata import datastore
from massalia.opendata.catalog import Catalog

COMMUNES = [
    "Marseille",
    "Nice",
    "Toulon",
    "Aix-en-Provence",
    "Avignon",
    "Antibes",
    "Cannes",
    "La Seyne-sur-Mer",
    "Hyères",
    "Fréjus",
    "Arles",
    "Grasse",
    "Martigues",
    "Aubagne",
    "Salon-de-Provence",
    "Istres",
    "Gap",
    "Digne-les-Bains",
    "Manosque",
    "Briançon",
]
OPERATORS = ["Izivia", "TotalEnergies", "Freshmile", "Electra", "Ionity", "Tesla", "Engie Vianeo", "SDE 04"]
PG_COLUMNS = (
    "id_pdc bigint, nom_station text, adresse_station text, code_insee text, commune text, latitude double precision, "
    "longitude double precision, puissance_nominale double precision, nbre_pdc integer, prise_type_2 boolean, "
    "prise_type_combo_ccs boolean, gratuit boolean, paiement_acte boolean, horaires text, date_mise_en_service date, "
    "date_maj timestamp, nom_operateur text, contact_operateur text, telephone_operateur text, observations text, "
    "url_station text"
)


def generate_csv(path: Path, rows: int, seed: int = 7) -> int:
    """Write an IRVE-like CSV of ``rows`` rows (about 475 bytes a row) and return its size in bytes."""
    rng = np.random.default_rng(seed)
    chunk = 100_000
    with pacsv.CSVWriter(path, _batch(rng, 0, min(chunk, rows)).schema) as writer:
        for start in range(0, rows, chunk):
            writer.write(_batch(rng, start, min(chunk, rows - start)))
    return path.stat().st_size


def _batch(rng: np.random.Generator, start: int, size: int) -> pa.RecordBatch:
    ids = np.arange(start, start + size, dtype=np.int64)
    commune = np.array(COMMUNES)[rng.integers(0, len(COMMUNES), size)]
    operator = np.array(OPERATORS)[rng.integers(0, len(OPERATORS), size)]
    street = rng.integers(1, 400, size)
    days = rng.integers(0, 3650, size)
    text = np.char.add
    return pa.record_batch(
        {
            "id_pdc": ids,
            "nom_station": text(text("Station de recharge ", commune), text(" n°", ids.astype(str))),
            "adresse_station": text(
                text(text(street.astype(str), " avenue de la République, "), commune),
                ", Provence-Alpes-Côte d'Azur, France",
            ),
            "code_insee": text("13", rng.integers(0, 999, size).astype(str)),
            "commune": commune,
            "latitude": rng.uniform(43.0, 45.1, size).round(6),
            "longitude": rng.uniform(4.2, 7.6, size).round(6),
            "puissance_nominale": rng.choice([3.7, 7.4, 11.0, 22.0, 50.0, 150.0, 350.0], size),
            "nbre_pdc": rng.integers(1, 12, size).astype(np.int32),
            "prise_type_2": rng.random(size) < 0.9,
            "prise_type_combo_ccs": rng.random(size) < 0.4,
            "gratuit": rng.random(size) < 0.1,
            "paiement_acte": rng.random(size) < 0.7,
            "horaires": np.where(rng.random(size) < 0.8, "24/7", "Mo-Fr 08:00-19:00; Sa 09:00-12:00"),
            "date_mise_en_service": pa.array(np.datetime64("2015-01-01") + days.astype("timedelta64[D]")),
            "date_maj": pa.array(np.datetime64("2025-01-01T00:00:00") + (days * 3600).astype("timedelta64[s]")),
            "nom_operateur": operator,
            "contact_operateur": text(np.char.lower(np.char.replace(operator, " ", "")), "@exemple-operateur.fr"),
            "telephone_operateur": text("04 9", rng.integers(1_000_000, 9_999_999, size).astype(str)),
            "observations": np.where(
                rng.random(size) < 0.7,
                "Borne accessible aux personnes à mobilité réduite, parking gratuit pendant la charge, "
                "éclairage de nuit, abri couvert, stationnement limité à deux heures.",
                "RAS",
            ),
            "url_station": text(text("https://carto.exemple-operateur.fr/stations/", ids.astype(str)), "?source=irve"),
        }
    )


def run_massalia(csv: Path, work: Path) -> dict[str, Any]:
    """Load ``csv`` through the guarded datastore service and run the two first queries; seconds of each."""
    home = Home(work / "home").ensure()
    home.mark_initialized("duckdb")
    with Governance.from_home(home) as gov:
        caller = Caller(operator_principal(), gov, "benchmark")
        catalog = Catalog.for_home(home)
        catalog.organization_create(caller, {"name": "region-sud", "title": "Région Sud"})
        catalog.package_create(caller, {"name": "irve", "owner_org": "region-sud"})
        resource = catalog.resource_create(
            caller, {"package_id": "irve", "url": "https://example.org/irve.csv", "format": "CSV"}
        )["id"]
        with DuckDBEngine(home.warehouse) as engine:
            started = time.perf_counter()
            report = datastore.load_file(caller, catalog, engine, resource, path=csv)
            loaded = time.perf_counter()
            found = datastore.search(caller, catalog, engine, resource, filters={"commune": "Gap"}, limit=10)
            searched = time.perf_counter()
            sql = datastore.search_sql(
                caller,
                catalog,
                engine,
                f'SELECT commune, count(*) AS n, avg(puissance_nominale) AS kw FROM "{resource}" '
                "GROUP BY commune ORDER BY n DESC",
            )
            done = time.perf_counter()
    return {
        "rows": report.rows,
        "load_s": loaded - started,
        "search_s": searched - loaded,
        "sql_s": done - searched,
        "queryable_s": done - started,
        "search_total": found["total"],
        "groups": len(sql["records"]),
        "encoding": report.encoding,
        "delimiter": report.delimiter,
        "types": {f["id"]: f["type"] for f in report.fields},
    }


def run_postgres(csv: Path) -> dict[str, Any] | None:
    """``COPY … FROM STDIN`` of ``csv`` into a hand-typed PostgreSQL table, then the same two queries."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from local_postgres import LocalPostgres, find_pg_bindir  # the tests' throwaway server (a script-only helper)

    if find_pg_bindir() is None:
        print("PostgreSQL binaries not found: peer skipped")
        return None
    import psycopg  # the peer's own driver, only when the peer runs

    with LocalPostgres(settings={"fsync": "off"}) as server, psycopg.connect(server.dsn, autocommit=True) as pg:
        pg.execute(f"CREATE TABLE irve ({PG_COLUMNS})")
        started = time.perf_counter()
        with (
            pg.cursor() as cursor,
            cursor.copy("COPY irve FROM STDIN (FORMAT csv, HEADER)") as copy,
            csv.open("rb") as f,
        ):
            while block := f.read(8 * 1024 * 1024):
                copy.write(block)
        loaded = time.perf_counter()
        total = pg.execute("SELECT count(*) FROM irve WHERE commune = 'Gap'").fetchone()
        pg.execute("SELECT * FROM irve WHERE commune = 'Gap' LIMIT 10").fetchall()
        searched = time.perf_counter()
        groups = pg.execute(
            "SELECT commune, count(*) AS n, avg(puissance_nominale) FROM irve GROUP BY commune ORDER BY n DESC"
        ).fetchall()
        done = time.perf_counter()
    return {
        "load_s": loaded - started,
        "search_s": searched - loaded,
        "sql_s": done - searched,
        "queryable_s": done - started,
        "search_total": int(total[0]) if total else 0,
        "groups": len(groups),
    }


def main(argv: list[str] | None = None) -> int:
    """Generate the file, run Massalia then the peer, print the figures (and write them as JSON if asked)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the generated CSV (default 1,000,000)")
    parser.add_argument("--skip-peer", action="store_true", help="do not run PostgreSQL")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--work", type=Path, help="working folder (default: a temporary one, removed)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.work) as folder:
        work = Path(folder)
        csv = work / "irve.csv"
        started = time.perf_counter()
        size = generate_csv(csv, args.rows)
        print(
            f"generated {args.rows:,} rows, {size / 1e6:.0f} MB in {time.perf_counter() - started:.1f} s "
            f"({size / max(args.rows, 1):.0f} bytes a row; not timed below)"
        )
        ours = run_massalia(csv, work)
        print(
            f"Massalia datastore (DuckDB): load {ours['load_s']:.1f} s, first search {ours['search_s']:.2f} s, "
            f"first SQL {ours['sql_s']:.2f} s -> queryable in {ours['queryable_s']:.1f} s "
            f"({ours['rows'] / ours['load_s']:,.0f} rows/s; {ours['encoding']}, '{ours['delimiter']}')"
        )
        peer = None if args.skip_peer else run_postgres(csv)
        if peer is not None:
            if peer["search_total"] != ours["search_total"] or peer["groups"] != ours["groups"]:
                raise SystemExit(f"the peer's answers differ from Massalia's: {peer} vs {ours}")
            print(
                f"PostgreSQL 15 COPY (types declared by hand): load {peer['load_s']:.1f} s, first search "
                f"{peer['search_s']:.2f} s, first SQL {peer['sql_s']:.2f} s -> queryable in "
                f"{peer['queryable_s']:.1f} s; ratio PostgreSQL / Massalia = "
                f"{peer['queryable_s'] / ours['queryable_s']:.2f}x"
            )
        print(
            f"CKAN XLoader reference (ckanext-xloader#25, 1M rows / 475 MB): ~206 s; ratio = "
            f"{206 / ours['queryable_s']:.1f}x (scaled to {args.rows:,} rows: "
            f"{206 * args.rows / 1e6 / ours['queryable_s']:.1f}x)"
        )
        if args.json:
            args.json.write_text(
                json.dumps({"rows": args.rows, "bytes": size, "massalia": ours, "postgres": peer}, indent=2),
                encoding="utf-8",
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
