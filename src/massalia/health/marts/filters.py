"""Fast counts over ``mart_patient`` for the portal: a typed filter spec, validated, compiled by SQLGlot.

A filter is an AND of clauses (``variable``, ``op``, ``value``) plus optional OR groups (each group is
true when one of its clauses is), optionally restricted to a generated cohort (``cohort`` table,
``cohort_definition_id``). Every clause is checked against the catalogue: an unknown variable, an
operator the variable's type does not take, a value of the wrong type or outside a category is refused
with a :class:`FilterError` naming the clause. Identifiers come only from the catalogue and values
become SQLGlot literals, so no text of the request is ever pasted into SQL.

Counts always go through small-cell suppression (``suppress_count`` / ``suppress_small_cells``):
raw counts need ``allowed_raw=True``, which the governance layer decides.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp

from massalia.engine import Engine
from massalia.health.cohorts.suppression import DEFAULT_THRESHOLD, suppress_count, suppress_small_cells
from massalia.health.marts.builder import MART_TABLE
from massalia.health.marts.catalogue import Catalogue, Variable, VariableType, load_catalogue

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "is_not_null"]
Scalar = bool | int | float | str | dt.date
MAX_TEXT = 200
MAX_VALUES = 500

_ORDERED = {"<", "<=", ">", ">=", "between"}
_OPERATORS: dict[VariableType, frozenset[str]] = {
    VariableType.INTEGER: frozenset({"=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between"}),
    VariableType.NUMBER: frozenset({"=", "!=", "<", "<=", ">", ">=", "between"}),
    VariableType.DATE: frozenset({"=", "!=", "<", "<=", ">", ">=", "between"}),
    VariableType.TEXT: frozenset({"=", "!=", "in", "not_in"}),
    VariableType.CATEGORY: frozenset({"=", "!=", "in", "not_in"}),
    VariableType.BOOLEAN: frozenset({"=", "!="}),
}
_NULL_OPS = frozenset({"is_null", "is_not_null"})
_CLAUSE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(<=|>=|!=|=|<|>|\bnot_in\b|\bin\b|\bbetween\b|\bis_not_null\b|\bis_null\b)\s*(.*)$",
    re.S,
)
_COMPARISONS: dict[str, type[exp.Binary]] = {
    "=": exp.EQ,
    "!=": exp.NEQ,
    "<": exp.LT,
    "<=": exp.LTE,
    ">": exp.GT,
    ">=": exp.GTE,
}


class FilterError(ValueError):
    """A filter does not fit the catalogue; the message names the clause and what is wrong."""


class Clause(BaseModel):
    """One condition on one mart variable.

    ``value`` is one value for comparisons, a list for ``in`` / ``not_in``, two values for ``between``
    (inclusive), and absent for ``is_null`` / ``is_not_null``. Strings are accepted for numbers,
    dates (ISO ``YYYY-MM-DD``) and booleans (``true`` / ``false``), as typed on a command line.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    variable: str = Field(max_length=128)
    op: Operator
    value: Scalar | list[Scalar] | None = None

    def __str__(self) -> str:
        shown = "" if self.value is None else f" {self.value!r}"
        return f"{self.variable} {self.op}{shown}"


class FilterSpec(BaseModel):
    """A whole filter: ``all`` clauses AND-ed, each group of ``any_of`` OR-ed inside, and a cohort."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    all: list[Clause] = Field(default_factory=list)
    any_of: list[list[Clause]] = Field(default_factory=list)
    cohort_definition_id: int | None = None


@dataclass(frozen=True)
class CountResult:
    """A suppressed count: ``count`` is ``None`` when masked (below the threshold)."""

    count: int | None
    threshold: int
    suppressed: bool


@dataclass(frozen=True)
class Breakdown:
    """Suppressed counts by value of a categorical variable (``None`` key: no value recorded)."""

    variable: str
    cells: dict[str | bool | None, int | None]
    total: int | None
    threshold: int


def parse_clause(text: str) -> Clause:
    """Parse ``'variable op value'`` as typed on a command line.

    Operators: ``= != < <= > >=``, ``in a,b,c``, ``not_in a,b``, ``between low,high``, ``is_null``,
    ``is_not_null``.

    Examples
    --------
    >>> parse_clause("age_at_diagnosis >= 60")
    Clause(variable='age_at_diagnosis', op='>=', value='60')
    >>> parse_clause("primary_site in breast,lung").value
    ['breast', 'lung']
    """
    match = _CLAUSE.match(text)
    if not match:
        raise FilterError(f"cannot read filter {text!r}: write 'variable op value' (e.g. 'age_at_diagnosis >= 60')")
    variable, op, rest = match.group(1), match.group(2), match.group(3).strip()
    if op in _NULL_OPS:
        if rest:
            raise FilterError(f"filter {text!r}: {op} takes no value")
        return Clause(variable=variable, op=op)  # type: ignore[arg-type]
    if not rest:
        raise FilterError(f"filter {text!r}: a value is missing after {op!r}")
    if op in ("in", "not_in", "between"):
        return Clause(variable=variable, op=op, value=[part.strip() for part in rest.split(",")])  # type: ignore[arg-type]
    return Clause(variable=variable, op=op, value=rest)  # type: ignore[arg-type]


def _coerce(variable: Variable, value: object, where: str) -> object:
    """The value as the variable's Python type, or a ``FilterError`` naming ``where``."""
    kind = variable.type
    if value is None:
        raise FilterError(f"{where}: a value is required (use is_null to test for missing values)")
    if kind is VariableType.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise FilterError(f"{where}: {variable.name} is boolean, {value!r} is not true/false")
    if kind is VariableType.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            number: object = value
        elif isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d{1,18}\s*", value):
            number = int(value)
        else:
            raise FilterError(f"{where}: {variable.name} is an integer, {value!r} is not")
        return number
    if kind is VariableType.NUMBER:
        if isinstance(value, int | float) and not isinstance(value, bool):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value)
            except ValueError:
                raise FilterError(f"{where}: {variable.name} is a number, {value!r} is not") from None
        else:
            raise FilterError(f"{where}: {variable.name} is a number, {value!r} is not")
        if not math.isfinite(result):
            raise FilterError(f"{where}: {variable.name} needs a finite number, not {value!r}")
        return result
    if kind is VariableType.DATE:
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError:
                pass
        raise FilterError(f"{where}: {variable.name} is a date, {value!r} is not YYYY-MM-DD")
    if not isinstance(value, str):
        raise FilterError(f"{where}: {variable.name} is {kind.value}, {value!r} is not text")
    if len(value) > MAX_TEXT:
        raise FilterError(f"{where}: value longer than {MAX_TEXT} characters")
    if kind is VariableType.CATEGORY and value not in (variable.values or ()):
        allowed = ", ".join(variable.values or ())
        raise FilterError(f"{where}: {value!r} is not a value of {variable.name} (allowed: {allowed})")
    return value


def _literal(value: object, kind: VariableType) -> exp.Expression:
    if kind is VariableType.BOOLEAN:
        return exp.Boolean(this=bool(value))
    if kind in (VariableType.INTEGER, VariableType.NUMBER):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if kind is VariableType.DATE:
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))  # type: ignore[attr-defined]
    return exp.Literal.string(str(value))


def compile_clause(clause: Clause, catalogue: Catalogue, *, where: str = "clause", table: str = "m") -> exp.Expression:
    """Check ``clause`` against the catalogue and return its SQLGlot condition.

    Examples
    --------
    >>> compile_clause(parse_clause("primary_site in breast,lung"), load_catalogue()).sql("duckdb")
    "m.primary_site IN ('breast', 'lung')"
    """
    label = f"{where} ({clause})"
    try:
        variable = catalogue.variable(clause.variable)
    except KeyError as error:
        raise FilterError(f"{label}: {error.args[0]}") from None
    column = exp.column(variable.name, table=table)
    if clause.op in _NULL_OPS:
        if clause.value is not None:
            raise FilterError(f"{label}: {clause.op} takes no value")
        test = exp.Is(this=column, expression=exp.Null())
        return test if clause.op == "is_null" else exp.Not(this=test)
    if clause.op not in _OPERATORS[variable.type]:
        allowed = ", ".join(sorted(_OPERATORS[variable.type] | _NULL_OPS))
        raise FilterError(f"{label}: {variable.type.value} variable {variable.name} takes {allowed}, not {clause.op}")
    if clause.op in ("in", "not_in", "between"):
        values = clause.value if isinstance(clause.value, list) else None
        if values is None:
            raise FilterError(f"{label}: {clause.op} needs a list of values")
        if clause.op == "between" and len(values) != 2:
            raise FilterError(f"{label}: between needs exactly two values (low, high)")
        if not values or len(values) > MAX_VALUES:
            raise FilterError(f"{label}: {clause.op} needs 1 to {MAX_VALUES} values")
        literals = [_literal(_coerce(variable, value, label), variable.type) for value in values]
        if clause.op == "between":
            return exp.Between(this=column, low=literals[0], high=literals[1])
        condition = exp.In(this=column, expressions=literals)
        return exp.Not(this=condition) if clause.op == "not_in" else condition
    if isinstance(clause.value, list):
        raise FilterError(f"{label}: {clause.op} takes one value, not a list")
    literal = _literal(_coerce(variable, clause.value, label), variable.type)
    return _COMPARISONS[clause.op](this=column, expression=literal)


def compile_filter(spec: FilterSpec, catalogue: Catalogue | None = None, *, table: str = "m") -> exp.Expression | None:
    """The spec's WHERE condition (``None`` when it has no clause); ``FilterError`` naming the clause."""
    catalogue = catalogue or load_catalogue()
    conditions: list[exp.Expression] = [
        compile_clause(clause, catalogue, where=f"clause {index + 1}", table=table)
        for index, clause in enumerate(spec.all)
    ]
    for group_index, group in enumerate(spec.any_of):
        if not group:
            raise FilterError(f"OR group {group_index + 1} is empty")
        options = [
            compile_clause(clause, catalogue, where=f"OR group {group_index + 1}, clause {index + 1}", table=table)
            for index, clause in enumerate(group)
        ]
        conditions.append(exp.paren(exp.or_(*options)) if len(options) > 1 else options[0])
    if spec.cohort_definition_id is not None:
        members = (
            exp.select("subject_id")
            .from_("cohort")
            .where(
                exp.EQ(
                    this=exp.column("cohort_definition_id"),
                    expression=exp.Literal.number(spec.cohort_definition_id),
                )
            )
        )
        conditions.append(exp.In(this=exp.column("person_id", table=table), query=exp.Subquery(this=members)))
    if not conditions:
        return None
    return exp.and_(*conditions) if len(conditions) > 1 else conditions[0]


def _base_query(
    engine: Engine, spec: FilterSpec, catalogue: Catalogue, restrict: exp.Expression | None = None
) -> exp.Select:
    condition = compile_filter(spec, catalogue)
    if restrict is not None:  # a project's row-level scope (massalia.governance.policy), over alias "m"
        condition = exp.and_(condition, restrict) if condition is not None else restrict
    if not engine.table_exists(MART_TABLE):
        raise FilterError(f"the mart is not built on this warehouse: run 'massalia mart build' first ({MART_TABLE})")
    if spec.cohort_definition_id is not None and not engine.table_exists("cohort"):
        raise FilterError("no cohort table: generate the cohort first ('massalia cohort generate')")
    query = exp.select().from_(exp.to_table(MART_TABLE).as_("m"))
    return query.where(condition) if condition is not None else query


def count_persons(
    engine: Engine,
    spec: FilterSpec,
    *,
    catalogue: Catalogue | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    allowed_raw: bool = False,
    restrict: exp.Expression | None = None,
) -> CountResult:
    """Number of persons of the mart matching ``spec`` (and ``restrict``, a row-level scope), small counts masked.

    Examples
    --------
    >>> spec = FilterSpec(all=[parse_clause("primary_site = breast"), parse_clause("age_at_diagnosis < 50")])
    >>> count_persons(engine, spec).count  # doctest: +SKIP
    31
    """
    catalogue = catalogue or load_catalogue()
    query = _base_query(engine, spec, catalogue, restrict).select(exp.Count(this=exp.Star()).as_("n"))
    raw = int(engine.scalar(query) or 0)  # type: ignore[arg-type]
    shown = suppress_count(raw, threshold, allowed_raw=allowed_raw)
    return CountResult(count=shown, threshold=threshold, suppressed=shown is None)


def breakdown(
    engine: Engine,
    spec: FilterSpec,
    by: str,
    *,
    catalogue: Catalogue | None = None,
    threshold: int = DEFAULT_THRESHOLD,
    allowed_raw: bool = False,
    restrict: exp.Expression | None = None,
) -> Breakdown:
    """Counts of the matching persons (and ``restrict``, a row-level scope) by value of the variable ``by``.

    Every value of a category appears (0 when absent); cells are masked with complementary
    suppression so that no small cell can be derived from the total.
    """
    catalogue = catalogue or load_catalogue()
    try:
        variable = catalogue.variable(by)
    except KeyError as error:
        raise FilterError(f"breakdown: {error.args[0]}") from None
    if variable.type not in (VariableType.CATEGORY, VariableType.BOOLEAN):
        raise FilterError(f"breakdown: {by} is {variable.type.value}; break down by a category or boolean variable")
    column = exp.column(variable.name, table="m")
    query = (
        _base_query(engine, spec, catalogue, restrict)
        .select(column.as_("value"), exp.Count(this=exp.Star()).as_("n"))
        .group_by(column)
    )
    rows = engine.query(query).to_pylist()
    keys: Sequence[str | bool] = variable.values or () if variable.type is VariableType.CATEGORY else (True, False)
    raw: dict[str | bool | None, int | None] = dict.fromkeys(keys, 0)
    for row in rows:
        raw[row["value"]] = int(row["n"])
    total = sum(value or 0 for value in raw.values())
    return Breakdown(
        variable=by,
        cells=suppress_small_cells(raw, threshold, allowed_raw=allowed_raw),
        total=suppress_count(total, threshold, allowed_raw=allowed_raw),
        threshold=threshold,
    )
