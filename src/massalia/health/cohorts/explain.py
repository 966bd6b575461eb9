"""Why is a person in or out of a cohort: their entry events and, per inclusion rule, the records found.

For one person, ``explain_person`` lists each qualified entry event with the rules it satisfies and,
for every correlated criterion at the top of each rule, the records that fell in its window (so a
failed "at least 1" shows an empty list, a failed "exactly 0" shows the offending records).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot

from massalia.engine import Engine
from massalia.health.cohorts.compiler import HOUSE_DIALECT, STEP_NAMES, CohortCompiler, parse_query
from massalia.health.cohorts.definition import CohortDefinition


@dataclass
class CriterionEvidence:
    """The records matching one correlated criterion of a rule, in the window of one entry event."""

    path: str
    description: str
    records: list[dict[str, object]]


@dataclass
class RuleExplanation:
    """One inclusion rule applied to one entry event."""

    rule_index: int
    name: str
    satisfied: bool
    evidence: list[CriterionEvidence] = field(default_factory=list)


@dataclass
class EventExplanation:
    """One qualified entry event of the person and how the rules judged it."""

    event_id: int
    start_date: object
    end_date: object
    included: bool
    rules: list[RuleExplanation]


@dataclass
class PersonExplanation:
    """Everything about one person: entry events found, qualified ones, and the final cohort periods."""

    person_id: int
    primary_events: list[dict[str, object]]
    events: list[EventExplanation]
    cohort_periods: list[dict[str, object]]

    @property
    def in_cohort(self) -> bool:
        """Whether the person has at least one cohort period."""
        return bool(self.cohort_periods)


def _integer(value: object) -> int:
    """An id or mask read back from the cohort steps (integers on every engine)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer from the cohort steps, got {value!r}")


def explain_person(engine: Engine, definition: CohortDefinition, person_id: int) -> PersonExplanation:
    """Explain, for ``person_id``, which records satisfied or failed each inclusion rule.

    Examples
    --------
    >>> from massalia.engine import connect
    >>> from massalia.health.omop.schema import create_cdm_schema
    >>> from massalia.health.cohorts import import_circe
    >>> engine = connect("duckdb"); create_cdm_schema(engine)
    >>> definition = import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}')
    >>> explain_person(engine, definition, 1).in_cohort
    False
    """
    compiler = CohortCompiler(definition)
    compiled = compiler.compile()
    pid = int(person_id)

    def rows(step: str, extra: str = "") -> list[dict[str, object]]:
        query = compiled.single_statement(until=step)
        sql = f"SELECT * FROM ({query.sql(dialect=HOUSE_DIALECT)}) X WHERE {extra or f'person_id = {pid}'}"
        found: list[dict[str, object]] = engine.query(sqlglot.parse_one(sql, read=HOUSE_DIALECT)).to_pylist()
        return found

    primary = sorted(rows("primary_events"), key=lambda r: (str(r["start_date"]), r["event_id"]))
    qualified = sorted(rows("qualified_mask"), key=lambda r: (str(r["start_date"]), r["event_id"]))
    periods = rows("cohort", f"subject_id = {pid}")
    full = (1 << len(definition.inclusion_rules)) - 1
    names = [step.name for step in compiled.steps]
    events: list[EventExplanation] = []
    for event in qualified:
        mask = _integer(event["inclusion_rule_mask"])
        explanations = []
        for index, rule in enumerate(definition.inclusion_rules):
            evidence = []
            for item_index, item in enumerate(rule.expression.criteria_list):
                if item.criteria is None:
                    continue
                path = f"$.inclusion_rules[{index}].expression.criteria_list[{item_index}]"
                criteria = compiler.criteria_events(item.criteria, f"{path}.criteria")
                window = " AND ".join(compiler.window_clauses(item) or ["1=1"])
                sql = (
                    "SELECT A.event_id AS record_id, A.start_date, A.end_date, A.domain_concept_id"
                    f" FROM qualified_events P JOIN ({criteria}) A ON A.person_id = P.person_id AND {window}"
                    f" WHERE P.person_id = {pid} AND P.event_id = {_integer(event['event_id'])}"
                    " ORDER BY A.start_date, A.event_id"
                )
                query = parse_query(sql, "explain")
                for position, step in enumerate(compiled.steps):
                    if position <= names.index("qualified_events") or step.name not in STEP_NAMES:
                        query = query.with_(step.name, as_=step.select.copy(), copy=False)
                found = engine.query(query).to_pylist()
                occurrence = item.occurrence
                wanted = {0: "exactly", 1: "at most", 2: "at least"}[occurrence.type]
                description = f"{item.criteria.kind}: {wanted} {occurrence.count} record(s) in the window"
                evidence.append(CriterionEvidence(path, description, found))
            explanations.append(RuleExplanation(index, rule.name, bool(mask >> index & 1), evidence))
        events.append(
            EventExplanation(
                _integer(event["event_id"]),
                event["start_date"],
                event["end_date"],
                (mask & full) == full,
                explanations,
            )
        )
    return PersonExplanation(pid, primary, events, periods)
