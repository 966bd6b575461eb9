"""``massalia extract create`` as a new user meets it: the mart to build first, the k refusal and its way out.

Then ``cohort explain`` under the same project, whose records must print readably (no Python reprs).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
from cli_testing import run

from massalia.ledger import TransparencyLog

DEFINITION = {
    "title": "breast cancer",
    "primary_criteria": {"criteria_list": [{"kind": "CancerDiagnosis", "topography": ["C50"]}]},
}
VARIABLES = ("sex", "age_at_diagnosis", "primary_site")


def _approved_project(home: Path, definition: Path) -> str:
    """Rita's approved pseudonymized project 1 over ``definition`` and a few variables; her token."""
    assert run(home, "user", "add", "dina", "--role", "dpo", "--no-password")[0] == 0
    assert run(home, "user", "add", "rita", "--role", "researcher", "--no-password")[0] == 0
    rita = run(home, "token", "create", "--user", "rita")[1].strip().splitlines()[0]
    dina = run(home, "token", "create", "--user", "dina")[1].strip().splitlines()[0]
    variables = [arg for name in VARIABLES for arg in ("--variable", name)]
    code, out = run(home, "project", "create", "--title", "Breast", "--purpose", "survival by regimen",
                    "--expires", "2099-12-31", "--access-level", "pseudonymized", "--cohort", str(definition),
                    *variables, token=rita)  # fmt: skip
    assert code == 0, out
    assert run(home, "request", "file", "1", "--justification", "protocol approved", token=rita)[0] == 0
    assert run(home, "request", "approve", "1", "--reason", "proportionate", token=dina)[0] == 0
    code, out = run(home, "cohort", "generate", str(definition), "--id", "2", "--project", "1", token=rita)
    assert code == 0, out
    return rita


def test_extract_create_says_what_to_do_first_and_how_to_pass_k(home: Path, tmp_path: Path) -> None:
    definition = tmp_path / "breast.json"
    definition.write_text(json.dumps(DEFINITION), encoding="utf-8")
    rita = _approved_project(home, definition)
    extract = ["extract", "create", "--project", "1", "--cohort", "2"]

    # The mart is not built yet: say so and name the command, not a traceback nor a bare 'does not exist'.
    code, out = run(home, *extract, token=rita)
    assert code == 1 and "massalia mart build" in out and "Traceback" not in out, out
    assert run(home, "mart", "build")[0] == 0

    # The default policy refuses on the demo data: the refusal names the option that gets past it.
    code, out = run(home, *extract, token=rita)
    flat = " ".join(out.split())
    assert code == 1 and "refused" in flat and "--on-low-k generalize" in flat, out
    assert not list((home / "extracts").rglob("*.parquet")), "a refused extract leaves nothing behind"

    code, out = run(home, *extract, "--on-low-k", "generalize", token=rita)
    assert code == 0, out
    (written,) = list((home / "extracts" / "project-1").rglob("*.parquet"))
    assert f"extract {written.parent.name} of project 1" in out, out
    table = pq.read_table(written)
    assert table.num_rows > 0 and "person_id" not in table.column_names
    assert re.search(r"k = \d+", out)

    # Only members of the approved project: the operator (an admin) is refused, like over HTTP.
    code, out = run(home, *extract, "--on-low-k", "generalize")
    assert code == 3 and "denied" in out

    with TransparencyLog(home / "ledger", readonly=True) as log:
        entries = [log.get(i).entry for i in range(log.size)]
    extracts = [(e["decision"], e["channel"]) for e in entries if e["action"].endswith("extract.create")]
    # Each attempt is decided and audited before anything is read: the three of rita's, then the operator's.
    assert extracts == [("allowed", "cli")] * 3 + [("denied", "cli")]

    # Explain under the project names the person by pseudonym; records print as 'field value', no reprs.
    pseudonym = str(table.column(0)[0].as_py())
    code, out = run(home, "cohort", "explain", str(definition), "--person", pseudonym, "--purpose",
                    "check an inclusion", "--project", "1", token=rita)  # fmt: skip
    assert code == 0, out
    assert "datetime.date(" not in out and "{'" not in out, out
    assert re.search(r"\d{4}-\d{2}-\d{2}", out)
