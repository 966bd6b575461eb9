"""``massalia nlp run|evaluate`` on a copy of the demo warehouse, as the operator and as a researcher."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cli_testing import run

from massalia.engine.duckdb import DuckDBEngine
from massalia.ledger import TransparencyLog


def test_run_then_evaluate_as_the_operator_audited(home: Path, demo_warehouse: Path) -> None:
    shutil.copytree(demo_warehouse.parent / "sources" / "truth", home / "sources" / "truth")
    code, out = run(home, "nlp", "run", "--limit", "60")
    assert code == 0, out
    assert "60 notes" in out and "findings written to note_nlp" in out and "massalia-nlp" in out
    code, out = run(home, "nlp", "evaluate", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["notes"] == 60
    overall = next(row for row in result["scores"] if row["name"] == "ALL")
    assert overall["f1"] >= 0.95 and overall["support"] > 250
    code, out = run(home, "nlp", "evaluate")
    assert code == 0 and "hypothesis" in out and "negated" in out
    with TransparencyLog(home / "ledger", readonly=True) as log:
        runs = [log.get(i).entry for i in range(log.size) if log.get(i).entry["action"] == "health.nlp.run"]
    assert [(e["decision"], e["resource"], e["channel"]) for e in runs] == [
        ("allowed", {"workers": 1, "limit": 60}, "cli")
    ]  # the run is audited with its parameters


def test_a_researcher_cannot_run_the_pipeline_nor_read_its_scores(home: Path) -> None:
    """Attack: a researcher (no project needed to try) runs the NLP to read every note's findings."""
    assert run(home, "user", "add", "rita", "--role", "researcher", "--no-password")[0] == 0
    rita = run(home, "token", "create", "--user", "rita")[1].strip().splitlines()[0]
    code, out = run(home, "nlp", "run", "--limit", "5", token=rita)
    assert code == 3 and "health.nlp.run" in out
    code, out = run(home, "nlp", "evaluate", token=rita)
    assert code == 3 and "health.nlp.evaluate" in out
    with DuckDBEngine(home / "warehouse.duckdb", read_only=True) as engine:
        assert engine.scalar_int("SELECT count(*) FROM note_nlp") == 0
