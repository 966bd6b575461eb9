"""``massalia cohort …``: SQL, import, lint findings for files that are not cohorts, what-if rules, explain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
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
        return [entry for entry in entries if entry["action"] == "health.cohort.explain"]

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


NOT_COHORTS = {
    "not_json.json": ("{'title': 1", "not valid JSON"),
    "a_list.json": ("[1, 2]", "a cohort definition is a JSON object"),
    "mistyped_key.json": ('{"title": "x", "primary_criterion": {}}', "did you mean 'primary_criteria'?"),
    "wrong_type.json": ('{"title": "x", "inclusion_rules": 3}', "$.inclusion_rules"),
    "too_large.json": ('{"title": "' + "x" * (5 * 1024 * 1024) + '"}', "larger than 5,242,880 bytes"),
}


@pytest.mark.parametrize("name", sorted(NOT_COHORTS))
@pytest.mark.parametrize("command", ["validate", "count", "sql", "attrition"])
def test_a_file_that_is_not_a_cohort_gets_lint_findings_not_a_traceback(
    tmp_path: Path, name: str, command: str
) -> None:
    text, expected = NOT_COHORTS[name]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["cohort", command, str(path), "--home", str(tmp_path / "home")])
    output = " ".join(result.output.split())
    # A clean exit with the documented finding (code, JSON path, what is wrong), never an exception.
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert "invalid-definition at $" in output and expected in output, result.output
    assert "Traceback" not in output and "pydantic" not in output and "For further information" not in output


ONE_RULE = {
    "title": "one rule",
    "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]},
    "inclusion_rules": [{"name": "any", "expression": {"type": "ALL", "criteria_list": []}}],
}


def test_without_a_rule_the_definition_does_not_have_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one_rule.json"
    path.write_text(json.dumps(ONE_RULE), encoding="utf-8")
    home = ["--home", str(tmp_path / "home")]
    result = runner.invoke(app, ["cohort", "count", str(path), "--without", "5", *home])
    output = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert "--without 5: no such inclusion rule (valid rule numbers: 1)" in output
    result = runner.invoke(app, ["cohort", "count", str(path), "--without", "0", "--without", "1", *home])
    assert result.exit_code == 1 and "--without 0:" in " ".join(result.output.split())


def test_explain_without_a_project_says_a_project_is_needed(tmp_path: Path) -> None:
    path = tmp_path / "one_rule.json"
    path.write_text(json.dumps(ONE_RULE), encoding="utf-8")
    home = tmp_path / "home"
    assert runner.invoke(app, ["init", "--home", str(home)]).exit_code == 0
    args = ["cohort", "explain", str(path), "--person", "1", "--purpose", "check a patient", "--home", str(home)]
    result = runner.invoke(app, args)
    output = " ".join(result.output.split())
    assert result.exit_code == 3, result.output
    assert "no project given" in output and "--project" in output, output
    assert "not approved" not in output, "no project was named: none can be 'not approved'"
