"""Fast counts over ``mart_patient`` for the portal: a typed filter spec, validated, compiled by SQLGlot.

A filter is an AND of clauses (``variable``, ``op``, ``value``) plus optional OR groups (each group is
true when one of its clauses is), optionally restricted to a generated cohort (``cohort`` table,
``cohort_definition_id``). Every clause is checked against the catalogue: an unknown variable, an
operator the variable's type does not take, a value of the wrong type or outside a category is refused
with a :class:`FilterError` naming the clause. Identifiers come only from the catalogue and values
become SQLGlot literals, so no text of the request is ever pasted into SQL.

This module computes exact counts only. What a caller sees is decided by the guarded services
(:mod:`massalia.health.research`): exact counts for members of an approved project, otherwise the one
release mechanism (:mod:`massalia.governance.disclosure`: noise, rounding, threshold, budget), after
:func:`check_feasibility` has refused identifiers, exact dates and unbounded text; the released
shapes are :class:`CountResult` and :class:`Breakdown`.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlglot import exp

from massalia.engine import Engine
from massalia.health.marts.builder import MART_TABLE
from massalia.health.marts.catalogue import Catalogue, DateGrain, Disclosure, Variable, VariableType, load_catalogue

Operator = Literal["=", "!=", "<", "<=", ">", ">=", "in", "not_in", "between", "is_null", "is_not_null"]
Scalar = bool | int | float | str | dt.date
MAX_TEXT = 200
MAX_VALUES = 500
MAX_CLAUSES = 50
MAX_GROUPS = 20
FEASIBILITY_MAX_TEXT = 64
"""Longest text value a feasibility filter may compare (free text is bounded)."""
FEASIBILITY_MAX_VALUES = 50
"""Most values of an ``in`` / ``not_in`` list in a feasibility filter."""

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


class MartNotBuiltError(FilterError):
    """The mart (or the cohort table a filter names) does not exist yet on this warehouse: build it first."""


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

    all: list[Clause] = Field(default_factory=list, max_length=MAX_CLAUSES)
    any_of: list[Annotated[list[Clause], Field(max_length=MAX_CLAUSES)]] = Field(
        default_factory=list, max_length=MAX_GROUPS
    )
    cohort_definition_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


@dataclass(frozen=True)
class CountResult:
    """A released count: exact, or noisy and rounded (``None``: under the threshold, 0 included).

    ``shown`` is how it reads (``"120"``, ``"~120"``, ``"<10"``); ``release`` says how it was released
    (mode, threshold, rounding, privacy cost and budget left).
    """

    count: int | None
    shown: str
    release: dict[str, Any]


@dataclass(frozen=True)
class Breakdown:
    """Released counts by value of a categorical variable (``None`` key: no value recorded)."""

    variable: str
    cells: dict[str | bool | None, int | None]
    shown: dict[str | bool | None, str]
    total: int | None
    total_shown: str
    release: dict[str, Any]


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
        # model_validate: the operator is text read from the command line, checked by the model
        return Clause.model_validate({"variable": variable, "op": op})
    if not rest:
        raise FilterError(f"filter {text!r}: a value is missing after {op!r}")
    if op in ("in", "not_in", "between"):
        values = [part.strip() for part in rest.split(",")]
        return Clause.model_validate({"variable": variable, "op": op, "value": values})
    return Clause.model_validate({"variable": variable, "op": op, "value": rest})


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


def _literal(value: object, kind: VariableType) -> exp.Expr:
    if kind is VariableType.BOOLEAN:
        return exp.Boolean(this=bool(value))
    if kind in (VariableType.INTEGER, VariableType.NUMBER):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if kind is VariableType.DATE:
        if not isinstance(value, dt.date):
            raise FilterError(f"{value!r} is not a date")
        return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.build("DATE"))
    return exp.Literal.string(str(value))


def compile_clause(clause: Clause, catalogue: Catalogue, *, where: str = "clause", table: str = "m") -> exp.Expr:
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


def compile_filter(spec: FilterSpec, catalogue: Catalogue | None = None, *, table: str = "m") -> exp.Expr | None:
    """The spec's WHERE condition (``None`` when it has no clause); ``FilterError`` naming the clause."""
    catalogue = catalogue or load_catalogue()
    conditions: list[exp.Expr] = [
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


def _base_query(engine: Engine, spec: FilterSpec, catalogue: Catalogue, restrict: exp.Expr | None = None) -> exp.Select:
    condition = compile_filter(spec, catalogue)
    if restrict is not None:  # a project's row-level scope (massalia.governance.policy), over alias "m"
        condition = exp.and_(condition, restrict) if condition is not None else restrict
    if not engine.table_exists(MART_TABLE):
        raise MartNotBuiltError(
            f"the mart is not built on this warehouse: run 'massalia mart build' first ({MART_TABLE})"
        )
    if spec.cohort_definition_id is not None and not engine.table_exists("cohort"):
        raise MartNotBuiltError("no cohort table: generate the cohort first ('massalia cohort generate')")
    query = exp.select().from_(exp.to_table(MART_TABLE).as_("m"))
    return query.where(condition) if condition is not None else query


def count_persons(
    engine: Engine, spec: FilterSpec, *, catalogue: Catalogue | None = None, restrict: exp.Expr | None = None
) -> int:
    """Exact number of persons of the mart matching ``spec`` and ``restrict`` (a row-level scope).

    Release it through the guarded services, never as is.

    Examples
    --------
    >>> spec = FilterSpec(all=[parse_clause("primary_site = breast"), parse_clause("age_at_diagnosis < 50")])
    >>> count_persons(engine, spec)  # doctest: +SKIP
    31
    """
    catalogue = catalogue or load_catalogue()
    query = _base_query(engine, spec, catalogue, restrict).select(exp.Count(this=exp.Star()).as_("n"))
    return engine.scalar_int(query)


def _breakdown_variable(catalogue: Catalogue, by: str) -> Variable:
    try:
        variable = catalogue.variable(by)
    except KeyError as error:
        raise FilterError(f"breakdown: {error.args[0]}") from None
    if variable.type not in (VariableType.CATEGORY, VariableType.BOOLEAN):
        raise FilterError(f"breakdown: {by} is {variable.type.value}; break down by a category or boolean variable")
    return variable


def _cells(variable: Variable) -> dict[str | bool | None, int]:
    """Every cell of a breakdown at 0: which cells exist never depends on the data."""
    keys: Sequence[str | bool] = variable.values or () if variable.type is VariableType.CATEGORY else (True, False)
    return {**dict.fromkeys(keys, 0), None: 0}


def _scan(
    engine: Engine, spec: FilterSpec, catalogue: Catalogue, restrict: exp.Expr | None, names: Sequence[str]
) -> tuple[int, dict[str, dict[str | bool | None, int]]]:
    """One grouping set per variable of ``names`` and the empty set (the total), in one scan."""
    variables = [_breakdown_variable(catalogue, name) for name in names]
    columns = [exp.column(variable.name, table="m") for variable in variables]
    sets = [exp.Tuple(expressions=[column]) for column in columns] + [exp.Tuple(expressions=[])]
    query = (
        _base_query(engine, spec, catalogue, restrict)
        .select(
            *[column.as_(f"v{i}") for i, column in enumerate(columns)],
            *[exp.func("GROUPING", column).as_(f"g{i}") for i, column in enumerate(columns)],
            exp.Count(this=exp.Star()).as_("n"),
        )
        .group_by(exp.GroupingSets(expressions=sets))
    )
    counts = {variable.name: _cells(variable) for variable in variables}
    total = 0
    for row in engine.query(query).to_pylist():
        # GROUPING(c) is 0 in the set that groups by c (a NULL value there is "no value", not "all").
        i = next((i for i in range(len(variables)) if int(row[f"g{i}"]) == 0), None)
        if i is None:  # the empty grouping set: every matching row
            total = int(row["n"])
        else:
            counts[variables[i].name][row[f"v{i}"]] = int(row["n"])
    return total, counts


def count_and_breakdowns(
    engine: Engine,
    spec: FilterSpec,
    names: Sequence[str],
    *,
    catalogue: Catalogue | None = None,
    restrict: exp.Expr | None = None,
) -> tuple[int, dict[str, dict[str | bool | None, int]]]:
    """:func:`count_persons` and :func:`breakdown_counts` by each of ``names``, in one scan of the mart.

    ``GROUP BY GROUPING SETS ((v1), (v2), ..., ())``: the same numbers as the separate queries. Release
    them through the guarded services, never as they are.

    Examples
    --------
    >>> persons, by = count_and_breakdowns(engine, FilterSpec(), ["sex", "stage_group"])  # doctest: +SKIP
    >>> persons == sum(by["sex"].values())  # doctest: +SKIP
    True
    """
    catalogue = catalogue or load_catalogue()
    names = list(dict.fromkeys(names))
    if not names:
        return count_persons(engine, spec, catalogue=catalogue, restrict=restrict), {}
    return _scan(engine, spec, catalogue, restrict, names)


def breakdown_counts(
    engine: Engine,
    spec: FilterSpec,
    by: str,
    *,
    catalogue: Catalogue | None = None,
    restrict: exp.Expr | None = None,
) -> dict[str | bool | None, int]:
    """Exact counts of the matching persons (and ``restrict``, a row-level scope) by value of the variable ``by``.

    Every value appears, 0 when absent, and so does ``None`` (no value recorded): which cells exist
    never depends on the data. :func:`count_and_breakdowns` counts several variables in one scan.
    """
    catalogue = catalogue or load_catalogue()
    variable = _breakdown_variable(catalogue, by)
    column = exp.column(variable.name, table="m")
    query = (
        _base_query(engine, spec, catalogue, restrict)
        .select(column.as_("value"), exp.Count(this=exp.Star()).as_("n"))
        .group_by(column)
    )
    counts = _cells(variable)
    for row in engine.query(query).to_pylist():
        counts[row["value"]] = int(row["n"])
    return counts


def _coerce_date(variable: Variable, value: object, where: str) -> dt.date:
    """``_coerce`` for a DATE variable, typed as the date it returns."""
    day = _coerce(variable, value, where)
    if not isinstance(day, dt.date):  # only a variable that is not a DATE gets here
        raise FilterError(f"{where}: {variable.name} is {variable.type.value}, not a date")
    return day


def _grain_bounds(value: dt.date, grain: DateGrain) -> tuple[bool, bool]:
    """Whether ``value`` starts / ends a period of ``grain`` (a year, or a month)."""
    if grain is DateGrain.YEAR:
        return (value.month, value.day) == (1, 1), (value.month, value.day) == (12, 31)
    last = (dt.date(value.year + value.month // 12, value.month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return value.day == 1, value.day == last


def _check_feasible_clause(clause: Clause, variable: Variable, label: str) -> None:
    if variable.disclosure is Disclosure.IDENTIFIER:
        raise FilterError(f"{label}: {variable.name} is an identifier; counts without an approved project never "
                          "filter on identifiers")  # fmt: skip
    values = clause.value if isinstance(clause.value, list) else [clause.value]
    if clause.op in ("in", "not_in") and len(values) > FEASIBILITY_MAX_VALUES:
        raise FilterError(f"{label}: at most {FEASIBILITY_MAX_VALUES} values without an approved project")
    too_long = [v for v in values if isinstance(v, str) and len(v) > FEASIBILITY_MAX_TEXT]
    if variable.type is VariableType.TEXT and too_long:
        raise FilterError(f"{label}: text values are limited to {FEASIBILITY_MAX_TEXT} characters "
                              "without an approved project")  # fmt: skip
    if variable.type is not VariableType.DATE or clause.op in _NULL_OPS:
        return
    grain = variable.date_grain or DateGrain.YEAR
    hint = (
        f"without an approved project, {variable.name} is compared at the {grain.value} grain: use >= or < "
        f"with the first day of a {grain.value}, <= or > with its last day, or between first and last day"
    )
    if clause.op in ("=", "!="):
        raise FilterError(f"{label}: exact dates are not allowed; {hint}")
    bounds = [_grain_bounds(_coerce_date(variable, value, label), grain) for value in values]
    if clause.op in (">=", "<"):
        ok = bounds[0][0]
    elif clause.op in ("<=", ">"):
        ok = bounds[0][1]
    else:  # between
        ok = len(bounds) == 2 and bounds[0][0] and bounds[1][1]
    if not ok:
        raise FilterError(f"{label}: {hint}")


def check_feasibility(spec: FilterSpec, by: str | None = None, catalogue: Catalogue | None = None) -> None:
    """Refuse what a caller without an approved project may not filter on; ``FilterError`` names the clause.

    Identifiers are never filtered on (nor broken down by), dates only at their catalogue grain
    (``year`` unless ``month``; never an exact day), text values and value lists are bounded.

    Examples
    --------
    >>> check_feasibility(FilterSpec(all=[parse_clause("birth_date >= 1950-01-01")]))
    >>> check_feasibility(FilterSpec(all=[parse_clause("person_id = 12")]))
    Traceback (most recent call last):
    ...
    massalia.health.marts.filters.FilterError: clause 1 (person_id = '12'): person_id is an identifier; ...
    """
    catalogue = catalogue or load_catalogue()
    labelled = [(clause, f"clause {i + 1} ({clause})") for i, clause in enumerate(spec.all)]
    labelled += [
        (clause, f"OR group {g + 1}, clause {i + 1} ({clause})")
        for g, group in enumerate(spec.any_of)
        for i, clause in enumerate(group)
    ]
    for clause, label in labelled:
        try:
            variable = catalogue.variable(clause.variable)
        except KeyError as error:
            raise FilterError(f"{label}: {error.args[0]}") from None
        _check_feasible_clause(clause, variable, label)
    names = {v.name for v in catalogue.variables}
    if by is not None and by in names and catalogue.variable(by).disclosure is Disclosure.IDENTIFIER:
        raise FilterError(f"breakdown: {by} is an identifier")


def _normal_value(variable: Variable, clause: Clause, label: str) -> Any:
    if clause.value is None:
        return None
    if isinstance(clause.value, list):
        values = [_coerce(variable, value, label) for value in clause.value]
        if clause.op in ("in", "not_in"):
            values = sorted(set(values), key=repr)
        return [v.isoformat() if isinstance(v, dt.date) else v for v in values]
    value = _coerce(variable, clause.value, label)
    return value.isoformat() if isinstance(value, dt.date) else value


def normalized_spec(spec: FilterSpec, catalogue: Catalogue | None = None) -> dict[str, Any]:
    """The spec as canonical data: values typed, lists sorted, clauses and groups sorted and deduplicated.

    Two specs that differ only in spelling (``"60"`` vs ``60``, clause order, repeated ``in`` values)
    normalize alike, so the release mechanism answers them with the same stored release.

    Examples
    --------
    >>> a = FilterSpec(all=[parse_clause("age_at_diagnosis >= 60"), parse_clause("sex = female")])
    >>> b = FilterSpec(all=[parse_clause("sex = female"), parse_clause("age_at_diagnosis >= 60.0")])
    >>> normalized_spec(a) == normalized_spec(b)
    True
    """
    catalogue = catalogue or load_catalogue()

    def clause_data(clause: Clause, label: str) -> str:
        try:
            variable = catalogue.variable(clause.variable)
        except KeyError as error:
            raise FilterError(f"{label}: {error.args[0]}") from None
        data = {"variable": variable.name, "op": clause.op, "value": _normal_value(variable, clause, label)}
        return json.dumps(data, sort_keys=True, default=str)

    clauses = sorted({clause_data(c, f"clause {i + 1} ({c})") for i, c in enumerate(spec.all)})
    groups = sorted(
        {
            json.dumps(sorted({clause_data(c, f"OR group {g + 1}") for c in group}))
            for g, group in enumerate(spec.any_of)
        }
    )
    return {
        "all": [json.loads(c) for c in clauses],
        "any_of": [[json.loads(c) for c in json.loads(group)] for group in groups],
        "cohort_definition_id": spec.cohort_definition_id,
    }
