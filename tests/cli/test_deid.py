"""``massalia deid evaluate`` prints the measured figures; ``massalia deid notes`` gives a project member a
person's notes de-identified, and refuses everyone else (audited)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_testing import run

from massalia.config import Home
from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import Governance
from massalia.governance.pseudonym import pseudonymize
from massalia.ledger import TransparencyLog

DEFINITION = {"title": "breast", "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis",
                                                                        "topography": ["C50"]}]}}  # fmt: skip


def test_evaluate_prints_recall_and_precision_per_type(tmp_path: Path) -> None:
    code, out = run(tmp_path, "deid", "evaluate", "--patients", "40", "--seed", "2", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["documents"] > 150 and result["leaks"] == 0
    for kind in ("name", "address", "city", "phone", "email", "nir", "ipp", "nda", "date"):
        row = result["types"][kind]
        assert row["planted"] > 0 and row["recall"] >= 0.99 and row["precision"] >= 0.95, (kind, row)
    code, out = run(tmp_path, "deid", "evaluate", "--patients", "5")
    assert code == 0 and "recall" in out and "precision" in out and "nir" in out, out


def test_notes_are_de_identified_for_a_project_member_only(home: Path, demo_warehouse: Path, tmp_path: Path) -> None:
    definition = tmp_path / "breast.json"
    definition.write_text(json.dumps(DEFINITION), encoding="utf-8")
    assert run(home, "user", "add", "dina", "--role", "dpo", "--no-password")[0] == 0
    assert run(home, "user", "add", "rita", "--role", "researcher", "--no-password")[0] == 0
    rita = run(home, "token", "create", "--user", "rita")[1].strip().splitlines()[0]
    dina = run(home, "token", "create", "--user", "dina")[1].strip().splitlines()[0]
    code, out = run(home, "project", "create", "--title", "Breast", "--purpose", "relapse reports review",
                    "--expires", "2099-12-31", "--access-level", "pseudonymized", "--cohort", str(definition),
                    token=rita)  # fmt: skip
    assert code == 0, out
    assert run(home, "request", "file", "1", "--justification", "protocol approved", token=rita)[0] == 0
    assert run(home, "request", "approve", "1", "--reason", "proportionate", token=dina)[0] == 0
    with DuckDBEngine(home / "warehouse.duckdb", read_only=True) as engine:
        person = int(engine.query("SELECT MIN(c.person_id) FROM condition_occurrence c JOIN note n ON n.person_id ="
                                  " c.person_id WHERE c.condition_source_value LIKE 'C50%'")[0][0].as_py())  # fmt: skip
        real = "\n".join(engine.query(f"SELECT note_text FROM note WHERE person_id = {person}").column(0).to_pylist())
    with Governance.from_home(Home(home).ensure()) as gov:
        pseudonym = str(pseudonymize([person], key=gov.project_key(1), project=1)[0].as_py())

    asked = ["deid", "notes", pseudonym, "--project", "1", "--purpose", "relapse reports review"]
    code, out = run(home, *asked, "--json", token=rita)
    assert code == 0, out
    shown = json.loads(out)
    assert shown["person"] == pseudonym and shown["notes"] and "[NOM]" in out
    truth = demo_warehouse.parent / "sources" / "truth" / "annotations_part0000.jsonl"
    planted = {s["text"] for line in truth.read_text(encoding="utf-8").splitlines()
               for s in json.loads(line)["identifiers"] if s["cue"] and len(s["text"]) >= 3}  # fmt: skip
    texts = json.dumps([n["text"] for n in shown["notes"]], ensure_ascii=False)
    leaked = [w for w in planted if w in real and re.search(rf"(?<!\w){re.escape(w)}(?!\w)", texts)]
    assert not leaked, "a planted identifier reached the researcher"
    code, out = run(home, *asked, token=rita)
    assert code == 0 and "de-identified" in out, out

    assert run(home, *asked)[0] == 3, "the operator is no project member"
    code, out = run(home, *asked[:3], "--project", "1", "--purpose", "x", token=rita)
    assert code == 1 and "purpose" in out
    with TransparencyLog(home / "ledger", readonly=True) as log:
        entries = [log.get(i).entry for i in range(log.size)]
    decisions = [(e["decision"], e["channel"]) for e in entries if e["action"] == "health.document.deidentified"]
    assert decisions == [("allowed", "cli"), ("allowed", "cli"), ("denied", "cli")]
