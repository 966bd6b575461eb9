"""Rights as data: ``rights.yaml`` files loaded, validated, merged, and evaluated by one pure function.

The core's file (``massalia/governance/rights.yaml``) names its actions ``<area>.<verb>`` (``project.read``);
each domain contributes its own file whose actions are ``<domain>.<area>.<verb>`` (``health.cohort.count``).
:func:`load_rights` merges them at start-up and refuses an action defined twice, naming both files.
The table maps each action to ordered rules (roles, conditions, grant). ``decide`` takes the facts the
conditions need (membership, project approval and access level, the data's site) and returns the
:class:`~massalia.governance.model.Grant` of the first matching rule or raises ``AccessDenied``.
Nothing here touches a database: the service (:mod:`massalia.governance.service`) gathers the facts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from massalia.governance.model import ACCESS_LEVELS, AccessDenied, Grant, Principal, Role
from massalia.plugins import Contributions, configured_domains, load_domains

ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z_]*){1,2}$")
"""``area.verb`` (a core action) or ``domain.area.verb`` (a domain's action), lowercase."""
CORE_ACTION = re.compile(r"^[a-z][a-z_]*\.[a-z][a-z_]*$")
CORE_SOURCE = "massalia/governance/rights.yaml"
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


def _rule(action: str, position: int, raw: Any, source: str = "rights.yaml") -> Rule:
    where = f"{source}, action {action!r}, rule {position + 1}"
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


def parse_rights(data: Any, *, source: str = "rights.yaml", domain: str | None = None) -> Rights:
    """Validate a parsed rights document: the core's (``domain=None``) or one domain's.

    Parameters
    ----------
    data
        The parsed YAML document (``version: 1`` and an ``actions`` mapping).
    source
        Where it comes from, named in every error.
    domain
        The domain whose file this is: its actions must be ``<domain>.<area>.<verb>``; the core's are
        ``<area>.<verb>``.

    Examples
    --------
    >>> rights = parse_rights({"version": 1, "actions": {"project.read": {"rules": [{"roles": ["dpo"]}]}}})
    >>> sorted(rights.actions)
    ['project.read']
    >>> parse_rights({"version": 1, "actions": {"project.read": {"rules": [{"roles": ["dpo"]}]}}}, domain="health")
    Traceback (most recent call last):
    ...
    massalia.governance.rights.RightsError: rights.yaml: action 'project.read' is not 'health.<area>.<verb>' (lowercase)
    """
    if not isinstance(data, dict) or data.get("version") != 1 or not isinstance(data.get("actions"), dict):
        raise RightsError(f"{source}: expected 'version: 1' and an 'actions' mapping")
    actions: dict[str, ActionRights] = {}
    for name, spec in data["actions"].items():
        if domain is None:
            if not isinstance(name, str) or not CORE_ACTION.match(name):
                raise RightsError(f"{source}: action {name!r} is not '<area>.<verb>' (lowercase)")
        elif not (
            isinstance(name, str)
            and ACTION_PATTERN.match(name)
            and name.startswith(f"{domain}.")
            and name.count(".") == 2  # domain, area, verb
        ):
            raise RightsError(f"{source}: action {name!r} is not '{domain}.<area>.<verb>' (lowercase)")
        if not isinstance(spec, dict) or not isinstance(spec.get("rules"), list) or not spec["rules"]:
            raise RightsError(f"{source}, action {name!r}: needs a non-empty 'rules' list")
        unknown = set(spec) - {"description", "audit", "rules"}
        if unknown:
            raise RightsError(f"{source}, action {name!r}: unknown key(s) {', '.join(sorted(unknown))}")
        if not isinstance(spec.get("audit", False), bool):
            raise RightsError(f"{source}, action {name!r}: audit must be true or false")
        rules = tuple(_rule(name, i, raw, source) for i, raw in enumerate(spec["rules"]))
        actions[name] = ActionRights(name, str(spec.get("description", "")), bool(spec.get("audit", False)), rules)
    return Rights(actions)


def _read(text: str, source: str, domain: str | None) -> Rights:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RightsError(f"{source} is not valid YAML: {error}") from None
    return parse_rights(data, source=source, domain=domain)


def merge_rights(tables: Iterable[tuple[str, Rights]]) -> Rights:
    """One table from several ``(source, rights)``; an action defined twice is refused, naming both sources.

    Examples
    --------
    >>> one = parse_rights({"version": 1, "actions": {"project.read": {"rules": [{"roles": ["dpo"]}]}}})
    >>> merge_rights([("core.yaml", one), ("other.yaml", one)])
    Traceback (most recent call last):
    ...
    massalia.governance.rights.RightsError: action 'project.read' is defined twice: in core.yaml and in other.yaml
    """
    actions: dict[str, ActionRights] = {}
    origin: dict[str, str] = {}
    for source, rights in tables:
        for name, spec in rights.actions.items():
            if name in actions:
                raise RightsError(f"action {name!r} is defined twice: in {origin[name]} and in {source}")
            actions[name] = spec
            origin[name] = source
    return Rights(actions)


def domain_rights(files: Mapping[str, Path]) -> list[tuple[str, Rights]]:
    """The validated rights of each domain's file (``{domain: path}``), with their source for error messages."""
    return [
        (str(path), _read(Path(path).read_text(encoding="utf-8"), str(path), domain)) for domain, path in files.items()
    ]


def load_rights(path: Path | None = None, *, domains: Contributions | None = None) -> Rights:
    """The rights table: the core's file merged with every domain's.

    Parameters
    ----------
    path
        A replacement for the core's file; given alone (no ``domains``), only that file is read.
    domains
        What the domains contributed (:func:`massalia.plugins.load_domains`); by default, with no ``path``,
        the built-in, installed and ``MASSALIA_DOMAINS`` domains are loaded.

    Raises
    ------
    RightsError
        A file is malformed, a domain's action is not named after it, or an action is defined twice.
    """
    if path is None:
        core_text = resources.files("massalia.governance").joinpath("rights.yaml").read_text(encoding="utf-8")
        core = _read(core_text, CORE_SOURCE, None)
        if domains is None:
            domains = load_domains(configured_domains())
    else:
        core = _read(Path(path).read_text(encoding="utf-8"), str(path), None)
    files = dict(domains.rights.items()) if domains is not None else {}
    return merge_rights([(CORE_SOURCE if path is None else str(path), core), *domain_rights(files)])


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
    """Whether token ``scopes`` cover ``action``: the action, an area of it (``health.cohort.*``...) or ``*``.

    An area is any dotted prefix of the action: ``health.*`` covers every health action, ``project.*``
    every project action.

    Examples
    --------
    >>> scope_allows(frozenset({"health.cohort.*"}), "health.cohort.count")
    True
    >>> scope_allows(frozenset({"health.mart.count"}), "health.cohort.count")
    False
    """
    return "*" in scopes or action in scopes or any(f"{prefix}.*" in scopes for prefix in _prefixes(action))


def _prefixes(action: str) -> list[str]:
    """``health.cohort.count`` → ``health``, ``health.cohort`` (the areas a scope may name)."""
    parts = action.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def validate_scopes(rights: Rights, scopes: frozenset[str]) -> frozenset[str]:
    """Check that every scope names a declared action, an area of one (``area.*``) or ``*``."""
    areas = {prefix for name in rights.actions for prefix in _prefixes(name)}
    for scope in scopes:
        if scope == "*" or scope in rights.actions:
            continue
        if scope.endswith(".*") and scope[:-2] in areas:
            continue
        raise ValueError(f"unknown token scope {scope!r}: use an action of rights.yaml, '<area>.*' or '*'")
    return scopes
