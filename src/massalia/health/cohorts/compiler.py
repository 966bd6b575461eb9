"""Compile a ``CohortDefinition`` into SQL steps over the OMOP tables, with OHDSI Circe's semantics.

The cohort is built in named steps, each one SELECT (house dialect, parsed into SQLGlot):

``codesets`` → ``primary_events`` → ``qualified_events`` → ``inclusion_events`` → ``qualified_mask``
→ ``included_events`` → ``strategy_ends`` → ``cohort_ends`` → ``cohort_rows`` → ``final_cohort`` → ``cohort``.

``CompiledCohort.single_statement`` chains them as one ``WITH`` query (DuckDB, Spark);
``CompiledCohort.materialized`` emits one ``CREATE TEMPORARY TABLE`` (+ ``ANALYZE``) per step, which
PostgreSQL needs: its planner estimates the qualified events at one row in the one-statement form
and picks nested loops that ran over 1,000× slower here.

Semantics checked against circe-be's templates: windows in days relative to the index start (or end)
date, both bounds inclusive, an unbounded side falls back to the observation period; correlated
records must start inside the index event's observation period unless told otherwise; occurrence
counts are exactly / at most / at least; inclusion rules set one bit each on every qualified event and
an event is included when all bits are set; periods are merged per person with the era pad.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import sqlglot
from sqlglot import exp

from massalia.health.cohorts.circe import circe_path
from massalia.health.cohorts.criteria import CorrelatedCriteria, CriteriaGroup, Criterion, DemographicCriteria
from massalia.health.cohorts.definition import CohortDefinition, CustomEra, DateOffset
from massalia.health.cohorts.domains import COUNT_COLUMNS, DomainCompiler
from massalia.health.cohorts.nodes import ConceptSet, ConceptSetItem, Window
from massalia.health.cohorts.sqltext import (
    UnsupportedConstruct,
    date_clause,
    date_literal,
    in_concepts,
    numeric_clause,
    selection_clause,
    shift,
)

HOUSE_DIALECT = "duckdb"
STEP_NAMES = (
    "codesets", "primary_events", "qualified_events", "inclusion_events", "qualified_mask",
    "included_events", "cohort_ends", "cohort_rows", "final_cohort", "cohort",
)  # fmt: skip
MAX_INCLUSION_RULES = 62
"""Each rule is one bit of a BIGINT mask."""


@dataclass(frozen=True)
class Step:
    """One named step of the cohort build: a SELECT over the OMOP tables and earlier steps.

    ``text`` is the SELECT in the house dialect, as the compiler wrote it; ``select`` is its SQLGlot
    tree, parsed on first use (the house engine runs the text as it is, other engines need the tree).
    """

    name: str
    text: str

    @cached_property
    def select(self) -> exp.Query:
        """The step's SELECT as a SQLGlot expression (house dialect)."""
        return parse_query(self.text, self.name)


@dataclass(frozen=True)
class CompiledCohort:
    """The steps of a cohort build; ``cohort`` is the last one (the cohort rows)."""

    steps: tuple[Step, ...]
    cohort_definition_id: int
    rule_count: int

    def step(self, name: str) -> Step:
        """The step called ``name``."""
        return next(step for step in self.steps if step.name == name)

    def single_statement(self, *, until: str = "cohort", prefix: str = "") -> exp.Query:
        """All steps up to ``until`` as one ``WITH`` query selecting that step's rows."""
        names = [step.name for step in self.steps]
        last = names.index(until)
        with_steps = self.steps[:last]
        query = _rename(self.steps[last].select, prefix, names)
        for step in with_steps:
            query = query.with_(f"{prefix}{step.name}", as_=_rename(step.select, prefix, names), copy=False)
        return query

    def statement_text(self, *, until: str = "cohort", replaced: Mapping[str, str] | None = None) -> str:
        """All steps up to ``until`` as one ``WITH`` query in the house dialect, built from the steps' text.

        No SQLGlot round trip: this is what the house engine (DuckDB) runs. ``replaced`` maps a step
        name to a table already holding its rows (a temporary table): that step reads the table, and
        the steps only it needed are left out.
        """
        replaced = dict(replaced or {})
        names = [step.name for step in self.steps]
        last = names.index(until)
        needed = self._needed(until, replaced)
        ctes = []
        for step in self.steps[:last]:
            if step.name in replaced:
                ctes.append(f"{step.name} AS (SELECT * FROM {replaced[step.name]})")
            elif step.name in needed:
                ctes.append(f"{step.name} AS ({step.text})")
        body = self.steps[last].text
        return f"WITH {', '.join(ctes)} {body}" if ctes else body

    def _needed(self, until: str, replaced: Mapping[str, str]) -> set[str]:
        """Names of the steps that step ``until`` reads, directly or through others, stopping at ``replaced``."""
        names = {step.name for step in self.steps}
        by_name = {step.name: step for step in self.steps}
        needed: set[str] = set()
        pending = [until]
        while pending:
            step = by_name[pending.pop()]
            if step.name in replaced:
                continue
            for name in _step_references(step.text, names):
                if name not in needed:
                    needed.add(name)
                    pending.append(name)
        return needed

    def materialized(self, dialect: str, *, prefix: str = "c_", analyze: bool = True) -> list[str]:
        """One ``CREATE TEMPORARY TABLE <prefix><step>`` statement per step (and ``ANALYZE``), in ``dialect``."""
        names = [step.name for step in self.steps]
        statements: list[str] = []
        for step in self.steps:
            table = f"{prefix}{step.name}"
            body = _rename(step.select, prefix, names).sql(dialect=dialect)
            statements.append(f"DROP TABLE IF EXISTS {table}")
            statements.append(f"CREATE TEMPORARY TABLE {table} AS {body}")
            if analyze:
                statements.append(f"ANALYZE {table}")
        return statements


def _rename(select: exp.Query, prefix: str, names: list[str]) -> exp.Query:
    if not prefix:
        return select.copy()

    def rename(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Table) and not node.args.get("db") and node.name in names:
            return exp.table_(f"{prefix}{node.name}", alias=node.alias or None)
        return node

    renamed = select.copy().transform(rename)
    if not isinstance(renamed, exp.Query):  # only tables are replaced: the root stays the query
        raise RuntimeError(f"renaming the steps of {select.sql()[:80]} did not leave a query")
    return renamed


def _step_references(text: str, names: set[str]) -> set[str]:
    """The step names that appear as words in a step's text (a superset of the tables it reads)."""
    return {word for word in _WORD.findall(text) if word in names}


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_query(sql: str, name: str) -> exp.Query:
    """Parse the compiler's SQL for step ``name`` (house dialect); it must be one query.

    Raises
    ------
    RuntimeError
        The text does not parse or is not a query: a compiler bug, never a user error.
    """
    try:
        tree = sqlglot.parse_one(sql, read=HOUSE_DIALECT)
    except sqlglot.errors.ParseError as error:
        raise RuntimeError(f"cohort step {name} produced invalid SQL: {error}\n{sql}") from error
    if not isinstance(tree, exp.Query):
        raise RuntimeError(f"cohort step {name} is not a query ({type(tree).__name__}):\n{sql}")
    return tree


class CohortCompiler:
    """The visitor that turns definition nodes into SQL; one instance per definition."""

    def __init__(self, definition: CohortDefinition) -> None:
        self.definition = definition
        self.domains = DomainCompiler("codesets")
        self._shared: dict[str, str] = {}
        self._pending: list[tuple[str, str]] = []

    def share(self, sql: str, hint: str) -> str:
        """Name a subquery as its own step (a CTE, or a temporary table), once per distinct SQL text.

        Criteria repeated across rules, and criteria with nested correlated criteria (whose events
        are read several times), are written once: the SQL stays small and each is computed once.
        """
        name = self._shared.get(sql)
        if name is None:
            name = f"{hint}_{len(self._shared) + 1}"
            self._shared[sql] = name
            self._pending.append((name, sql))
        return name

    # -- codesets -----------------------------------------------------------------------------
    def codeset_query(self, concept_set: ConceptSet) -> str:
        """Concepts of one concept set: items, descendants, mapped source concepts, minus exclusions."""
        include = [i for i in concept_set.expression.items if not i.is_excluded]
        exclude = [i for i in concept_set.expression.items if i.is_excluded]
        query = f"SELECT DISTINCT I.concept_id FROM ({self._concepts_query(include)}) I"
        if exclude:
            query += (
                f" LEFT JOIN ({self._concepts_query(exclude)}) E ON I.concept_id = E.concept_id"
                " WHERE E.concept_id IS NULL"
            )
        # INTEGER, as OMOP's concept ids: a BIGINT here made every event table cast its concept column per row
        return (
            f"SELECT {int(concept_set.id)} AS codeset_id, CAST(c.concept_id AS INTEGER) AS concept_id FROM ({query}) c"
        )

    @staticmethod
    def _concepts_query(items: list[ConceptSetItem]) -> str:
        ids = [i.concept.concept_id for i in items]
        descendants = [i.concept.concept_id for i in items if i.include_descendants]
        mapped = [i.concept.concept_id for i in items if i.include_mapped]
        mapped_descendants = [i.concept.concept_id for i in items if i.include_mapped and i.include_descendants]
        parts = [f"SELECT concept_id FROM concept WHERE {in_concepts('concept_id', ids)}"]
        if descendants:
            parts.append(
                "SELECT c.concept_id FROM concept c JOIN concept_ancestor ca ON c.concept_id = ca.descendant_concept_id"
                f" WHERE c.invalid_reason IS NULL AND {in_concepts('ca.ancestor_concept_id', descendants)}"
            )
        if mapped:
            standard = [f"SELECT concept_id FROM concept WHERE {in_concepts('concept_id', mapped)}"]
            if mapped_descendants:
                standard.append(
                    "SELECT c.concept_id FROM concept c JOIN concept_ancestor ca"
                    " ON c.concept_id = ca.descendant_concept_id WHERE c.invalid_reason IS NULL"
                    f" AND {in_concepts('ca.ancestor_concept_id', mapped_descendants)}"
                )
            parts.append(
                f"SELECT cr.concept_id_1 AS concept_id FROM ({' UNION '.join(standard)}) S"
                " JOIN concept_relationship cr ON S.concept_id = cr.concept_id_2"
                " AND cr.relationship_id = 'Maps to' AND cr.invalid_reason IS NULL"
            )
        return " UNION ".join(parts)

    def codesets(self) -> str:
        """The ``codesets`` step: (codeset_id, concept_id) for every concept set."""
        if not self.definition.concept_sets:
            return "SELECT CAST(NULL AS INTEGER) AS codeset_id, CAST(NULL AS INTEGER) AS concept_id WHERE 1 = 0"
        return " UNION ALL ".join(self.codeset_query(cs) for cs in self.definition.concept_sets)

    # -- criteria -----------------------------------------------------------------------------
    def criteria_events(self, node: Criterion, where: str) -> str:
        """Events of a criterion, restricted by its own nested correlated criteria if any."""
        query = self.domains.events(node, where)
        group = node.correlated_criteria
        if group is None or group.is_empty():
            return query
        events = self.share(query, "events")
        event_table = self.share(
            "SELECT Q.person_id, Q.event_id, Q.start_date, Q.end_date, Q.visit_occurrence_id,"
            " OP.observation_period_start_date AS op_start_date, OP.observation_period_end_date AS op_end_date"
            f" FROM {events} Q JOIN observation_period OP ON Q.person_id = OP.person_id"
            " AND OP.observation_period_start_date <= Q.start_date AND OP.observation_period_end_date >= Q.start_date",
            "indexed",
        )
        group_query = self.group_query(group, event_table, 0, f"{where}.correlated_criteria")
        return (
            "SELECT PE.person_id, PE.event_id, PE.start_date, PE.end_date, PE.visit_occurrence_id, PE.sort_date,"
            f" PE.domain_concept_id FROM {events} PE JOIN ({group_query}) AC"
            " ON AC.person_id = PE.person_id AND AC.event_id = PE.event_id"
        )

    def window_clauses(self, item: CorrelatedCriteria) -> list[str]:
        """Conditions placing a correlated record ``A`` relative to the index event ``P``."""
        check_op = not item.ignore_observation_period
        clauses = ["A.start_date >= P.op_start_date AND A.start_date <= P.op_end_date"] if check_op else []

        def bounds(window: Window, index: str, event: str) -> None:
            for side, operator in ((window.start, ">="), (window.end, "<=")):
                if side.days is not None:
                    limit = shift(index, side.coeff * side.days)
                elif check_op:
                    limit = "P.op_start_date" if side.coeff == -1 else "P.op_end_date"
                else:
                    continue
                clauses.append(f"{event} {operator} {limit}")

        start = item.start_window
        bounds(start, "P.end_date" if start.use_index_end else "P.start_date",
               "A.end_date" if start.use_event_end else "A.start_date")  # fmt: skip
        end = item.end_window
        if end is not None:
            # Circe: an end window compares the record's END date unless told otherwise
            bounds(end, "P.end_date" if end.use_index_end else "P.start_date",
                   "A.start_date" if end.use_event_end is False else "A.end_date")  # fmt: skip
        if item.restrict_visit:
            clauses.append("A.visit_occurrence_id = P.visit_occurrence_id")
        return clauses

    def correlated_query(self, item: CorrelatedCriteria, event_table: str, index: int, where: str) -> str:
        """Events of ``event_table`` with the required number of correlated records (index_id, person, event)."""
        if item.criteria is None:
            raise UnsupportedConstruct(f"{where}.criteria: a correlated criterion without criteria cannot be compiled")
        occurrence = item.occurrence
        count_expression = "cc.event_id"
        if occurrence.is_distinct:
            column = COUNT_COLUMNS[occurrence.count_column or "DOMAIN_CONCEPT"].replace("C.", "A.")
            count_expression = "DISTINCT cc.count_value"
        else:
            column = "A.event_id"
        criteria = self.share(self.criteria_events(item.criteria, f"{where}.criteria"), "criteria")
        windowed = (
            f"SELECT P.person_id, P.event_id, {column} AS count_value FROM {event_table} P"
            f" JOIN {criteria} A ON A.person_id = P.person_id AND " + " AND ".join(self.window_clauses(item) or ["1=1"])
        )
        operator = {0: "=", 1: "<=", 2: ">="}[occurrence.type]
        having = f"HAVING COUNT({count_expression}) {operator} {int(occurrence.count)}"
        if occurrence.type == 1 or occurrence.count == 0:
            return (
                f"SELECT {index} AS index_id, p.person_id, p.event_id FROM {event_table} p"
                f" LEFT JOIN ({windowed}) cc ON p.person_id = cc.person_id AND p.event_id = cc.event_id"
                f" GROUP BY p.person_id, p.event_id {having}"
            )
        return (
            f"SELECT {index} AS index_id, cc.person_id, cc.event_id FROM ({windowed}) cc"
            f" GROUP BY cc.person_id, cc.event_id {having}"
        )

    def demographic_query(self, item: DemographicCriteria, event_table: str, index: int, where: str) -> str:
        """Events whose person matches demographic conditions at the index event."""
        clauses: list[str] = []
        if item.age is not None:
            clauses.append(
                numeric_clause("EXTRACT(YEAR FROM E.start_date) - P.year_of_birth", item.age, f"{where}.age")
            )
        for name, column in (("gender", "gender"), ("race", "race"), ("ethnicity", "ethnicity")):
            concepts = getattr(item, name)
            if concepts:
                clauses.append(in_concepts(f"P.{column}_concept_id", (c.concept_id for c in concepts)))
            selection = getattr(item, f"{name}_cs")
            if selection is not None:
                clauses.append(selection_clause(f"P.{column}_concept_id", selection, "codesets"))
        if item.occurrence_start_date is not None:
            clauses.append(date_clause("E.start_date", item.occurrence_start_date, f"{where}.occurrence_start_date"))
        if item.occurrence_end_date is not None:
            clauses.append(date_clause("E.end_date", item.occurrence_end_date, f"{where}.occurrence_end_date"))
        return (
            f"SELECT {index} AS index_id, E.person_id, E.event_id FROM {event_table} E"
            " JOIN person P ON P.person_id = E.person_id"
            + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
            + " GROUP BY E.person_id, E.event_id"
        )

    def group_query(self, group: CriteriaGroup, event_table: str, index: int, where: str) -> str:
        """Events of ``event_table`` satisfying a criteria group (index_id, person_id, event_id)."""
        if group.is_empty():
            return f"SELECT {index} AS index_id, person_id, event_id FROM {event_table}"
        queries: list[str] = []
        for i, item in enumerate(group.criteria_list):
            queries.append(self.correlated_query(item, event_table, len(queries), f"{where}.criteria_list[{i}]"))
        for i, demographic in enumerate(group.demographic_criteria_list):
            queries.append(
                self.demographic_query(
                    demographic, event_table, len(queries), f"{where}.demographic_criteria_list[{i}]"
                )
            )
        for i, sub in enumerate(group.groups):
            queries.append(self.group_query(sub, event_table, len(queries), f"{where}.groups[{i}]"))
        join = "INNER"
        if group.type == "ALL":
            having = f"= {len(queries)}"
        elif group.type == "ANY":
            having = "> 0"
        else:
            if group.count is None:
                raise UnsupportedConstruct(f"{where}: group of type {group.type} has no Count")
            having = f"{'>=' if group.type == 'AT_LEAST' else '<='} {int(group.count)}"
            if group.type == "AT_MOST" or group.count == 0:
                join = "LEFT"
        union = " UNION ALL ".join(queries)
        return (
            f"SELECT {index} AS index_id, person_id, event_id FROM (SELECT E.person_id, E.event_id"
            f" FROM {event_table} E {join} JOIN ({union}) CQ ON E.person_id = CQ.person_id AND E.event_id = CQ.event_id"
            f" GROUP BY E.person_id, E.event_id HAVING COUNT(CQ.index_id) {having}) G"
        )

    # -- pipeline -----------------------------------------------------------------------------
    def primary_events(self) -> str:
        """Entry events in an observation period with the required prior/post observation, limited per person."""
        primary = self.definition.primary_criteria
        if not primary.criteria_list:  # a draft: no entry event, an empty cohort (lint says so)
            return (
                "SELECT CAST(NULL AS BIGINT) AS event_id, CAST(NULL AS BIGINT) AS person_id, CAST(NULL AS DATE)"
                " AS start_date, CAST(NULL AS DATE) AS end_date, CAST(NULL AS DATE) AS op_start_date,"
                " CAST(NULL AS DATE) AS op_end_date, CAST(NULL AS BIGINT) AS visit_occurrence_id WHERE 1 = 0"
            )
        union = " UNION ALL ".join(
            f"SELECT person_id, event_id, start_date, end_date, visit_occurrence_id, sort_date, {i} AS criteria_index"
            f" FROM ({self.criteria_events(node, f'$.primary_criteria.criteria_list[{i}]')}) E{i}"
            for i, node in enumerate(primary.criteria_list)
        )
        window = primary.observation_window
        order = "DESC" if primary.primary_criteria_limit.kind == "last" else "ASC"
        limit = "" if primary.primary_criteria_limit.kind == "all" else " WHERE P.ordinal = 1"
        return (
            "SELECT CAST(P.ordinal AS BIGINT) AS event_id, P.person_id, P.start_date, P.end_date, P.op_start_date,"
            " P.op_end_date, P.visit_occurrence_id FROM (SELECT E.person_id, E.start_date, E.end_date,"
            f" ROW_NUMBER() OVER (PARTITION BY E.person_id ORDER BY E.sort_date {order}, E.event_id, E.criteria_index,"
            " E.end_date) AS ordinal, OP.observation_period_start_date AS op_start_date,"
            " OP.observation_period_end_date AS op_end_date, E.visit_occurrence_id"
            f" FROM ({union}) E JOIN observation_period OP ON E.person_id = OP.person_id"
            " AND E.start_date >= OP.observation_period_start_date AND E.start_date <= OP.observation_period_end_date"
            f" WHERE {shift('OP.observation_period_start_date', window.prior_days)} <= E.start_date"
            f" AND {shift('E.start_date', window.post_days)} <= OP.observation_period_end_date) P{limit}"
        )

    def qualified_events(self) -> str:
        """Primary events that satisfy the additional criteria, limited per person (qualified limit)."""
        definition = self.definition
        additional = definition.additional_criteria
        join = ""
        if additional is not None and not additional.is_empty():
            group = self.group_query(additional, "primary_events", 0, "$.additional_criteria")
            join = f" JOIN ({group}) AC ON AC.person_id = pe.person_id AND AC.event_id = pe.event_id"
        columns = "pe.event_id, pe.person_id, pe.start_date, pe.end_date, pe.op_start_date, pe.op_end_date"
        limited = additional is not None and definition.qualified_limit.kind != "all"
        if not limited or self.one_event_per_person("primary_events"):
            # no qualified limit, or the primary limit already left one event per person: no window
            return f"SELECT {columns}, pe.visit_occurrence_id FROM primary_events pe{join}"
        order = "DESC" if definition.qualified_limit.kind == "last" else "ASC"
        return (
            "SELECT event_id, person_id, start_date, end_date, op_start_date, op_end_date, visit_occurrence_id FROM"
            f" (SELECT {columns}, pe.visit_occurrence_id, ROW_NUMBER() OVER (PARTITION BY pe.person_id"
            f" ORDER BY pe.start_date {order}, pe.event_id) AS ordinal FROM primary_events pe{join}) QE"
            " WHERE QE.ordinal = 1"
        )

    def inclusion_rule_query(self, rule_index: int) -> str:
        """Qualified events that satisfy inclusion rule ``rule_index`` (inclusion_rule_id, person_id, event_id)."""
        rule = self.definition.inclusion_rules[rule_index]
        group = self.group_query(rule.expression, "qualified_events", 0, f"$.inclusion_rules[{rule_index}].expression")
        return (
            f"SELECT {rule_index} AS inclusion_rule_id, pe.person_id, pe.event_id FROM qualified_events pe"
            f" JOIN ({group}) AC ON AC.person_id = pe.person_id AND AC.event_id = pe.event_id"
        )

    def inclusion_events(self) -> str:
        """The ``inclusion_events`` step: one row per (rule, qualified event) that satisfies the rule."""
        rules = self.definition.inclusion_rules
        if len(rules) > MAX_INCLUSION_RULES:
            raise UnsupportedConstruct(f"$.inclusion_rules: at most {MAX_INCLUSION_RULES} rules are supported")
        if not rules:
            return (
                "SELECT CAST(NULL AS INTEGER) AS inclusion_rule_id, CAST(NULL AS BIGINT) AS person_id,"
                " CAST(NULL AS BIGINT) AS event_id WHERE 1 = 0"
            )
        return " UNION ALL ".join(self.inclusion_rule_query(i) for i in range(len(rules)))

    @staticmethod
    def qualified_mask() -> str:
        """Every qualified event with the bitmask of the inclusion rules it satisfies (cached for what-if)."""
        return (
            "SELECT Q.event_id, Q.person_id, Q.start_date, Q.end_date, Q.op_start_date, Q.op_end_date,"
            " CAST(COALESCE(SUM(CAST(1 AS BIGINT) << I.inclusion_rule_id), 0) AS BIGINT) AS inclusion_rule_mask"
            " FROM qualified_events Q LEFT JOIN inclusion_events I ON I.person_id = Q.person_id"
            " AND I.event_id = Q.event_id GROUP BY Q.event_id, Q.person_id, Q.start_date, Q.end_date,"
            " Q.op_start_date, Q.op_end_date"
        )

    def one_event_per_person(self, step: str) -> bool:
        """Whether ``step`` (primary_events, qualified_events or included_events) has one event per person at most.

        True when a first/last limit was applied at or before that step: the primary limit (its
        ``ROW_NUMBER() ... = 1`` keeps one event per person), the qualified limit (applied when there are
        additional criteria) or, for the included events, the expression limit. Later steps then skip
        the per-person windows that could not change anything (limits, era collapse).
        """
        definition = self.definition
        one = definition.primary_criteria.primary_criteria_limit.kind != "all"
        if step == "primary_events":
            return one
        one = one or (definition.additional_criteria is not None and definition.qualified_limit.kind != "all")
        if step == "included_events":
            one = one or definition.expression_limit.kind != "all"
        return one

    def included_events(self, required_mask: int | None = None) -> str:
        """Qualified events with all (or ``required_mask``) rule bits set, limited per person (expression limit)."""
        definition = self.definition
        mask = (1 << len(definition.inclusion_rules)) - 1 if required_mask is None else required_mask
        if definition.expression_limit.kind == "all" or self.one_event_per_person("qualified_events"):
            return (  # no limit to apply, or already one event per person
                "SELECT M.event_id, M.person_id, M.start_date, M.end_date, M.op_start_date, M.op_end_date"
                f" FROM qualified_mask M WHERE (M.inclusion_rule_mask & {mask}) = {mask}"
            )
        order = "DESC" if definition.expression_limit.kind == "last" else "ASC"
        limit = " WHERE R.ordinal = 1"
        return (
            "SELECT event_id, person_id, start_date, end_date, op_start_date, op_end_date FROM"
            " (SELECT M.event_id, M.person_id, M.start_date, M.end_date, M.op_start_date, M.op_end_date,"
            f" ROW_NUMBER() OVER (PARTITION BY M.person_id ORDER BY M.start_date {order}, M.event_id) AS ordinal"
            f" FROM qualified_mask M WHERE (M.inclusion_rule_mask & {mask}) = {mask}) R{limit}"
        )

    def strategy_ends(self) -> str | None:
        """Exit dates from the end strategy (``None`` when there is none)."""
        strategy = self.definition.end_strategy
        if strategy is None:
            return None
        if isinstance(strategy, DateOffset):
            field = "start_date" if strategy.date_field == "StartDate" else "end_date"
            moved = shift(field, strategy.offset)
            return (
                f"SELECT event_id, person_id, CASE WHEN {moved} > op_end_date THEN op_end_date ELSE {moved} END"
                " AS end_date FROM included_events"
            )
        if isinstance(strategy, CustomEra):
            return self._custom_era(strategy)
        raise UnsupportedConstruct(f"$.end_strategy: {type(strategy).__name__} is not supported by the compiler")

    @staticmethod
    def _custom_era(strategy: CustomEra) -> str:
        if strategy.drug_codeset_id is None:
            raise UnsupportedConstruct(
                "$.end_strategy.CustomEra.drug_codeset_id: a custom era needs a drug concept set"
            )
        end = (
            "COALESCE(de.drug_exposure_end_date, de.drug_exposure_start_date + de.days_supply,"
            " de.drug_exposure_start_date + 1)"
            if strategy.days_supply_override is None
            else f"de.drug_exposure_start_date + {int(strategy.days_supply_override)}"
        )
        codeset = int(strategy.drug_codeset_id)
        exposures = " UNION ALL ".join(
            f"SELECT de.person_id, de.drug_exposure_start_date AS start_date, {end} AS end_date FROM drug_exposure de"
            f" WHERE de.person_id IN (SELECT person_id FROM included_events) AND de.{column} IN"
            f" (SELECT concept_id FROM codesets WHERE codeset_id = {codeset})"
            for column in ("drug_concept_id", "drug_source_concept_id")
        )
        gap, offset = int(strategy.gap_days), int(strategy.offset)
        eras = _collapse(
            f"SELECT person_id, start_date, {shift('end_date', gap + offset)} AS end_date FROM ({exposures}) DT", gap
        )
        return (
            f"SELECT et.event_id, et.person_id, ERAS.end_date FROM included_events et JOIN ({eras}) ERAS"
            " ON ERAS.person_id = et.person_id WHERE et.start_date >= ERAS.start_date"
            " AND et.start_date <= ERAS.end_date"
        )

    def cohort_ends(self) -> str:
        """Candidate exit dates: observation end (unless a date offset), end strategy, censoring events."""
        parts: list[str] = []
        if not isinstance(self.definition.end_strategy, DateOffset):
            parts.append("SELECT event_id, person_id, op_end_date AS end_date FROM included_events")
        strategy = self.strategy_ends()
        if strategy is not None:
            parts.append(f"SELECT event_id, person_id, end_date FROM ({strategy}) S")
        for i, node in enumerate(self.definition.censoring_criteria):
            events = self.criteria_events(node, f"$.censoring_criteria[{i}]")
            parts.append(
                "SELECT I.event_id, I.person_id, MIN(C.start_date) AS end_date FROM included_events I"
                f" JOIN ({events}) C ON C.person_id = I.person_id AND C.start_date >= I.start_date"
                " AND C.start_date <= I.op_end_date GROUP BY I.event_id, I.person_id"
            )
        return " UNION ALL ".join(parts)

    @staticmethod
    def cohort_rows() -> str:
        """Each included event with its earliest exit date on or after its start (an aggregate, not a window)."""
        return (
            "SELECT I.person_id, I.start_date, MIN(CE.end_date) AS end_date FROM included_events I"
            " JOIN cohort_ends CE ON I.event_id = CE.event_id AND I.person_id = CE.person_id"
            " AND CE.end_date >= I.start_date GROUP BY I.event_id, I.person_id, I.start_date"
        )

    def final_cohort(self) -> str:
        """Cohort periods merged per person, gaps up to the era pad bridged.

        With one included event per person there is one period per person: nothing to merge.
        """
        if self.one_event_per_person("included_events"):
            return "SELECT person_id, start_date, end_date FROM cohort_rows"
        pad = int(self.definition.collapse_settings.era_pad)
        return _collapse(f"SELECT person_id, start_date, {shift('end_date', pad)} AS end_date FROM cohort_rows", pad)

    def cohort(self, cohort_definition_id: int) -> str:
        """The cohort rows, clipped to the censor window."""
        window = self.definition.censor_window
        start, end, where = "start_date", "end_date", ""
        if window is not None and (window.start_date is not None or window.end_date is not None):
            if window.start_date is not None:
                literal = date_literal(window.start_date)
                start = f"CASE WHEN start_date > {literal} THEN start_date ELSE {literal} END"
            if window.end_date is not None:
                literal = date_literal(window.end_date)
                end = f"CASE WHEN end_date < {literal} THEN end_date ELSE {literal} END"
            where = f" WHERE {start} <= {end}"
        return (
            f"SELECT CAST({int(cohort_definition_id)} AS BIGINT) AS cohort_definition_id, person_id AS subject_id,"
            f" CAST({start} AS DATE) AS cohort_start_date, CAST({end} AS DATE) AS cohort_end_date"
            f" FROM final_cohort{where}"
        )

    def compile(self, cohort_definition_id: int = 1) -> CompiledCohort:
        """All steps of the cohort build."""
        builders: dict[str, Callable[[], str]] = {
            "codesets": self.codesets,
            "primary_events": self.primary_events,
            "qualified_events": self.qualified_events,
            "inclusion_events": self.inclusion_events,
            "qualified_mask": self.qualified_mask,
            "included_events": self.included_events,
            "cohort_ends": self.cohort_ends,
            "cohort_rows": self.cohort_rows,
            "final_cohort": self.final_cohort,
            "cohort": lambda: self.cohort(cohort_definition_id),
        }
        steps: list[Step] = []
        for name, build in builders.items():
            sql = build()
            steps.extend(Step(shared, text) for shared, text in self._pending)  # before their user
            self._pending.clear()
            steps.append(Step(name, sql))
        return CompiledCohort(tuple(steps), cohort_definition_id, len(self.definition.inclusion_rules))


def _collapse(periods: str, pad: int) -> str:
    """Merge overlapping (start_date, end_date) periods per person; ``end_date`` already carries ``pad`` days."""
    return (
        f"SELECT person_id, MIN(start_date) AS start_date, {shift('MAX(end_date)', -pad)} AS end_date FROM"
        " (SELECT person_id, start_date, end_date, SUM(is_start) OVER (PARTITION BY person_id"
        " ORDER BY start_date, is_start DESC ROWS UNBOUNDED PRECEDING) AS group_idx FROM"
        " (SELECT person_id, start_date, end_date, CASE WHEN MAX(end_date) OVER (PARTITION BY person_id"
        " ORDER BY start_date ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) >= start_date THEN 0 ELSE 1 END"
        f" AS is_start FROM ({periods}) CR) ST) GR GROUP BY person_id, group_idx"
    )


def compile_cohort(definition: CohortDefinition, cohort_definition_id: int = 1) -> CompiledCohort:
    """Compile a definition into its SQL steps.

    Raises
    ------
    UnsupportedConstruct
        Naming the node or attribute (and its path in the definition) that cannot be compiled.

    Examples
    --------
    >>> from massalia.health.cohorts.circe import import_circe
    >>> compiled = compile_cohort(import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}'))
    >>> [step.name for step in compiled.steps][:3]
    ['codesets', 'primary_events', 'qualified_events']
    """
    try:
        return CohortCompiler(definition).compile(cohort_definition_id)
    except UnsupportedConstruct as error:
        path, _, message = str(error).partition(": ")
        translated = circe_path(definition, path)
        if translated == path:
            raise
        raise UnsupportedConstruct(f"{path}: {message} (Circe JSON path {translated})") from None


def generated_sql(
    definition: CohortDefinition, dialect: str = HOUSE_DIALECT, *, materialize: bool | None = None, pretty: bool = True
) -> str:
    """The SQL that builds the cohort, to show the user, in ``dialect`` (duckdb, postgres, spark...).

    PostgreSQL gets the materialized form (temporary tables + ANALYZE) unless ``materialize=False``;
    other dialects get one ``WITH`` statement unless ``materialize=True``.
    """
    compiled = compile_cohort(definition)
    if materialize is None:
        materialize = dialect in ("postgres", "postgresql")
    if materialize:
        statements = compiled.materialized(dialect, analyze=dialect in ("postgres", "postgresql"))
        statements.append("SELECT * FROM c_cohort")
        return ";\n".join(statements) + ";\n"
    return compiled.single_statement().sql(dialect=dialect, pretty=pretty) + ";\n"


__all__ = ["CohortCompiler", "CompiledCohort", "Step", "UnsupportedConstruct", "compile_cohort", "generated_sql"]
