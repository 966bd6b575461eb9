"""A generated oncology warehouse with its mart and ground truth, and a governance with approved projects.

Built once per session: 3,000 patients (seed 11, no documents) through the real generator, ETL and mart
build (about 20 s), enough events for the ground-truth checks; users and projects are per test module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from analytics_world import AnalyticsWarehouse, World, project_of

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance, Role, operator_principal
from massalia.health.etl import run_etl
from massalia.health.marts.builder import build_mart
from massalia.health.synth import generate

PATIENTS = 3000


@pytest.fixture(scope="session")
def analytics_warehouse(tmp_path_factory: pytest.TempPathFactory) -> AnalyticsWarehouse:
    root = tmp_path_factory.mktemp("analytics-warehouse")
    generate(root / "sources", PATIENTS, seed=11, chunk_size=PATIENTS, with_documents=False)
    path = root / "warehouse.duckdb"
    with DuckDBEngine(path) as engine:
        run_etl(engine, root / "sources", metadata_url=f"sqlite:///{(root / 'metadata.sqlite').as_posix()}")
        build_mart(engine)
    truth = json.loads((root / "sources" / "ground_truth.json").read_text(encoding="utf-8"))
    return AnalyticsWarehouse(path, truth)


@pytest.fixture(scope="module")
def world(analytics_warehouse: AnalyticsWarehouse, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("analytics-gov")
    operator = operator_principal()
    with (
        DuckDBEngine(analytics_warehouse.path, read_only=True) as engine,
        Governance(f"sqlite:///{(root / 'metadata.sqlite').as_posix()}", root / "ledger",
                   key_path=root / "master.key") as gov,
    ):  # fmt: skip
        people = {
            name: gov.create_user(name, None, [role], actor=operator)
            for name, role in (("rita", Role.RESEARCHER), ("olga", Role.RESEARCHER), ("nora", Role.RESEARCHER),
                               ("dina", Role.DPO))
        }  # fmt: skip
        dina = people["dina"]
        study = project_of(gov, people["rita"], dina)
        north = project_of(gov, people["rita"], dina, sites=("chu_nord",))
        other = project_of(gov, people["olga"], dina)
        draft = project_of(gov, people["nora"], dina, approve=False)
        yield World(gov, engine, people["rita"], people["olga"], people["nora"], study, north, other, draft)
