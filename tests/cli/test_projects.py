"""The governance commands (user, token, project, request), end to end on a copy of the shared warehouse."""

from __future__ import annotations

import json
import re
from pathlib import Path

from cli_testing import run

from massalia.ledger import TransparencyLog

DEFINITION = {
    "title": "breast cancer, stage IV",
    "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]},
    "inclusion_rules": [
        {"name": "stage IV", "expression": {"type": "ALL", "criteria_list": [{
            "criteria": {"kind": "TnmStage", "axis": "group", "value": {"op": "gte", "value": 4}},
            "start_window": {"start": {"days": 0, "coeff": -1}, "end": {"days": 90, "coeff": 1}},
            "occurrence": {"type": 2, "count": 1}}]}},
    ],
}  # fmt: skip


def test_accounts_tokens_projects_and_requests_from_the_command_line(home: Path, tmp_path: Path) -> None:
    definition = tmp_path / "breast_iv.json"
    definition.write_text(json.dumps(DEFINITION), encoding="utf-8")

    # The local operator (no token) creates the accounts; passwords never appear on the command line.
    assert run(home, "user", "add", "dina", "--role", "dpo", "--no-password")[0] == 0
    code, out = run(home, "user", "add", "rita", "--password-stdin", stdin="a long enough password\n")
    assert code == 0, out
    code, out = run(home, "user", "add", "x", "--no-password")
    assert code == 1 and "invalid" in out
    code, out = run(home, "user", "list")
    assert code == 0 and "dina" in out and "researcher" in out
    rita = run(home, "token", "create", "--user", "rita", "--days", "30")[1].strip().splitlines()[0]
    dina = run(home, "token", "create", "--user", "dina")[1].strip().splitlines()[0]
    assert rita.startswith("msl_") and dina.startswith("msl_")

    # Without a project, rita (like the operator) sees noisy counts against her privacy budget.
    masked = run(home, "cohort", "attrition", str(definition), token=rita)
    assert masked[0] == 0 and "noisy counts" in masked[1] and "withheld" in masked[1], masked[1]
    assert "noisy counts" in run(home, "cohort", "attrition", str(definition))[1]

    code, out = run(home, "project", "create", "--title", "Breast IV", "--purpose", "survival by first-line regimen",
                    "--expires", "2099-12-31", "--access-level", "pseudonymized", "--cohort", str(definition),
                    token=rita)  # fmt: skip
    assert code == 0 and "project 1" in out and "rita" in out, out
    assert run(home, "project", "list", token=rita)[1].count("Breast IV") == 1
    assert "pseudonymized" in run(home, "project", "show", "1", token=rita)[1]
    code, out = run(home, "request", "file", "1", "--justification", "protocol approved by the board", token=rita)
    assert code == 0 and "request 1 filed" in out

    code, out = run(home, "request", "approve", "1", "--reason", "self-service", token=rita)
    assert code == 3 and "denied" in out
    assert run(home, "request", "approve", "1", "--reason", "looks fine")[0] == 3, "the operator is not a DPO"
    code, out = run(home, "request", "approve", "1", "--reason", "proportionate", token=dina)
    assert code == 0 and "approved by dina" in out, out
    assert "proportionate" in run(home, "request", "list", token=dina)[1]

    # Approved: rita's counts under the project are exact; without --project they stay noisy.
    raw = run(home, "cohort", "attrition", str(definition), "--project", "1", token=rita)
    assert raw[0] == 0 and "exact counts" in raw[1] and "withheld" not in raw[1], raw[1]
    assert "noisy counts" in run(home, "cohort", "attrition", str(definition), token=rita)[1]
    generated = run(home, "cohort", "generate", str(definition), "--id", "2", "--project", "1", token=rita)
    assert generated[0] == 0 and re.search(r"cohort 2: [\d,]+ persons", generated[1]), generated[1]
    code, out = run(home, "cohort", "breakdowns", str(definition), "--id", "2", "--project", "1", token=rita)
    assert code == 0 and "persons by sex" in out

    # Under the pseudonymized project, explain wants the pseudonym, not the person id.
    code, out = run(home, "cohort", "explain", str(definition), "--person", "1", "--purpose", "check a patient",
                    "--project", "1", token=rita)  # fmt: skip
    assert code == 1 and "pseudonym" in out

    # Tokens: listing, revoking, and a revoked or bogus token stops every command.
    assert "rita" in run(home, "token", "list", token=rita)[1]
    assert run(home, "token", "revoke", "1", token=rita)[0] == 0
    code, out = run(home, "project", "list", token=rita)
    assert code == 4 and "revoked" in out
    assert run(home, "cohort", "sql", str(definition), token="msl_" + "x" * 43)[0] == 4
    assert run(home, "project", "add-member", "1", "dina")[0] == 0

    with TransparencyLog(home / "ledger", readonly=True) as log:
        actions = [log.get(i).entry["action"] for i in range(log.size)]
        assert log.verify().ok
    assert actions.count("request.decide") == 3
    assert "health.cohort.generate" in actions and "health.cohort.explain" in actions


def test_members_roles_disabling_and_revocation_from_the_command_line(tmp_path: Path) -> None:
    home = tmp_path / "duties-home"
    home.mkdir()
    for name, role in (("dina", "dpo"), ("rita", "researcher"), ("ed", "data_engineer")):
        assert run(home, "user", "add", name, "--role", role, "--no-password")[0] == 0
    rita = run(home, "token", "create", "--user", "rita")[1].strip().splitlines()[0]
    dina = run(home, "token", "create", "--user", "dina")[1].strip().splitlines()[0]
    code, out = run(home, "project", "create", "--title", "Duties", "--purpose", "a study of duties here",
                    "--expires", "2099-01-01", "--access-level", "pseudonymized", token=rita)  # fmt: skip
    assert code == 0, out
    code, out = run(home, "request", "file", "1", "--justification", "protocol approved by board", token=rita)
    assert code == 0, out
    assert run(home, "request", "approve", "1", "--reason", "fine", token=dina)[0] == 0
    # Added to an approved project, ed waits for a DPO; rita cannot add herself twice nor approve.
    code, out = run(home, "project", "add-member", "1", "ed", token=rita)
    assert code == 0 and "pending" in out, out
    code, out = run(home, "project", "approve-member", "1", "ed", token=rita)
    assert code == 3 and "denied" in out
    code, out = run(home, "project", "approve-member", "1", "ed", token=dina)
    assert code == 0 and "approved" in out, out
    code, out = run(home, "project", "show", "1", token=rita)
    assert "ed, rita" in out, out
    assert run(home, "project", "remove-member", "1", "ed", token=rita)[0] == 0
    code, out = run(home, "request", "revoke", "1", "--reason", "protocol withdrawn", token=dina)
    assert code == 0 and "revoked by dina" in out, out
    # Roles and disabling: the operator (an admin) re-roles and disables; the account's token stops.
    code, out = run(home, "user", "set-roles", "rita", "--role", "researcher", "--role", "clinician")
    assert code == 1 and "site" in out, "a clinician needs a site"
    assert run(home, "user", "set-roles", "ed", "--role", "researcher")[0] == 0
    assert run(home, "user", "disable", "rita")[0] == 0
    code, out = run(home, "project", "list", token=rita)
    assert code == 4 and "disabled" in out
    assert run(home, "user", "enable", "rita")[0] == 0
    assert run(home, "project", "list", token=rita)[0] == 0
