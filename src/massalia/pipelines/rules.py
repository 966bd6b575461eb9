"""Validation rules as data: each rule is a small record that compiles to one SQL predicate.

A mapping declares its rules as a list of :class:`Rule` objects (or they are derived from the target
schema: required fields, maximum lengths). The runner evaluates every rule in one set-based pass and
turns each violation into a reject row naming the file, the line, the field, the value and the
reason. Rules never raise: bad rows are set aside, good rows go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

Action = Literal["reject", "flag"]
"""``reject``: the row is not loaded. ``flag``: the row is loaded, and the finding is recorded."""


@dataclass(frozen=True)
class Rule:
    """One validation rule on one field.

    Parameters
    ----------
    kind
        Name of a registered :class:`RuleKind` (``required``, ``invalid_date``, ``too_long``...).
    field
        The target field checked (reported in reject rows).
    value
        SQL expression (house dialect) of the raw source value; reported as the rejected value.
    result
        SQL expression of the mapped value, when the rule compares raw and mapped values.
    action
        What happens to a violating row.
    limit
        Parameter of the kind (maximum length, lowest plausible date...).
    detail
        Extra words for the message (expected format...).
    source_field
        The source column the value came from, when there is one (reported next to ``field``).

    Examples
    --------
    >>> Rule("too_long", "gender_source_value", value="s.sexe", limit="50").predicate()
    '(coalesce(length(CAST(s.sexe AS VARCHAR)) > 50, false))'
    """

    kind: str
    field: str
    value: str
    result: str | None = None
    action: Action = "reject"
    limit: str | None = None
    detail: str = ""
    source_field: str | None = None

    @property
    def rule_kind(self) -> RuleKind:
        """The registered kind of this rule."""
        try:
            return RULE_KINDS[self.kind]
        except KeyError:
            raise ValueError(f"unknown rule kind {self.kind!r}; known kinds: {', '.join(sorted(RULE_KINDS))}") from None

    def predicate(self) -> str:
        """SQL predicate that is true when a row violates the rule (never null)."""
        return f"({self.rule_kind.predicate(self)})"

    @property
    def reason(self) -> str:
        """Short reason code stored in reject rows (``invalid_date``...)."""
        return self.rule_kind.reason

    def message(self) -> str:
        """Human description of the violation, stored next to the reason."""
        text = self.rule_kind.message
        if self.limit is not None:
            text = text.replace("{limit}", self.limit)
        return f"{text} {self.detail}".strip()


@dataclass(frozen=True)
class RuleKind:
    """A kind of rule: how to spot a violation in SQL, and how to call it."""

    name: str
    reason: str
    message: str
    predicate: Callable[[Rule], str]


def _text(sql: str) -> str:
    # No trim(): connectors already turn empty values into NULL, and trim() costs as much as the
    # date parsing itself on tens of millions of rows; padded values are reported as they are.
    return f"CAST({sql} AS VARCHAR)"


def _needs_result(rule: Rule) -> str:
    if rule.result is None:
        raise ValueError(f"rule {rule.kind} on {rule.field} needs a mapped value (result=)")
    return rule.result


def _needs_limit(rule: Rule) -> str:
    if rule.limit is None:
        raise ValueError(f"rule {rule.kind} on {rule.field} needs a limit")
    return rule.limit


def register_rule_kind(kind: RuleKind) -> None:
    """Register a rule kind (built-in or extension)."""
    RULE_KINDS[kind.name] = kind


def builtin_rule_kinds() -> list[RuleKind]:
    """The rule kinds every pipeline can use."""
    return [
        RuleKind(
            "required",
            "missing_required",
            "required value is missing",
            lambda r: f"{r.value} IS NULL OR {_text(r.value)} = ''",
        ),
        RuleKind(
            "invalid_date",
            "invalid_date",
            "not a valid date",
            lambda r: f"{r.value} IS NOT NULL AND {_text(r.value)} <> '' AND {_needs_result(r)} IS NULL",
        ),
        RuleKind(
            "invalid_number",
            "invalid_number",
            "not a valid number",
            lambda r: f"{r.value} IS NOT NULL AND {_text(r.value)} <> '' AND {_needs_result(r)} IS NULL",
        ),
        RuleKind(
            "too_long",
            "too_long",
            "value longer than {limit} characters",
            lambda r: f"coalesce(length({_text(r.value)}) > {_needs_limit(r)}, false)",
        ),
        RuleKind(
            "unmapped_code",
            "unmapped_code",
            "code not found in the vocabulary",
            lambda r: f"{r.value} IS NOT NULL AND {_text(r.value)} <> '' AND {_needs_result(r)} IS NULL",
        ),
        RuleKind(
            "invalid_code",
            "invalid_code",
            "malformed code (expected pattern {limit})",
            lambda r: (
                f"{r.value} IS NOT NULL AND {_text(r.value)} <> '' AND NOT "
                f"regexp_full_match({_text(r.value)}, '{_needs_limit(r)}')"
            ),
        ),
        RuleKind(
            "unknown_value",
            "unknown_value",
            "value outside the declared list",
            lambda r: f"{r.value} IS NOT NULL AND {_text(r.value)} <> '' AND {_needs_result(r)} IS NULL",
        ),
        RuleKind(
            "unknown_reference",
            "unknown_reference",
            "refers to a record that was not loaded",
            lambda r: f"{r.value} IS NOT NULL AND {_text(r.value)} <> '' AND {_needs_result(r)} IS NULL",
        ),
        RuleKind(
            "date_before",
            "implausible_date",
            "date before {limit}",
            lambda r: f"coalesce({_needs_result(r)} < DATE '{_needs_limit(r)}', false)",
        ),
        RuleKind(
            "date_in_future",
            "implausible_date",
            "date after the extraction date",
            lambda r: f"coalesce(CAST({_needs_result(r)} AS DATE) > current_date, false)",
        ),
    ]


RULE_KINDS: dict[str, RuleKind] = {kind.name: kind for kind in builtin_rule_kinds()}
"""Rule kind name → kind; extensions add theirs with :func:`register_rule_kind`."""


def violation_columns(rules: Sequence[Rule]) -> list[str]:
    """``SELECT`` items computing one boolean per rule (``_v0``, ``_v1``...) and its raw value."""
    items = []
    for index, rule in enumerate(rules):
        items.append(f"coalesce({rule.predicate()}, false) AS _v{index}")
        items.append(f"{_text(rule.value)} AS _x{index}")
    return items


def rejecting(rules: Sequence[Rule]) -> str:
    """Predicate true for rows that at least one ``reject`` rule refuses (``false`` if none)."""
    parts = [f"_v{i}" for i, rule in enumerate(rules) if rule.action == "reject"]
    return " OR ".join(parts) if parts else "false"
