"""Rights as data: ``rights.yaml`` loaded, validated, and evaluated by one pure function.

The table maps each action to ordered rules (roles, conditions, grant). ``decide`` takes the facts the
conditions need (membership, project approval and access level, the data's site) and returns the
:class:`~massalia.governance.model.Grant` of the first matching rule or raises ``AccessDenied``.
Nothing here touches a database: the service (:mod:`massalia.governance.service`) gathers the facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from massalia.governance.model import ACCESS_LEVELS, AccessDenied, Grant, Principal, Role

ACTION_PATTERN = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
CONDITIONS = ("member_of_project", "approved_project", "project_access_level", "own_site")
GRANT_FLAGS = ("raw_counts", "row_level", "pseudonymized")


class RightsError(ValueError):
    """``rights.yaml`` is malformed: the message names the action and rule at fault."""


@dataclass(frozen=True)
class Rule:
    """One rule: the roles it applies to, the conditions it needs, what it grants."""

    roles: frozenset[Role]
    when: tuple[tuple[str, Any], ...]
    grant: frozenset[str]

    def needs(self, condition: str) -> Any:
        """The value required for ``condition`` (``None`` when the rule does not need it)."""
        return dict(self.when).get(condition)


@dataclass(frozen=True)
class ActionRights:
    """The rules of one action, in the order they are tried."""

    name: str
    description: str
    audit: bool
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Facts:
    """What the conditions are evaluated against, gathered by the service for one check.

    ``project_id`` is the project named in the call; the other project facts describe it (all false
    when no project was named). ``data_site`` is the care site of the data asked for, if known.
    """

    project_id: int | None = None
    member: bool = False
    approved: bool = False
    access_level: str | None = None
    data_site: str | None = None


@dataclass(frozen=True)
class Rights:
    """The validated rights table."""

    actions: dict[str, ActionRights]

    def __contains__(self, action: object) -> bool:
        return action in self.actions

    def get(self, action: str) -> ActionRights:
        """The rules of ``action``; ``AccessDenied`` for an undeclared action (nothing is allowed by default)."""
        try:
            return self.actions[action]
        except KeyError:
            raise AccessDenied(action, "no such action in rights.yaml") from None

    def audited(self, action: str) -> bool:
        """Whether decisions on ``action`` go to the transparency log."""
        return action in self.actions and self.actions[action].audit


def _rule(action: str, position: int, raw: Any) -> Rule:
    where = f"rights.yaml, action {action!r}, rule {position + 1}"
    if not isinstance(raw, dict):
        raise RightsError(f"{where}: a rule is a mapping with roles, when, grant")
    unknown = set(raw) - {"roles", "when", "grant"}
    if unknown:
        raise RightsError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    roles_raw = raw.get("roles")
    if not isinstance(roles_raw, list) or not roles_raw:
        raise RightsError(f"{where}: roles must be a non-empty list")
    try:
        roles = frozenset(Role(role) for role in roles_raw)
    except ValueError as error:
        raise RightsError(f"{where}: {error}; roles are {', '.join(r.value for r in Role)}") from None
    when_raw = raw.get("when") or {}
    if not isinstance(when_raw, dict):
        raise RightsError(f"{where}: when must be a mapping of condition to value")
    for condition, value in when_raw.items():
        if condition not in CONDITIONS:
            raise RightsError(f"{where}: unknown condition {condition!r}; conditions are {', '.join(CONDITIONS)}")
        if condition == "project_access_level":
            if value not in ACCESS_LEVELS:
                raise RightsError(f"{where}: project_access_level must be one of {', '.join(ACCESS_LEVELS)}")
        elif value is not True:
            raise RightsError(f"{where}: condition {condition} takes the value true")
    if any(c in when_raw for c in ("approved_project", "project_access_level")) and "member_of_project" not in when_raw:
        raise RightsError(f"{where}: project conditions need member_of_project too")
    grant_raw = raw.get("grant") or []
    if not isinstance(grant_raw, list) or any(flag not in GRANT_FLAGS for flag in grant_raw):
        raise RightsError(f"{where}: grant must be a list of {', '.join(GRANT_FLAGS)}")
    if "pseudonymized" in grant_raw and "row_level" not in grant_raw:
        raise RightsError(f"{where}: pseudonymized only qualifies row_level")
    return Rule(roles, tuple(sorted(when_raw.items())), frozenset(grant_raw))


def parse_rights(data: Any) -> Rights:
    """Validate a parsed ``rights.yaml`` document.

    Examples
    --------
    >>> rights = parse_rights({"version": 1, "actions": {"cohort.sql": {"rules": [{"roles": ["researcher"]}]}}})
    >>> sorted(rights.actions)
    ['cohort.sql']
    """
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("actions"), dict):
        raise RightsError("rights.yaml: expected 'version: 1' and an 'actions' mapping")
    actions: dict[str, ActionRights] = {}
    for name, spec in data["actions"].items():
        if not isinstance(name, str) or not ACTION_PATTERN.match(name):
            raise RightsError(f"rights.yaml: action {name!r} is not '<area>.<verb>' (lowercase)")
        if not isinstance(spec, dict) or not isinstance(spec.get("rules"), list) or not spec["rules"]:
            raise RightsError(f"rights.yaml, action {name!r}: needs a non-empty 'rules' list")
        unknown = set(spec) - {"description", "audit", "rules"}
        if unknown:
            raise RightsError(f"rights.yaml, action {name!r}: unknown key(s) {', '.join(sorted(unknown))}")
        if not isinstance(spec.get("audit", False), bool):
            raise RightsError(f"rights.yaml, action {name!r}: audit must be true or false")
        rules = tuple(_rule(name, i, raw) for i, raw in enumerate(spec["rules"]))
        actions[name] = ActionRights(name, str(spec.get("description", "")), bool(spec.get("audit", False)), rules)
    return Rights(actions)


def load_rights(path: Path | None = None) -> Rights:
    """Read and validate ``rights.yaml`` (the packaged one unless ``path`` is given)."""
    if path is None:
        text = resources.files("massalia.governance").joinpath("rights.yaml").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RightsError(f"rights.yaml is not valid YAML: {error}") from None
    return parse_rights(data)


def _holds(rule: Rule, principal: Principal, facts: Facts) -> str | None:
    """``None`` when every condition of ``rule`` holds, else the first failing one, in words."""
    if facts.project_id is None and any(c in ("member_of_project", "approved_project") for c, _ in rule.when):
        # Without a project, "the project is not approved" would blame a project nobody named.
        return "no project given: this needs an approved project the caller is a member of (--project / project_id)"
    for condition, value in rule.when:
        if condition == "member_of_project" and not facts.member:
            return "not a member of the project" if facts.project_id is not None else "no project given"
        if condition == "approved_project" and not facts.approved:
            return "the project is not approved or has expired"
        if condition == "project_access_level" and facts.access_level != value:
            return f"the project's access level is {facts.access_level}, {value} is needed"
        if condition == "own_site" and (principal.site is None or facts.data_site != principal.site):
            return "the data is not from the principal's own site"
    return None


def decide(rights: Rights, principal: Principal, action: str, facts: Facts) -> Grant:
    """The grant of the first rule of ``action`` that applies to ``principal`` under ``facts``.

    Raises
    ------
    AccessDenied
        The action is undeclared, outside the token's scopes, or no rule applies; the reason says why.
    """
    rights_of = rights.get(action)
    if principal.scopes is not None and not scope_allows(principal.scopes, action):
        raise AccessDenied(action, "outside the token's scopes")
    reasons: list[str] = []
    for rule in rights_of.rules:
        if not rule.roles & principal.roles:
            continue
        failing = _holds(rule, principal, facts)
        if failing is not None:
            reasons.append(failing)
            continue
        project_bound = rule.needs("member_of_project") is True
        return Grant(
            action=action,
            raw_counts="raw_counts" in rule.grant,
            row_level="row_level" in rule.grant,
            pseudonymized="pseudonymized" in rule.grant,
            project_id=facts.project_id if project_bound else None,
            site=principal.site if rule.needs("own_site") is True else None,
        )
    roles = ", ".join(sorted(role.value for role in principal.roles)) or "no role"
    reason = reasons[0] if reasons else f"not allowed to the role(s) {roles}"
    raise AccessDenied(action, reason)


def scope_allows(scopes: frozenset[str], action: str) -> bool:
    """Whether token ``scopes`` cover ``action``: the action itself, its area (``cohort.*``) or ``*``.

    Examples
    --------
    >>> scope_allows(frozenset({"cohort.*"}), "cohort.count"), scope_allows(frozenset({"mart.count"}), "cohort.count")
    (True, False)
    """
    area = action.split(".", 1)[0]
    return "*" in scopes or action in scopes or f"{area}.*" in scopes


def validate_scopes(rights: Rights, scopes: frozenset[str]) -> frozenset[str]:
    """Check that every scope names a declared action, an area of one (``area.*``) or ``*``."""
    areas = {name.split(".", 1)[0] for name in rights.actions}
    for scope in scopes:
        if scope == "*" or scope in rights.actions:
            continue
        if scope.endswith(".*") and scope[:-2] in areas:
            continue
        raise ValueError(f"unknown token scope {scope!r}: use an action of rights.yaml, '<area>.*' or '*'")
    return scopes
