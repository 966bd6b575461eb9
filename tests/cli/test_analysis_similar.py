"""``massalia analysis similar|groups`` as a member of an approved pseudonymized project meets them."""

from __future__ import annotations

import json
from pathlib import Path

from cli_testing import run


def _approved_project(home: Path) -> str:
    """Rita's approved pseudonymized project 1 (every site, every variable); her token."""
    assert run(home, "user", "add", "dina", "--role", "dpo", "--no-password")[0] == 0
    assert run(home, "user", "add", "rita", "--role", "researcher", "--no-password")[0] == 0
    rita = run(home, "token", "create", "--user", "rita")[1].strip().splitlines()[0]
    dina = run(home, "token", "create", "--user", "dina")[1].strip().splitlines()[0]
    code, out = run(home, "project", "create", "--title", "Similar", "--purpose", "patients like this one",
                    "--expires", "2099-12-31", "--access-level", "pseudonymized", token=rita)  # fmt: skip
    assert code == 0, out
    assert run(home, "request", "file", "1", "--justification", "protocol approved", token=rita)[0] == 0
    assert run(home, "request", "approve", "1", "--reason", "proportionate", token=dina)[0] == 0
    return rita


def test_similar_and_groups_from_the_command_line(home: Path, tmp_path: Path) -> None:
    rita = _approved_project(home)
    assert run(home, "mart", "build")[0] == 0
    out_file = tmp_path / "similar.json"
    code, out = run(home, "analysis", "similar", "--project", "1", "--like", "primary_site=lung",
                    "--like", "age_at_diagnosis=64", "--k", "12", "--out", str(out_file), token=rita)  # fmt: skip
    assert code == 0, out
    assert "12 neighbours among" in out and "primary_site: 12 agree" in out
    result = json.loads(out_file.read_text(encoding="utf-8"))
    assert len(result["listed"]) == 12 and result["listed"][0]["values"]["primary_site"] == "lung"
    # The listed pseudonyms name the index patient in turn.
    first = result["listed"][0]["pseudonym"]
    code, out = run(home, "analysis", "similar", "--project", "1", "--pseudonym", first, "--k", "5", "--json",
                    token=rita)  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["index"]["pseudonym"] == first
    code, out = run(home, "analysis", "similar", "--project", "1", "--pseudonym", "42", token=rita)
    assert code != 0 and "pattern" in out
    code, out = run(home, "analysis", "groups", "--project", "1", "--max-groups", "3", token=rita)
    assert code == 0, out
    assert "groups of" in out and "group 1:" in out
