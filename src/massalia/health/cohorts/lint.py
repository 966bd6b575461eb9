"""Definition linting: actionable findings about cohort definitions that are wrong or likely unintended.

The checks follow the problems OHDSI's Circe checkers flag (their correct/incorrect reference pairs):
empty or unused or duplicate concept sets, criteria without a concept set, values missing from
ranges, impossible windows and ranges, contradictory or duplicated criteria, empty rules and groups,
deaths looked for before the index, limits that break the first/last/all progression, drug exits on a
non-drug concept set, and drug entries without a drug exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from massalia.health.cohorts.circe import CirceImportError, circe_refusals, import_circe_report
from massalia.health.cohorts.compiler import compile_cohort
from massalia.health.cohorts.criteria import (
    CorrelatedCriteria,
    CriteriaGroup,
    Criterion,
    Death,
    DemographicCriteria,
    DrugEra,
    DrugExposure,
    OncologyCriterion,
    TnmStage,
    TreatmentLine,
)
from massalia.health.cohorts.definition import CohortDefinition, CustomEra
from massalia.health.cohorts.nodes import ConceptSetSelection, DateRange, Node, NumericRange, TextFilter, Window
from massalia.health.cohorts.sqltext import UnsupportedConstruct

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Finding:
    """One lint finding: a stable ``code``, a severity, where it is (JSON path) and what to do."""

    code: str
    severity: Severity
    path: str
    message: str


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, Node):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if value is not None:
                yield from _walk(value, f"{path}.{name}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]")


def _groups(definition: CohortDefinition) -> Iterator[tuple[str, CriteriaGroup]]:
    for path, node in _walk(definition, "$"):
        if isinstance(node, CriteriaGroup):
            yield path, node


def _codeset_references(definition: CohortDefinition) -> Iterator[tuple[str, int]]:
    for path, node in _walk(definition, "$"):
        if isinstance(node, Criterion):
            for name in type(node).model_fields:
                value = getattr(node, name)
                if (
                    isinstance(value, int)
                    and not isinstance(value, bool)
                    and (
                        name.endswith("codeset_id") or name.endswith("_concept") or name == "place_of_service_location"
                    )
                ):
                    yield f"{path}.{name}", value
        elif isinstance(node, ConceptSetSelection) and node.codeset_id is not None:
            yield path, node.codeset_id
        elif isinstance(node, CustomEra) and node.drug_codeset_id is not None:
            yield f"{path}.drug_codeset_id", node.drug_codeset_id


def _window_bounds(window: Window) -> tuple[float, float]:
    low = -float("inf") if window.start.days is None else window.start.coeff * window.start.days
    high = float("inf") if window.end.days is None else window.end.coeff * window.end.days
    if window.start.days is None and window.start.coeff == 1:
        low = float("inf")
    if window.end.days is None and window.end.coeff == -1:
        high = -float("inf")
    return low, high


def _criteria_key(item: CorrelatedCriteria) -> str:
    return item.model_dump_json(exclude={"occurrence"})


def lint(definition: CohortDefinition | str | bytes | dict[str, Any]) -> list[Finding]:
    """Check a definition (or raw Circe JSON) and return findings, most severe first.

    Examples
    --------
    >>> findings = lint('{"ConceptSets": [{"id": 0, "name": "x", "expression": {"items": []}}]}')
    >>> sorted({f.code for f in findings})
    ['empty-concept-set', 'no-entry-event', 'unused-concept-set']
    """
    findings: list[Finding] = []
    if not isinstance(definition, CohortDefinition):
        try:
            report = import_circe_report(definition)
        except CirceImportError as error:
            return [Finding("invalid-definition", "error", path, message) for path, message in error.problems]
        findings += [
            Finding("ignored-attribute", "warning", path, "attribute ignored (not part of this criteria type)")
            for path in report.ignored
        ]
        definition = report.definition
    findings += _concept_set_findings(definition)
    findings += _value_findings(definition)
    findings += _group_findings(definition)
    findings += _exit_findings(definition)
    findings += _oncology_findings(definition)
    try:
        compile_cohort(definition)
    except UnsupportedConstruct as error:
        path, _, message = str(error).partition(": ")
        # a draft's missing value is already reported under its own code
        if not any(f.severity == "error" and (f.path.startswith(path) or path.startswith(f.path)) for f in findings):
            findings.append(Finding("unsupported-construct", "error", path, message))
    order = {"error": 0, "warning": 1, "info": 2}
    return sorted(findings, key=lambda f: (order[f.severity], f.path, f.code))


def _concept_set_findings(definition: CohortDefinition) -> list[Finding]:
    findings = []
    ids = {cs.id for cs in definition.concept_sets}
    used = {codeset for _, codeset in _codeset_references(definition)}
    seen: dict[str, str] = {}
    for index, concept_set in enumerate(definition.concept_sets):
        path = f"$.concept_sets[{index}]"
        items = concept_set.expression.items
        if not items:
            findings.append(
                Finding(
                    "empty-concept-set",
                    "error",
                    path,
                    f"concept set {concept_set.name!r} contains no concepts: add concepts or delete it",
                )
            )
        if concept_set.id not in used:
            findings.append(
                Finding(
                    "unused-concept-set",
                    "warning",
                    path,
                    f"concept set {concept_set.name!r} is not used by any criterion: delete it",
                )
            )
        concept_ids = [item.concept.concept_id for item in items]
        if len(concept_ids) != len(set(concept_ids)):
            findings.append(
                Finding(
                    "duplicate-concept-set-item",
                    "warning",
                    path,
                    f"concept set {concept_set.name!r} lists a concept more than once",
                )
            )
        key = repr(
            sorted((i.concept.concept_id, i.is_excluded, i.include_descendants, i.include_mapped) for i in items)
        )
        if items and key in seen:
            findings.append(
                Finding(
                    "duplicate-concept-set",
                    "warning",
                    path,
                    f"concept set {concept_set.name!r} has the same concepts as {seen[key]!r}: reuse one",
                )
            )
        seen.setdefault(key, concept_set.name)
    for path, codeset in _codeset_references(definition):
        if codeset not in ids:
            findings.append(Finding("unknown-concept-set", "error", path, f"concept set {codeset} does not exist"))
    for path, node in _walk(definition, "$"):
        if (
            isinstance(node, Criterion)
            and getattr(node, "codeset_id", 0) is None
            and type(node).__name__ not in ("ObservationPeriod", "PayerPlanPeriod", "Death")
            and not isinstance(node, OncologyCriterion)  # they select their own records (tumours, episodes)
        ):
            findings.append(
                Finding(
                    "missing-concept-set",
                    "warning",
                    path,
                    f"{node.kind} has no concept set: it matches every {node.kind} record",
                )
            )
    for index, node in enumerate(definition.primary_criteria.criteria_list):
        typed = [name for name in type(node).model_fields if name.endswith("_type") and name != "visit_type"]
        if typed and not any(getattr(node, name) or getattr(node, f"{name}_cs", None) for name in typed):
            findings.append(
                Finding(
                    "no-record-type",
                    "info",
                    f"$.primary_criteria.criteria_list[{index}]",
                    f"{node.kind}: the type of records to look for is not specified",
                )
            )
    if not definition.primary_criteria.criteria_list:
        findings.append(
            Finding(
                "no-entry-event",
                "error",
                "$.primary_criteria.criteria_list",
                "no initial event criteria: the cohort is empty; add an entry event",
            )
        )
    return findings


TNM_TOP = {"T": 4, "N": 3, "M": 1, "group": 4}
"""Highest rank of each TNM axis (T4, N3, M1, stage IV)."""


def _rank_bounds(value: NumericRange) -> tuple[float, float] | None:
    """The interval of ranks a range accepts (``None`` for negated or incomplete ranges)."""
    if value.value is None or value.op.startswith("!"):
        return None
    low = {
        "lt": -float("inf"),
        "lte": -float("inf"),
        "eq": value.value,
        "gt": value.value + 1e-9,
        "gte": value.value,
        "bt": value.value,
    }[value.op]
    high = {
        "lt": value.value - 1e-9,
        "lte": value.value,
        "eq": value.value,
        "gt": float("inf"),
        "gte": float("inf"),
        "bt": value.extent if value.extent is not None else float("inf"),
    }[value.op]
    return low, high


def _oncology_findings(definition: CohortDefinition) -> list[Finding]:
    findings = [
        Finding("not-circe-exportable", "info", path, f"{reason}; save it with to_json(), to_circe() refuses it")
        for path, reason in circe_refusals(definition)
    ]
    for path, node in _walk(definition, "$"):
        if isinstance(node, TnmStage) and node.value is not None:
            bounds = _rank_bounds(node.value)
            top = TNM_TOP[node.axis]
            if bounds is not None and (bounds[0] > top or bounds[1] < 0 or bounds[0] > bounds[1]):
                findings.append(
                    Finding(
                        "impossible-stage",
                        "error",
                        f"{path}.value",
                        f"no {node.axis} rank lies in this range (ranks go from 0 to {top})",
                    )
                )
        if isinstance(node, TreatmentLine) and node.line is not None:
            bounds = _rank_bounds(node.line)
            if bounds is not None and bounds[1] < 1:
                findings.append(
                    Finding(
                        "impossible-line",
                        "error",
                        f"{path}.line",
                        "lines of therapy are numbered from 1: no line lies in this range",
                    )
                )
    return findings


def _value_findings(definition: CohortDefinition) -> list[Finding]:
    findings = []
    for path, node in _walk(definition, "$"):
        if isinstance(node, NumericRange | DateRange):
            missing = node.missing_bound()
            if missing:
                findings.append(Finding("missing-value", "error", path, f"{missing}: enter it or remove the filter"))
            elif node.is_empty_between():
                findings.append(
                    Finding(
                        "empty-range",
                        "error",
                        path,
                        f"range from {node.value} to {node.extent} is empty: swap the bounds",
                    )
                )
        elif isinstance(node, TextFilter) and not node.text:
            findings.append(Finding("missing-value", "error", path, "text filter has no text: enter it or remove it"))
        elif isinstance(node, DemographicCriteria) and not any(getattr(node, name) for name in type(node).model_fields):
            findings.append(
                Finding(
                    "empty-demographic", "warning", path, "demographic criterion sets nothing: fill it in or delete it"
                )
            )
        elif isinstance(node, CorrelatedCriteria):
            findings += _correlated_findings(node, path)
    return findings


def _correlated_findings(item: CorrelatedCriteria, path: str) -> list[Finding]:
    findings = []
    if item.criteria is None:
        return [Finding("missing-criteria", "error", path, "correlated criterion without criteria: pick a domain")]
    for name, window in (("start_window", item.start_window), ("end_window", item.end_window)):
        if window is None:
            continue
        low, high = _window_bounds(window)
        if low > high:
            findings.append(
                Finding(
                    "impossible-window",
                    "error",
                    f"{path}.{name}",
                    "window starts after it ends: no record can ever match",
                )
            )
    if isinstance(item.criteria, Death):
        low, high = _window_bounds(item.start_window)
        if high < 0 and not (item.occurrence.type == 0 and item.occurrence.count == 0):
            findings.append(
                Finding(
                    "death-before-index",
                    "warning",
                    path,
                    "looks for a death before the index event: events after death are rarely recorded",
                )
            )
    if isinstance(item.criteria, DrugEra):
        findings.append(
            Finding(
                "drug-era-claims",
                "info",
                path,
                "drug eras on claims without days supply (e.g. biologics) may be inaccurate",
            )
        )
    return findings


def _group_findings(definition: CohortDefinition) -> list[Finding]:
    findings = []
    for index, rule in enumerate(definition.inclusion_rules):
        if rule.expression.is_empty():
            findings.append(
                Finding(
                    "empty-inclusion-rule",
                    "warning",
                    f"$.inclusion_rules[{index}]",
                    f"inclusion rule {rule.name!r} has no criteria: it keeps every event",
                )
            )
    for path, group in _groups(definition):
        if group.is_empty() and not path.endswith(".expression"):  # empty rules are reported above
            findings.append(Finding("empty-group", "warning", path, "criteria group is empty: it accepts every event"))
        requirements: dict[str, set[str]] = {}
        seen: set[str] = set()
        for index, item in enumerate(group.criteria_list):
            key = _criteria_key(item)
            occurrence = item.occurrence
            if key + occurrence.model_dump_json() in seen:
                findings.append(
                    Finding(
                        "duplicate-criteria",
                        "warning",
                        f"{path}.criteria_list[{index}]",
                        "the same criterion appears twice in this group: delete one",
                    )
                )
            seen.add(key + occurrence.model_dump_json())
            absent = occurrence.type in (0, 1) and occurrence.count == 0
            present = occurrence.type in (0, 2) and occurrence.count >= 1
            requirements.setdefault(key, set()).add("absent" if absent else "present" if present else "other")
        if group.type == "ALL":
            for kinds in requirements.values():
                if {"absent", "present"} <= kinds:
                    findings.append(
                        Finding(
                            "contradiction",
                            "error",
                            path,
                            "a criterion is required both present and absent in an ALL group: no event can satisfy it",
                        )
                    )
    weights = {"first": 0, "last": 1, "all": 2}
    primary = weights[definition.primary_criteria.primary_criteria_limit.kind]
    qualifying = weights[definition.qualified_limit.kind]
    cohort = weights[definition.expression_limit.kind]
    if primary < cohort:
        findings.append(
            Finding(
                "events-progression",
                "warning",
                "$.expression_limit",
                "the cohort limit keeps more events than the initial-event limit allows",
            )
        )
    if definition.additional_criteria is not None and (cohort < qualifying or primary < qualifying):
        findings.append(
            Finding(
                "events-progression",
                "warning",
                "$.qualified_limit",
                "the qualifying limit breaks the all/latest/earliest progression",
            )
        )
    return findings


def _exit_findings(definition: CohortDefinition) -> list[Finding]:
    findings = []
    strategy = definition.end_strategy
    if isinstance(strategy, CustomEra):
        if strategy.drug_codeset_id is None:
            findings.append(
                Finding(
                    "custom-era-without-drug",
                    "error",
                    "$.end_strategy",
                    "a continuous-exposure exit needs a drug concept set",
                )
            )
        else:
            concept_set = definition.concept_set(strategy.drug_codeset_id)
            domains = {i.concept.domain_id for i in concept_set.expression.items} if concept_set else set()
            if concept_set is not None and domains - {"Drug", None}:
                findings.append(
                    Finding(
                        "custom-era-not-drug",
                        "error",
                        "$.end_strategy.drug_codeset_id",
                        f"the continuous-exposure exit uses concept set {concept_set.name!r}"
                        f" whose concepts are not drugs ({', '.join(sorted(d for d in domains if d))})",
                    )
                )
    elif strategy is None:
        drugs = [c for c in definition.primary_criteria.criteria_list if isinstance(c, DrugExposure | DrugEra)]
        if drugs:
            findings.append(
                Finding(
                    "no-exit-for-drug",
                    "info",
                    "$.end_strategy",
                    "drug entry events with no exit strategy: persons stay in the cohort until the"
                    " end of observation; consider a continuous-exposure (custom era) exit",
                )
            )
    return findings
