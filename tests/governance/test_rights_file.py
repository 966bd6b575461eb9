"""rights.yaml: validated at load (clear errors naming the action and rule), and documented in sync."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from massalia.governance import Principal, Role
from massalia.governance.docs import END, START, replace_block, rights_markdown
from massalia.governance.rights import (
    Facts,
    RightsError,
    decide,
    domain_rights,
    load_rights,
    merge_rights,
    parse_rights,
    scope_allows,
    validate_scopes,
)

ROOT = Path(__file__).resolve().parents[2]


def _rights(rule: dict[str, Any], action: str = "project.read") -> dict[str, Any]:
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
        ({"version": 1, "actions": {"project.read": {"rules": []}}}, "non-empty 'rules' list"),
        (_rights({"roles": ["researcher"]}, action="health.cohort.count"), "is not '<area>.<verb>'"),
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
    custom.write_text(yaml.safe_dump(_rights({"roles": ["public"]}, action="project.list")), encoding="utf-8")
    only_list = load_rights(custom)
    assert set(only_list.actions) == {"project.list"}, "a core file given alone replaces the whole table"
    assert decide(only_list, Principal.anonymous(), "project.list", Facts()).action == "project.list"
    custom.write_text("version: 1\nactions: [unclosed", encoding="utf-8")
    with pytest.raises(RightsError, match="not valid YAML"):
        load_rights(custom)


def test_first_matching_rule_wins() -> None:
    rights = parse_rights({"version": 1, "actions": {"health.cohort.count": {"rules": [
        {"roles": ["researcher"], "when": {"member_of_project": True}, "grant": ["raw_counts"]},
        {"roles": ["researcher"]},
    ]}}}, domain="health")  # fmt: skip
    researcher = Principal("rita", frozenset({Role.RESEARCHER}), 1)
    assert decide(rights, researcher, "health.cohort.count", Facts(project_id=4, member=True)).raw_counts
    assert not decide(rights, researcher, "health.cohort.count", Facts(project_id=4, member=False)).raw_counts


def test_scopes() -> None:
    assert scope_allows(frozenset({"*"}), "user.create")
    assert scope_allows(frozenset({"health.cohort.*"}), "health.cohort.explain")
    assert scope_allows(frozenset({"health.*"}), "health.cohort.explain")
    assert scope_allows(frozenset({"project.*"}), "project.read")
    assert not scope_allows(frozenset({"health.cohort.*"}), "health.cohorts.explain")
    assert not scope_allows(frozenset({"health.cohort.*"}), "health.mart.count")
    assert not scope_allows(frozenset({"health.cohort.count"}), "health.cohort.explain")
    assert not scope_allows(frozenset({"health.cohort"}), "health.cohort.count"), "an area scope ends in .*"
    # A token minted before the rename (scope "cohort.*") grants nothing now: it fails closed, never wider.
    assert not scope_allows(frozenset({"cohort.*", "cohort.count"}), "health.cohort.count")
    rights = load_rights()
    assert validate_scopes(rights, frozenset({"health.*", "health.cohort.*", "project.*"}))
    for unknown in ("cohort.*", "cohort.count", "health.cohorts.*", "health"):
        with pytest.raises(ValueError, match="unknown token scope"):
            validate_scopes(rights, frozenset({unknown}))


def _domain_file(tmp_path: Path, name: str, actions: dict[str, Any]) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "actions": actions}), encoding="utf-8")
    return path


def test_domain_actions_are_named_after_their_domain(tmp_path: Path) -> None:
    rule = {"rules": [{"roles": ["researcher"]}]}
    for stray in ("project.read", "opendata.dataset.read", "health.read", "health.cohort.count.now"):
        path = _domain_file(tmp_path, "health", {stray: rule})
        with pytest.raises(RightsError, match=rf"{path}: action '{stray}' is not 'health.<area>.<verb>'"):
            domain_rights({"health": path})
    assert set(domain_rights({"health": _domain_file(tmp_path, "ok", {"health.cohort.peek": rule})})[0][1].actions) == {
        "health.cohort.peek"
    }


def test_an_action_defined_twice_is_refused_naming_both_files(tmp_path: Path) -> None:
    """Attack: a domain redefines another's action (or a core one) to widen who may do it."""
    open_to_all = {"rules": [{"roles": ["public", "researcher"], "grant": ["raw_counts"]}]}
    first = _domain_file(tmp_path, "first", {"health.cohort.count": open_to_all})
    second = _domain_file(tmp_path, "second", {"health.cohort.count": open_to_all})
    with pytest.raises(RightsError, match=rf"'health.cohort.count' is defined twice: in {first} and in {second}"):
        merge_rights([*domain_rights({"health": first}), *domain_rights({"health": second})])
    packaged = Path(__file__).resolve().parents[2] / "src" / "massalia" / "health" / "rights.yaml"
    with pytest.raises(RightsError, match=rf"defined twice: in {packaged} and in {second}"):
        merge_rights([*domain_rights({"health": packaged}), *domain_rights({"health": second})])


def test_the_merged_table_has_the_core_and_every_domain_and_nothing_else() -> None:
    rights = load_rights()
    core = {name for name in rights.actions if name.count(".") == 1}
    assert {name.split(".")[0] for name in core} <= {"user", "token", "project", "request", "audit", "privacy"}
    domains = set(rights.actions) - core
    assert domains and all(name.split(".")[0] in ("health", "opendata", "safety") for name in domains)
    assert {"health.etl.run", "health.quality.read", "health.patient.view", "health.mart.build"} <= domains
    assert {"opendata.catalog.read", "opendata.dataset.publish"} <= domains
    assert {"safety.incident.list", "safety.incident.parties", "safety.stats.read"} <= domains


def test_the_documented_rights_table_is_the_one_in_rights_yaml() -> None:
    docs = (ROOT / "docs" / "governance.md").read_text(encoding="utf-8")
    assert START in docs and END in docs
    assert replace_block(docs, rights_markdown()) == docs, (
        "docs/governance.md is out of date: run python -m massalia.governance.docs --write docs/governance.md"
    )
    for action in load_rights().actions:
        assert f"| `{action}` |" in docs
