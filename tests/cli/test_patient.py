"""``massalia patient view``: a clinician sees their own site's patients only, every view audited."""

from __future__ import annotations

import json
from pathlib import Path

from cli_testing import run, site_person

from massalia.ledger import TransparencyLog


def test_patient_view_shows_a_clinician_their_own_site_only(home: Path) -> None:
    assert run(home, "user", "add", "cleo", "--role", "clinician", "--site", "chu_nord", "--no-password")[0] == 0
    cleo = run(home, "token", "create", "--user", "cleo")[1].strip().splitlines()[0]
    nord, sud = site_person(home, "chu_nord"), site_person(home, "clcc_sud")

    code, out = run(home, "patient", "view", str(nord), "--purpose", "follow-up consultation", token=cleo)
    assert code == 0, out
    assert f"person {nord}: identified" in out and "condition_occurrence" in out
    code, out = run(home, "patient", "view", str(nord), "--purpose", "follow-up consultation", "--json", token=cleo)
    assert code == 0, out
    shown = json.loads(out)
    assert shown["person"] == nord and shown["pseudonymized"] is False
    assert [row["person_id"] for row in shown["tables"]["person"]["rows"]] == [nord]

    code, out = run(home, "patient", "view", str(sud), "--purpose", "follow-up consultation", token=cleo)
    assert code == 3 and "denied" in out and "health.patient.view" in out
    assert run(home, "patient", "view", str(nord), "--purpose", "follow-up consultation")[0] == 3, "the operator"
    code, out = run(home, "patient", "view", str(nord), "--purpose", "why", token=cleo)
    assert code == 1 and "purpose" in out

    with TransparencyLog(home / "ledger", readonly=True) as log:
        views = [log.get(i).entry for i in range(log.size) if log.get(i).entry["action"] == "health.patient.view"]
        assert log.verify().ok
    assert [(e["decision"], e["resource"]["person_id"], e["channel"]) for e in views] == [
        ("allowed", nord, "cli"), ("allowed", nord, "cli"), ("denied", sud, "cli"), ("denied", nord, "cli")
    ]  # fmt: skip
    assert all(e["purpose"] == "follow-up consultation" for e in views)
    assert views[0]["actor"] == "cleo" and views[-1]["actor"] != "cleo"
