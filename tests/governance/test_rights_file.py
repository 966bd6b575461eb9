"""rights.yaml: validated at load (clear errors naming the action and rule), and documented in sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from massalia.governance import Principal, Role
from massalia.governance.docs import END, START, replace_block, rights_markdown
from massalia.governance.rights import Facts, RightsError, decide, load_rights, parse_rights, scope_allows

ROOT = Path(__file__).resolve().parents[2]


def _rights(rule: dict[str, Any], action: str = "health.cohort.count") -> dict[str, Any]:
    return {"version": 1, "actions": {action: {"rules": [rule]}}}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"actions": {}}, "version: 1"),
        (_rights({"roles": ["researcher"]}, action="Cohort Count"), "is not '<area>.<verb>'"),
        (_rights({"roles": ["surgeon"]}), "rule 1: 'surgeon' is not a valid Role"),
        (_rights({"roles": []}), "roles must be a non-empty list"),
        (_rights({"roles": ["researcher"], "when": {"full_moon": True}}), "unknown condition 'full_moon'"),
        (_rights({"roles": ["researcher"], "when": {"approved_project": True}}), "need member_of_project"),
        (
            _rights({"roles": ["researcher"], "when": {"member_of_project": True, "project_access_level": "all"}}),
            "project_access_level must be one of",
        ),
        (_rights({"roles": ["researcher"], "grant": ["everything"]}), "grant must be a list of"),
        (_rights({"roles": ["researcher"], "grant": ["pseudonymized"]}), "pseudonymized only qualifies row_level"),
        (_rights({"roles": ["researcher"], "allow": True}), "unknown key(s) allow"),
        ({"version": 1, "actions": {"health.cohort.count": {"rules": []}}}, "non-empty 'rules' list"),
    ],
)
def test_malformed_rights_are_refused_with_where_and_why(document: dict[str, Any], message: str) -> None:
    with pytest.raises(RightsError) as raised:
        parse_rights(document)
    assert message in str(raised.value)


def test_the_packaged_rights_load_and_a_file_can_replace_them(tmp_path: Path) -> None:
    rights = load_rights()
    assert {"health.cohort.count", "health.extract.create", "request.decide", "audit.verify"} <= set(rights.actions)
    custom = tmp_path / "rights.yaml"
    custom.write_text(yaml.safe_dump(_rights({"roles": ["public"]}, action="health.cohort.sql")), encoding="utf-8")
    only_sql = load_rights(custom)
    assert decide(only_sql, Principal.anonymous(), "health.cohort.sql", Facts()).action == "health.cohort.sql"
    custom.write_text("version: 1\nactions: [unclosed", encoding="utf-8")
    with pytest.raises(RightsError, match="not valid YAML"):
        load_rights(custom)


def test_first_matching_rule_wins() -> None:
    rights = parse_rights({"version": 1, "actions": {"health.cohort.count": {"rules": [
        {"roles": ["researcher"], "when": {"member_of_project": True}, "grant": ["raw_counts"]},
        {"roles": ["researcher"]},
    ]}}})  # fmt: skip
    researcher = Principal("rita", frozenset({Role.RESEARCHER}), 1)
    assert decide(rights, researcher, "health.cohort.count", Facts(project_id=4, member=True)).raw_counts
    assert not decide(rights, researcher, "health.cohort.count", Facts(project_id=4, member=False)).raw_counts


def test_scopes() -> None:
    assert scope_allows(frozenset({"*"}), "user.create")
    assert scope_allows(frozenset({"health.cohort.*"}), "health.cohort.explain")
    assert not scope_allows(frozenset({"health.cohort.*"}), "cohorts.explain")
    assert not scope_allows(frozenset({"health.cohort.count"}), "health.cohort.explain")


def test_the_documented_rights_table_is_the_one_in_rights_yaml() -> None:
    docs = (ROOT / "docs" / "governance.md").read_text(encoding="utf-8")
    assert START in docs and END in docs
    assert replace_block(docs, rights_markdown()) == docs, (
        "docs/governance.md is out of date: run python -m massalia.governance.docs --write docs/governance.md"
    )
    for action in load_rights().actions:
        assert f"| `{action}` |" in docs
