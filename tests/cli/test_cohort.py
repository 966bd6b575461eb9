"""``massalia cohort …``: SQL, import, lint findings for files that are not cohorts, what-if rules, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from massalia.cli import app

runner = CliRunner()


def test_cohort_sql_and_validate(reference: Path) -> None:
    circe = reference / "circe" / "printfriendly" / "conditionOccurrence.json"
    sql = runner.invoke(app, ["cohort", "sql", str(circe), "--dialect", "postgres", "--materialize"])
    assert sql.exit_code == 0, sql.output
    assert "ANALYZE" in sql.output and "condition_occurrence" in sql.output
    imported = runner.invoke(app, ["cohort", "import", str(circe)])
    assert imported.exit_code == 0 and json.loads(imported.output)
    assert runner.invoke(app, ["cohort", "validate", str(circe)]).exit_code in (0, 1)


def test_cohort_explain_is_audited_before_it_shows_anything(tmp_path: Path, reference: Path) -> None:
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    circe = reference / "circe" / "printfriendly" / "conditionOccurrence.json"
    args = ["cohort", "explain", str(circe), "--person", "42", "--home", str(home)]
    from massalia.ledger import TransparencyLog

    def explains() -> list[dict[str, Any]]:
        # The operator's own actions (init) are audited too: look for the explain entries only.
        with TransparencyLog(home / "ledger", readonly=True) as log:
            assert log.verify().ok
            entries = [log.get(index).entry for index in range(log.size)]
        return [entry for entry in entries if entry["action"] == "cohort.explain"]

    refused = runner.invoke(app, args)
    assert refused.exit_code != 0, "a purpose is required to look at one person's records"
    assert not explains()
    # The local operator gets no per-person verdict without a project (issue 10 §2); the refusal is audited.
    denied = runner.invoke(app, [*args, "--purpose", "check inclusion of a screened patient"])
    assert denied.exit_code != 0 and "in the cohort" not in denied.output, denied.output
    (entry,) = explains()
    assert entry["decision"] == "denied" and entry["resource"]["person_id"] == 42
    assert entry["purpose"] == "check inclusion of a screened patient"
    assert runner.invoke(app, ["audit", "verify", "--home", str(home)]).exit_code == 0
