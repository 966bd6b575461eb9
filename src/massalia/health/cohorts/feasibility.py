"""Feasibility limits of cohort definitions counted without an approved project.

A feasibility count (noisy, budgeted) must not be usable to single a person out, so a definition
counted below an approved project's scope may not:

- filter on an identifier of a record that points to one person (``unique_device_id``, ``source_id``,
  ``lot_number``): a person is then named, not described;
- compare a date more finely than :data:`DATE_GRAIN` (a month): ``eq`` / ``!eq`` are refused, a bound
  must fall on the first day of a month (``gte``, ``lt``, the start of ``bt``) or on its last day
  (``lte``, ``gt``, the end of ``bt``), so a binary search on an exact date is impossible;
- use text patterns longer than :data:`MAX_TEXT` characters.

Members of an approved project are not limited (their counts are exact inside the project's scope).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from massalia.health.cohorts.definition import CohortDefinition
from massalia.health.cohorts.nodes import DateRange, Period, TextFilter

DATE_GRAIN = "month"
"""The finest date grain of a feasibility definition (bounds on month boundaries)."""
IDENTIFIER_FIELDS = frozenset({"unique_device_id", "source_id", "lot_number"})
"""Text filters on these fields name one record, hence one person."""
MAX_TEXT = 64
MAX_PROBLEMS = 20


def _month_bounds(value: dt.date) -> tuple[bool, bool]:
    """Whether ``value`` is the first / the last day of its month."""
    following = dt.date(value.year + value.month // 12, value.month % 12 + 1, 1)
    return value.day == 1, value == following - dt.timedelta(days=1)


def _walk(node: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """Every (path, field name, value) of a definition's tree."""
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            if value is None:
                continue
            here = f"{path}.{name}"
            yield here, name, value
            yield from _walk(value, here)
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            yield from _walk(item, f"{path}[{index}]")


def _date_range_problem(where: str, value: DateRange) -> str | None:
    if value.value is None:
        return None
    if value.op in ("eq", "!eq"):
        return f"{where}: exact dates are not allowed (compare at the {DATE_GRAIN} grain)"
    first, last = _month_bounds(value.value)
    if value.op in ("gte", "lt") and not first:
        return f"{where}: {value.op} {value.value} must be the first day of a {DATE_GRAIN}"
    if value.op in ("lte", "gt") and not last:
        return f"{where}: {value.op} {value.value} must be the last day of a {DATE_GRAIN}"
    if value.op in ("bt", "!bt"):
        end_ok = value.extent is None or _month_bounds(value.extent)[1]
        if not first or not end_ok:
            return f"{where}: between must run from the first day of a {DATE_GRAIN} to the last day of one"
    return None


def _period_problem(where: str, value: Period) -> str | None:
    if value.start_date is not None and not _month_bounds(value.start_date)[0]:
        return f"{where}: the period must start on the first day of a {DATE_GRAIN}"
    if value.end_date is not None and not _month_bounds(value.end_date)[1]:
        return f"{where}: the period must end on the last day of a {DATE_GRAIN}"
    return None


def check_feasible_definition(definition: CohortDefinition) -> list[str]:
    """What keeps ``definition`` from being counted without an approved project (empty: nothing).

    Examples
    --------
    >>> from massalia.health.cohorts import import_circe
    >>> check_feasible_definition(import_circe('{"PrimaryCriteria": {"CriteriaList": [{"Death": {}}]}}'))
    []
    """
    problems: list[str] = []
    for where, name, value in _walk(definition, "$"):
        problem = None
        if isinstance(value, DateRange):
            problem = _date_range_problem(where, value)
        elif isinstance(value, Period):
            problem = _period_problem(where, value)
        elif isinstance(value, TextFilter):
            if name in IDENTIFIER_FIELDS:
                problem = f"{where}: {name} identifies a record (and its person); not allowed for feasibility"
            elif value.text is not None and len(value.text) > MAX_TEXT:
                problem = f"{where}: text longer than {MAX_TEXT} characters"
        if problem:
            problems.append(problem)
            if len(problems) >= MAX_PROBLEMS:
                break
    return problems
