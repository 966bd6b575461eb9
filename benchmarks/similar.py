"""Benchmark: similar patients (and patient groups) through the guarded service at 100,000 patients.

The issue's target: a similar-patients query under 500 ms at 100,000 patients, the encoded mart built once
per mart build and cached. Generating and loading 100,000 patients takes long on a small machine, so this
script generates a small warehouse (``--seed-patients``, real generator, ETL and mart build, cached under
``--data``) and then *inflates its mart* to ``--patients`` rows in a copy: each person repeated with a new
``person_id`` and the age at diagnosis moved by up to ±3 years (so that distances do not tie). The query
path is the real one: rights check and audit entry, scoped query of person ids, the cached index, the
project's pseudonyms, the scan, the Kaplan–Meier curve.

Printed: the first (cold) query, which builds the index and the project's pseudonyms, then the median and
the maximum of ``--runs`` warm queries, by pseudonym (pseudonymized project) and by described profile; and
one patient-groups run (``max_groups`` 8) for scale.

Usage::

    python benchmarks/similar.py --patients 100000 [--data DIR] [--runs 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance, ProjectScope, Role, operator_principal
from massalia.governance.pseudonym import pseudonymize
from massalia.health.analytics import run_groups, run_similar
from massalia.health.analytics.requests import GroupsRequest, SimilarRequest
from massalia.health.etl import run_etl
from massalia.health.marts.builder import build_mart
from massalia.health.synth import generate


def small_warehouse(data: Path, patients: int) -> Path:
    """The generated warehouse of ``patients`` (seed 11), built once and kept under ``data``."""
    path = data / f"similar-{patients}" / "warehouse.duckdb"
    if not path.exists():
        root = path.parent
        generate(root / "sources", patients, seed=11, chunk_size=patients, with_documents=False)
        with DuckDBEngine(path) as engine:
            run_etl(engine, root / "sources", metadata_url=f"sqlite:///{(root / 'metadata.sqlite').as_posix()}")
            build_mart(engine)
    return path


def inflate(source: Path, target: Path, patients: int) -> None:
    """A copy of ``source`` whose mart holds ``patients`` rows (persons repeated, ages jittered)."""
    shutil.copy(source, target)
    with DuckDBEngine(target) as engine:
        base = int(engine.query("SELECT count(*) FROM mart_patient").column(0)[0].as_py())
        offset = int(engine.query("SELECT max(person_id) FROM mart_patient").column(0)[0].as_py()) + 1
        copies = -(-patients // base)
        engine.execute(
            "CREATE OR REPLACE TABLE mart_inflated AS "
            f"SELECT * REPLACE (person_id + c.i * {offset} AS person_id, "
            "age_at_diagnosis + CASE WHEN c.i = 0 THEN 0 "
            "ELSE (CAST(hash(person_id, c.i) % 601 AS INTEGER) - 300) / 100.0 END "
            "AS age_at_diagnosis) "
            f"FROM mart_patient, range({copies}) AS c(i) ORDER BY c.i, person_id LIMIT {patients}"
        )
        engine.execute("DROP TABLE mart_patient")
        engine.execute("ALTER TABLE mart_inflated RENAME TO mart_patient")


def timed(call: object) -> float:
    start = time.perf_counter()
    call()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed-patients", type=int, default=3_000)
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "massalia-bench")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    source = small_warehouse(args.data, args.seed_patients)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inflate(source, root / "warehouse.duckdb", args.patients)
        operator = operator_principal()
        with (
            DuckDBEngine(root / "warehouse.duckdb", read_only=True) as engine,
            Governance(f"sqlite:///{(root / 'gov.sqlite').as_posix()}", root / "ledger",
                       key_path=root / "master.key") as gov,
        ):  # fmt: skip
            rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=operator)
            dina = gov.create_user("dina", None, [Role.DPO], actor=operator)
            project = gov.create_project("Similar cases benchmark", "latency at scale of similar patients",
                                         scope=ProjectScope(), access_level="pseudonymized",
                                         expires=dt.date.today() + dt.timedelta(days=30), actor=rita)  # fmt: skip
            request = gov.file_request(project.id, actor=rita, justification="benchmark of the service")
            gov.decide_request(request.id, True, "benchmark", actor=dina)
            caller = Caller(rita, gov)
            rows = int(engine.query("SELECT count(*) FROM mart_patient").column(0)[0].as_py())
            ids = engine.query("SELECT person_id FROM mart_patient ORDER BY person_id").column(0).to_pylist()
            key = gov.project_key(project.id)
            names = pseudonymize(ids[:: max(len(ids) // args.runs, 1)][: args.runs], key=key, project=project.id)
            by_name = [SimilarRequest(project_id=project.id, index_pseudonym=str(n), k=50) for n in names.to_pylist()]
            lung = {"primary_site": "lung", "stage_group": "IV", "egfr_status": "positive", "age_at_diagnosis": 64}
            by_profile = SimilarRequest(project_id=project.id, k=50, index_profile=lung)
            cold = timed(lambda: run_similar(caller, engine, by_name[0]))
            warm = [timed(lambda r=r: run_similar(caller, engine, r)) for r in by_name]
            profile = [timed(lambda: run_similar(caller, engine, by_profile)) for _ in range(args.runs)]
            groups = timed(lambda: run_groups(caller, engine, GroupsRequest(project_id=project.id, max_groups=8)))
    print(f"mart rows: {rows:,}")
    print(f"similar, cold (index and pseudonyms built): {cold:.0f} ms")
    print(f"similar by pseudonym, warm: median {statistics.median(warm):.0f} ms, max {max(warm):.0f} ms "
          f"({len(warm)} runs)")  # fmt: skip
    print(f"similar by profile, warm: median {statistics.median(profile):.0f} ms, max {max(profile):.0f} ms")
    print(f"groups (k = 2..8, silhouette): {groups / 1000:.1f} s")


if __name__ == "__main__":
    main()
