"""Shared by the analytics benchmarks: a generated warehouse kept between runs, an approved project, a timer."""

from __future__ import annotations

import datetime as dt
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Caller, Governance, ProjectScope, Role, operator_principal
from massalia.health.etl import run_etl
from massalia.health.marts.builder import build_mart
from massalia.health.synth import generate


def generated_warehouse(root: Path, patients: int) -> Path:
    """The warehouse of ``patients`` generated patients (seed 11, no documents, mart built), made once in ``root``."""
    path = root / "warehouse.duckdb"
    if path.exists():
        print(f"reusing {path}")
        return path
    t0 = time.perf_counter()
    generate(root / "sources", patients, seed=11, chunk_size=min(patients, 50_000), with_documents=False)
    t1 = time.perf_counter()
    with DuckDBEngine(path) as engine:
        run_etl(engine, root / "sources", metadata_url=f"sqlite:///{(root / 'etl.sqlite').as_posix()}")
        build_mart(engine)
    print(f"generate {t1 - t0:.1f} s, ETL + mart {time.perf_counter() - t1:.1f} s ({patients} patients)")
    return path


def median_time(runs: int, call: Callable[[], Any]) -> tuple[float, Any]:
    """The median wall time of ``runs`` calls, in seconds, and the last call's result."""
    times, result = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def approved_researcher(gov: Governance, title: str) -> tuple[Caller, int]:
    """A researcher's approved aggregate project over everything (filed by her, approved by a DPO): caller, id."""
    operator = operator_principal()
    rita = gov.create_user("rita", None, [Role.RESEARCHER], actor=operator)
    dina = gov.create_user("dina", None, [Role.DPO], actor=operator)
    project = gov.create_project("bench", title, scope=ProjectScope(), access_level="aggregate",
                                 expires=dt.date.today() + dt.timedelta(days=1), actor=rita)  # fmt: skip
    request = gov.file_request(project.id, actor=rita, justification="benchmark of the analyses")
    gov.decide_request(request.id, True, "benchmark", actor=dina)
    return Caller(rita, gov), project.id
