"""Small SQL text builders (house dialect: DuckDB's) shared by the cohort compiler modules.

Values reaching SQL are numbers, ISO dates and concept ids from validated nodes; the only free text
(LIKE filters) is escaped here. Dates are shifted with ``date + integer`` which DuckDB, PostgreSQL
and Spark all read as a date (no timestamp creeps in).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import cast

from massalia.health.cohorts.nodes import ConceptSetSelection, DateRange, NumericRange, TextFilter

_OPERATORS = {"lt": "<", "lte": "<=", "eq": "=", "!eq": "<>", "gt": ">", "gte": ">="}


class UnsupportedConstruct(ValueError):  # noqa: N818 (reads as a sentence: "raise UnsupportedConstruct")
    """The compiler met a node or attribute it cannot translate; the message names it and where it is."""


def date_literal(value: dt.date) -> str:
    """A date constant (``DATE '2020-01-31'``)."""
    return f"DATE '{value.isoformat()}'"


def shift(expression: str, days: int) -> str:
    """``expression`` moved by ``days`` days (a date)."""
    if days == 0:
        return expression
    return f"({expression} + {int(days)})"


def number(value: float) -> str:
    """A numeric literal, integral when it can be."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def numeric_clause(expression: str, bounds: NumericRange, where: str) -> str:
    """``expression`` compared with a numeric range (``bt`` bounds inclusive)."""
    missing = bounds.missing_bound()
    if missing:
        raise UnsupportedConstruct(f"{where}: {missing}")
    value, extent = cast(float, bounds.value), cast(float, bounds.extent)  # checked by missing_bound
    if bounds.op.endswith("bt"):
        clause = f"({expression} >= {number(value)} AND {expression} <= {number(extent)})"
        return f"NOT {clause}" if bounds.op.startswith("!") else clause
    return f"{expression} {_OPERATORS[bounds.op]} {number(value)}"


def date_clause(expression: str, bounds: DateRange, where: str) -> str:
    """``expression`` compared with a date range (``bt`` bounds inclusive)."""
    missing = bounds.missing_bound()
    if missing:
        raise UnsupportedConstruct(f"{where}: {missing}")
    value, extent = cast(dt.date, bounds.value), cast(dt.date, bounds.extent)  # checked by missing_bound
    if bounds.op.endswith("bt"):
        clause = f"({expression} >= {date_literal(value)} AND {expression} <= {date_literal(extent)})"
        return f"NOT {clause}" if bounds.op.startswith("!") else clause
    return f"{expression} {_OPERATORS[bounds.op]} {date_literal(value)}"


LIKE_ESCAPE = "!"
"""The LIKE escape character: not a backslash, which string literals of some dialects read themselves."""


def like_literal(text: str) -> str:
    """``text`` as the body of a LIKE pattern that matches it literally (``%``, ``_`` and ``!`` escaped).

    Examples
    --------
    >>> like_literal("50%_of it's")
    "50!%!_of it''s"
    """
    escaped = text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2).replace("%", f"{LIKE_ESCAPE}%").replace("_", f"{LIKE_ESCAPE}_")
    return escaped.replace("'", "''")


def text_clause(expression: str, text: TextFilter, where: str) -> str:
    """``expression`` LIKE a pattern (starts with / contains / ends with), possibly negated.

    The text is matched literally: its ``%`` and ``_`` are not wildcards (a filter "contains 5%" must not
    match every value holding a 5).
    """
    if text.text is None:
        raise UnsupportedConstruct(f"{where}: text filter with op {text.op!r} has no Text")
    prefix = "%" if text.op.endswith(("endsWith", "contains")) else ""
    suffix = "%" if text.op.endswith(("startsWith", "contains")) else ""
    negation = "NOT " if text.op.startswith("!") else ""
    return f"{expression} {negation}LIKE '{prefix}{like_literal(text.text)}{suffix}' ESCAPE '{LIKE_ESCAPE}'"


def id_list(ids: Iterable[int]) -> str:
    """Comma-separated integer ids (never empty: an empty list matches nothing)."""
    values = sorted({int(i) for i in ids})
    return ", ".join(str(v) for v in values) if values else "NULL"


def in_concepts(column: str, ids: Iterable[int], *, exclude: bool = False) -> str:
    """``column`` (NOT) IN a list of concept ids."""
    return f"{column} {'NOT ' if exclude else ''}IN ({id_list(ids)})"


def in_codeset(column: str, codeset_id: int, codesets: str, *, exclude: bool = False) -> str:
    """``column`` (NOT) IN the concepts of a codeset."""
    negation = "NOT " if exclude else ""
    return f"{column} {negation}IN (SELECT concept_id FROM {codesets} WHERE codeset_id = {int(codeset_id)})"


def selection_clause(column: str, selection: ConceptSetSelection, codesets: str) -> str:
    """A concept-set selection: in/not in a codeset, or (no codeset) NOT NULL / NULL as in Circe."""
    if selection.codeset_id is None:
        return f"{column} IS {'' if selection.is_exclusion else 'NOT '}NULL"
    return in_codeset(column, selection.codeset_id, codesets, exclude=selection.is_exclusion)
