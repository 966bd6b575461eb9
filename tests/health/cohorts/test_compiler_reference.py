"""The compiled SQL gives the same cohort as a straightforward Python evaluation of the same definition.

Random small OMOP data and random definitions (condition/drug entry events, observation window,
first/last/all limits, inclusion rules with windowed occurrence counts, date-offset exits, era pad)
are drawn by Hypothesis; the reference below re-states Circe's semantics record by record.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

import pytest
from cohort_omop import concept_rows, day, omop_tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.cohorts import CohortDefinition, UnsupportedConstruct, compile_cohort, import_circe, to_circe
from massalia.health.cohorts.criteria import (
    ConditionOccurrence,
    CorrelatedCriteria,
    CriteriaGroup,
    Criterion,
    DrugExposure,
)
from massalia.health.cohorts.definition import DateOffset, InclusionRule, PrimaryCriteria
from massalia.health.cohorts.domains import DomainCompiler
from massalia.health.cohorts.nodes import (
    CollapseSettings,
    Concept,
    ConceptSet,
    ConceptSetExpression,
    ConceptSetItem,
    ObservationWindow,
    Occurrence,
    ResultLimit,
    Window,
    WindowBound,
)

ANCESTRY = {1: [1, 2], 3: [3]}
CODESETS = {0: {1, 2}, 1: {3}}
CONCEPT_SETS = [
    ConceptSet(
        id=0,
        name="one and descendants",
        expression=ConceptSetExpression(
            items=[ConceptSetItem(concept=Concept(concept_id=1), include_descendants=True)]
        ),
    ),
    ConceptSet(
        id=1, name="three", expression=ConceptSetExpression(items=[ConceptSetItem(concept=Concept(concept_id=3))])
    ),
]
ONE = dt.timedelta(days=1)


@dataclass(frozen=True)
class Event:
    person_id: int
    event_id: int
    start: dt.date
    end: dt.date


# -- data ----------------------------------------------------------------------------------------
@st.composite
def omop_data(draw: st.DrawFn) -> dict[str, list[dict[str, Any]]]:
    # A seeded generator gives rich data in every example (Hypothesis alone favours tiny ones); dates are
    # multiples of 5 days so that window bounds are hit exactly and inclusive/exclusive mistakes show.
    rng = draw(st.randoms(use_true_random=False))
    persons = rng.randint(1, 5)
    rows: dict[str, list[dict[str, Any]]] = {"person": [], "observation_period": [], "condition_occurrence": [],
                                             "drug_exposure": []}  # fmt: skip
    for pid in range(1, persons + 1):
        rows["person"].append({"person_id": pid, "gender_concept_id": 8532, "year_of_birth": 1970,
                               "race_concept_id": 0, "ethnicity_concept_id": 0})  # fmt: skip
        start = 5 * rng.randint(0, 2)
        rows["observation_period"].append({"observation_period_id": pid, "person_id": pid,
                                           "observation_period_start_date": day(start),
                                           "observation_period_end_date": day(start + 5 * rng.randint(4, 10)),
                                           "period_type_concept_id": 0})  # fmt: skip
    for table, prefix in (("condition_occurrence", "condition"), ("drug_exposure", "drug")):
        for event_id in range(1, rng.randint(2, 14) + 1):
            start = 5 * rng.randint(0, 10)
            length = rng.choice([None, 0, 5])
            row = {f"{table}_id": event_id, "person_id": rng.randint(1, persons),
                   f"{prefix}_concept_id": rng.choice([1, 2, 3]), f"{prefix}_type_concept_id": 0}  # fmt: skip
            if table == "condition_occurrence":
                row |= {"condition_start_date": day(start),
                        "condition_end_date": None if length is None else day(start + length)}  # fmt: skip
            else:
                row |= {"drug_exposure_start_date": day(start),
                        "drug_exposure_end_date": None if length is None else day(start + length),
                        "days_supply": rng.choice([None, 1, 5])}  # fmt: skip
            rows[table].append(row)
    return rows


# -- definitions ---------------------------------------------------------------------------------
def criterion(kind: str, codeset: int, first: bool) -> ConditionOccurrence | DrugExposure:
    cls = ConditionOccurrence if kind == "condition" else DrugExposure
    return cls(codeset_id=codeset, first=first or None)


bound = st.builds(WindowBound, days=st.none() | st.sampled_from([0, 5, 10]), coeff=st.sampled_from([-1, 1]))
correlated = st.builds(
    CorrelatedCriteria,
    criteria=st.builds(criterion, st.sampled_from(["condition", "drug"]), st.sampled_from([0, 1]), st.booleans()),
    start_window=st.builds(Window, start=bound, end=bound, use_event_end=st.booleans(), use_index_end=st.booleans()),
    end_window=st.none()
    | st.builds(Window, start=bound, end=bound, use_event_end=st.none() | st.booleans(), use_index_end=st.booleans()),
    ignore_observation_period=st.booleans(),
    occurrence=st.builds(Occurrence, type=st.sampled_from([0, 1, 2]), count=st.integers(0, 2)),
)
limits = st.sampled_from(["First", "Last", "All"])
groups = st.builds(
    CriteriaGroup,
    type=st.sampled_from(["ALL", "ANY", "AT_LEAST", "AT_MOST"]),
    count=st.integers(0, 2),
    criteria_list=st.lists(correlated, min_size=1, max_size=2),
)
any_criterion = st.builds(criterion, st.sampled_from(["condition", "drug"]), st.sampled_from([0, 1]), st.booleans())
definitions = st.builds(
    CohortDefinition,
    concept_sets=st.just(CONCEPT_SETS),
    primary_criteria=st.builds(
        PrimaryCriteria,
        criteria_list=st.lists(
            st.builds(criterion, st.sampled_from(["condition", "drug"]), st.sampled_from([0, 1]), st.booleans()),
            min_size=1,
            max_size=1,
        ),
        observation_window=st.builds(
            ObservationWindow, prior_days=st.sampled_from([0, 10]), post_days=st.sampled_from([0, 10])
        ),
        primary_criteria_limit=st.builds(ResultLimit, type=limits),
    ),
    inclusion_rules=st.lists(
        st.builds(
            InclusionRule,
            name=st.just("r"),
            expression=groups,
        ),
        max_size=2,
    ),
    additional_criteria=st.sampled_from([False, False, True]).flatmap(lambda on: groups if on else st.none()),
    qualified_limit=st.builds(ResultLimit, type=limits),
    censoring_criteria=st.lists(any_criterion, max_size=1),
    expression_limit=st.builds(ResultLimit, type=limits),
    end_strategy=st.none()
    | st.builds(DateOffset, date_field=st.sampled_from(["StartDate", "EndDate"]), offset=st.integers(0, 30)),
    collapse_settings=st.builds(CollapseSettings, era_pad=st.sampled_from([0, 5, 30])),
)


# -- reference evaluation ------------------------------------------------------------------------
def events_of(node: ConditionOccurrence | DrugExposure, rows: dict[str, list[dict[str, Any]]]) -> list[Event]:
    if isinstance(node, ConditionOccurrence):
        table, prefix, start_key = "condition_occurrence", "condition", "condition_start_date"
    else:
        table, prefix, start_key = "drug_exposure", "drug", "drug_exposure_start_date"
    found = []
    for row in rows[table]:
        if row[f"{prefix}_concept_id"] not in CODESETS[node.codeset_id or 0]:
            continue
        start = row[start_key]
        if table == "condition_occurrence":
            end = row["condition_end_date"] or start + ONE
        else:
            end = row["drug_exposure_end_date"] or (
                start + dt.timedelta(days=row["days_supply"]) if row["days_supply"] is not None else start + ONE
            )
        found.append(Event(row["person_id"], row[f"{table}_id"], start, end))
    if node.first:
        firsts: dict[int, Event] = {}
        for event in sorted(found, key=lambda e: (e.start, e.event_id)):
            firsts.setdefault(event.person_id, event)
        found = list(firsts.values())
    return found


def limit(
    events: list[tuple[Event, Any]], kind: str, ordinal: dict[tuple[int, int], int] | None = None
) -> list[tuple[Event, Any]]:
    """Keep the first/last event per person; ties on the date go to the lower id (or primary ordinal)."""
    if kind == "all":
        return events

    def tie(item: tuple[Event, Any]) -> int:
        event = item[0]
        return ordinal[(event.person_id, event.event_id)] if ordinal is not None else event.event_id

    chosen: dict[int, tuple[Event, Any]] = {}
    ordered = (
        sorted(events, key=lambda x: (-x[0].start.toordinal(), tie(x)))
        if kind == "last"
        else sorted(events, key=lambda x: (x[0].start, tie(x)))
    )
    for item in ordered:
        chosen.setdefault(item[0].person_id, item)
    return list(chosen.values())


def in_window(item: CorrelatedCriteria, index: Event, op: tuple[dt.date, dt.date], record: Event) -> bool:
    check_op = not item.ignore_observation_period
    if check_op and not (op[0] <= record.start <= op[1]):
        return False
    windows = [(item.start_window, record.end if item.start_window.use_event_end else record.start)]
    if item.end_window is not None:  # an end window looks at the record's end unless told otherwise
        windows.append((item.end_window, record.start if item.end_window.use_event_end is False else record.end))
    for window, value in windows:
        anchor = index.end if window.use_index_end else index.start
        for side, is_low in ((window.start, True), (window.end, False)):
            if side.days is not None:
                limit_date = anchor + dt.timedelta(days=side.coeff * side.days)
            elif check_op:
                limit_date = op[0] if side.coeff == -1 else op[1]
            else:
                continue
            if (is_low and value < limit_date) or (not is_low and value > limit_date):
                return False
    return True


def group_passes(group: CriteriaGroup, event: Event, op: tuple, rows: dict[str, list[dict[str, Any]]]) -> bool:
    satisfied = 0
    for item in group.criteria_list:
        count = sum(
            in_window(item, event, op, r) for r in events_of(item.criteria, rows) if r.person_id == event.person_id
        )
        wanted = item.occurrence.count
        satisfied += {0: count == wanted, 1: count <= wanted, 2: count >= wanted}[item.occurrence.type]
    return {
        "ALL": satisfied == len(group.criteria_list),
        "ANY": satisfied > 0,
        "AT_LEAST": satisfied >= (group.count or 0),
        "AT_MOST": satisfied <= (group.count or 0),
    }[group.type]


def reference_cohort(
    definition: CohortDefinition, rows: dict[str, list[dict[str, Any]]], masks: list[tuple] | None = None
) -> set[tuple]:
    """The cohort rows; ``masks`` receives (person, start, end, rule bitmask) of every qualified event."""
    masks = [] if masks is None else masks
    primary = definition.primary_criteria
    periods = {
        r["person_id"]: (r["observation_period_start_date"], r["observation_period_end_date"])
        for r in rows["observation_period"]
    }
    window = primary.observation_window
    entries = []
    for event in events_of(primary.criteria_list[0], rows):
        op = periods.get(event.person_id)
        if (
            op
            and op[0] <= event.start <= op[1]
            and op[0] + dt.timedelta(days=window.prior_days) <= event.start
            and event.start + dt.timedelta(days=window.post_days) <= op[1]
        ):
            entries.append((event, op))
    primary_events = limit(entries, primary.primary_criteria_limit.kind)
    # event ids of later steps are the primary ordinals: order by start (newest first for "last"), then id
    ordinal = {
        (e.person_id, e.event_id): rank
        for rank, (e, _) in enumerate(
            sorted(primary_events, key=lambda x: (x[0].start, x[0].event_id))
            if primary.primary_criteria_limit.kind != "last"
            else sorted(primary_events, key=lambda x: (-x[0].start.toordinal(), x[0].event_id))
        )
    }
    additional = definition.additional_criteria
    qualified = [(e, op) for e, op in primary_events if additional is None or group_passes(additional, e, op, rows)]
    if additional is not None:
        qualified = limit(qualified, definition.qualified_limit.kind, ordinal)
    included = []
    for event, op in qualified:
        mask = 0
        for bit, rule in enumerate(definition.inclusion_rules):
            mask |= group_passes(rule.expression, event, op, rows) << bit
        masks.append((event.person_id, event.start, event.end, mask))
        if mask == (1 << len(definition.inclusion_rules)) - 1:
            included.append((event, op))
    included = limit(included, definition.expression_limit.kind, ordinal)
    rows_out = []
    for event, op in included:
        candidates = []
        strategy = definition.end_strategy
        if strategy is None:
            candidates.append(op[1])
        else:
            base = event.start if strategy.date_field == "StartDate" else event.end
            candidates.append(min(base + dt.timedelta(days=strategy.offset), op[1]))
        for censor in definition.censoring_criteria:
            starts = [r.start for r in events_of(censor, rows) if r.person_id == event.person_id]
            starts = [start for start in starts if event.start <= start <= op[1]]
            if starts:
                candidates.append(min(starts))
        candidates = [c for c in candidates if c >= event.start]
        if candidates:
            rows_out.append((event.person_id, event.start, min(candidates)))
    pad = dt.timedelta(days=definition.collapse_settings.era_pad)
    result = set()
    for person in {r[0] for r in rows_out}:
        spans = sorted((s, e + pad) for p, s, e in rows_out if p == person)
        current = list(spans[0])
        for start, end in spans[1:]:
            if start <= current[1]:
                current[1] = max(current[1], end)
            else:
                result.add((person, current[0], current[1] - pad))
                current = [start, end]
        result.add((person, current[0], current[1] - pad))
    return result


ENGINE = DuckDBEngine()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=definitions, data=omop_data())
def test_compiled_cohort_equals_reference_evaluation(definition: CohortDefinition, data: dict[str, list]) -> None:
    rows = data | concept_rows(ANCESTRY)
    for name, table in omop_tables(rows).items():
        ENGINE.connection.register(name, table)  # a view per example: fast, and the SQL cannot tell
    compiled = compile_cohort(definition)
    result = ENGINE.query(compiled.single_statement()).to_pylist()
    got = {(r["subject_id"], r["cohort_start_date"], r["cohort_end_date"]) for r in result}
    assert len(got) == len(result)
    masks: list[tuple] = []
    assert got == reference_cohort(definition, data, masks)
    qualified = ENGINE.query(compiled.single_statement(until="qualified_mask")).to_pylist()
    got_masks = sorted((r["person_id"], r["start_date"], r["end_date"], r["inclusion_rule_mask"]) for r in qualified)
    assert got_masks == sorted(masks)


@given(definition=definitions)
def test_random_definitions_round_trip_through_both_json_forms(definition: CohortDefinition) -> None:
    assert CohortDefinition.from_json(definition.to_json()) == definition
    assert import_circe(json.dumps(to_circe(definition)), lenient=False) == definition


def test_compiler_refuses_an_unknown_node_by_name() -> None:
    class TumourStage(Criterion):
        kind: Literal["TumourStage"] = "TumourStage"

    with pytest.raises(UnsupportedConstruct, match=r"\$\.x: criteria type TumourStage is not supported"):
        DomainCompiler("codesets").events(TumourStage(), "$.x")
