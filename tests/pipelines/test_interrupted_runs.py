"""A load killed with SIGKILL: the next run marks it interrupted and drops its staging tables.

The kill is real: a child process runs the ETL on a DuckDB warehouse file and is killed with
``SIGKILL`` while it stages rows, so it records nothing and its process is gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.etl import list_runs, run_etl
from massalia.health.synth import generate
from massalia.pipelines.lineage import INTERRUPTED, LineageStore, owner_is_gone, run_owner
from massalia.pipelines.runner import staging_prefix

CLINICAL_TABLES = ("person", "visit_occurrence", "condition_occurrence", "drug_exposure", "measurement", "episode")

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from massalia.engine.duckdb import DuckDBEngine
    from massalia.health.etl import run_etl


    class Beacon:
        '''Stands for a progress display: says on stdout when staging has begun.'''

        def add_task(self, description, total=None):
            print(description, flush=True)
            return 0

        def update(self, *args, **kwargs):
            pass

        def advance(self, *args, **kwargs):
            pass


    warehouse, sources, metadata = sys.argv[1:4]
    with DuckDBEngine(warehouse) as engine:
        run_etl(engine, Path(sources), metadata_url=metadata, progress=Beacon())
    print("finished", flush=True)
    """
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("killed-sources")
    generate(folder, 300, seed=3, chunk_size=300, with_documents=False)
    return folder


def _kill_while_staging(tmp_path: Path, warehouse: Path, sources: Path, metadata: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(warehouse), str(sources), metadata],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith("reading"):  # rows are being staged: the run's tables exist
                break
            assert line.strip() != "finished", "the run ended before it could be killed"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL


def test_a_run_killed_with_sigkill_is_closed_and_cleaned_by_the_next_run(tmp_path: Path, sources: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    metadata = f"sqlite:///{(tmp_path / 'metadata.sqlite').as_posix()}"
    _kill_while_staging(tmp_path, warehouse, sources, metadata)

    # What the kill left: a run 'running' forever and its staging tables in the warehouse.
    [killed] = list_runs(metadata)
    assert killed.status == "running"
    prefix = staging_prefix(killed.run_id)
    with DuckDBEngine(warehouse) as engine:
        leftovers = [t for t in engine.list_tables() if t.startswith(prefix)]
        assert leftovers, "the killed run left no staging table: the test did not kill it mid-run"
        assert "person" not in engine.list_tables() or engine.row_count("person") == 0

        report = run_etl(engine, sources, metadata_url=metadata)
        assert report.status == "success"
        assert not [t for t in engine.list_tables() if t.startswith(prefix)], "leftovers of the killed run remain"
        assert not [t for t in engine.list_tables() if re.match(r"etl_[0-9a-f]{8}_", t)], "a run left staging tables"
        rerun = {table: engine.row_count(table) for table in CLINICAL_TABLES}

    closed = LineageStore(metadata).get_run(killed.run_id)
    assert closed.status == INTERRUPTED and closed.ended_at is not None
    assert "staging table(s) dropped" in (closed.message or "")

    # The rerun gives the warehouse a clean run gives.
    with DuckDBEngine(tmp_path / "clean.duckdb") as clean:
        run_etl(clean, sources, metadata_url=f"sqlite:///{(tmp_path / 'clean.sqlite').as_posix()}")
        assert {table: clean.row_count(table) for table in CLINICAL_TABLES} == rerun


def test_a_live_run_is_never_taken_for_an_interrupted_one(tmp_path: Path) -> None:
    store = LineageStore(f"sqlite:///{(tmp_path / 'm.sqlite').as_posix()}")
    run_id = store.start_run("omop", engine="duckdb")
    assert store.get_run(run_id).message == run_owner()
    assert store.interrupted_runs("omop") == []  # this very process runs it
    assert not owner_is_gone("running in process 1 on some-other-host")
