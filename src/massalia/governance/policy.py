"""Row-level policy: what a project's scope lets through, as SQL predicates produced in one place.

A project's scope (:class:`~massalia.governance.model.ProjectScope`) names sites, a period, variables
and a cohort. This module turns it into SQLGlot predicates over whatever columns a table keeps them in
(:class:`ScopeColumns`), so the guarded services of every domain apply the same rule and the engine
enforces it: a row whose site is not one of the project's, or whose date falls outside its period, or
whose person is not in its cohort, is never read. A ``NULL`` site or date is outside any restricted
scope (``IN`` and comparisons are not true on ``NULL``): unknown is not allowed.

It also allocates the warehouse cohort id of a project's cohort (:func:`project_cohort_id`), so two
projects that both call their cohort "1" never write over each other's rows.

Examples
--------
>>> import datetime as dt
>>> from sqlglot import exp
>>> from massalia.governance.model import ProjectScope
>>> policy = RowPolicy.of(ProjectScope(sites=("chu_nord",), period_start=dt.date(2020, 1, 1)))
>>> policy.predicate(ScopeColumns(site=exp.column("site"), date=exp.column("day"))).sql("duckdb")
"site IN ('chu_nord') AND day >= CAST('2020-01-01' AS DATE)"
>>> project_cohort_id(3, 1)
3000001
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlglot import exp

from massalia.governance.model import InvalidRequest, ProjectScope

MAX_LOCAL_COHORT_ID = 999_999
"""Largest cohort id a caller names; a project's ids live in their own block of a million."""

PROJECT_COHORT_BLOCK = MAX_LOCAL_COHORT_ID + 1


def check_local_cohort_id(cohort_id: int) -> int:
    """``cohort_id`` if it is a cohort id a caller may name (1 to 999 999), else ``InvalidRequest``."""
    if isinstance(cohort_id, bool) or not isinstance(cohort_id, int) or not 1 <= cohort_id <= MAX_LOCAL_COHORT_ID:
        raise InvalidRequest(f"a cohort id is an integer from 1 to {MAX_LOCAL_COHORT_ID}, got {cohort_id!r}")
    return cohort_id


def project_cohort_id(project_id: int | None, cohort_id: int) -> int:
    """The warehouse ``cohort_definition_id`` of the cohort a caller calls ``cohort_id`` under ``project_id``.

    Without a project the id is used as given (the operator's shared cohorts, 1 to 999 999); under
    project P it is ``P * 1 000 000 + cohort_id``: a block no other project and no unscoped call can write.
    """
    local = check_local_cohort_id(cohort_id)
    if project_id is None:
        return local
    if isinstance(project_id, bool) or not isinstance(project_id, int) or project_id < 1:
        raise InvalidRequest(f"a project id is a positive integer, got {project_id!r}")
    return int(project_id) * PROJECT_COHORT_BLOCK + local


@dataclass(frozen=True)
class ScopeColumns:
    """Where a table keeps what a scope restricts (any may be ``None``: that part of the scope cannot apply).

    Parameters
    ----------
    site
        The care-site code of the row (e.g. the mart's ``care_site_code``).
    date
        The row's date in the sense of the period: an event date, or a cohort's index date.
    person
        The person id, for the cohort restriction.
    """

    site: exp.Expr | None = None
    date: exp.Expr | None = None
    person: exp.Expr | None = None


@dataclass(frozen=True)
class RowPolicy:
    """A project scope as row-level restrictions.

    Attributes
    ----------
    sites
        Care-site codes the project may see (empty: every site).
    period_start, period_end
        Inclusive bounds of the dates it may see (``None``: unbounded on that side).
    variables
        Columns it may use (empty: every column).
    cohort
        ``(cohort table, cohort_definition_id)`` whose persons only it may see, or ``None``.
    """

    sites: tuple[str, ...] = ()
    period_start: dt.date | None = None
    period_end: dt.date | None = None
    variables: tuple[str, ...] = ()
    cohort: tuple[str, int] | None = None

    @classmethod
    def of(cls, scope: ProjectScope, *, cohort: tuple[str, int] | None = None) -> RowPolicy:
        """The policy of a project's scope, restricted to the persons of ``cohort`` when given."""
        return cls(scope.sites, scope.period_start, scope.period_end, scope.variables, cohort)

    @property
    def restricts_rows(self) -> bool:
        """Whether any row is ever left out (sites, period or cohort)."""
        return bool(self.sites) or self.has_period or self.cohort is not None

    @property
    def has_period(self) -> bool:
        """Whether the period is bounded on either side."""
        return self.period_start is not None or self.period_end is not None

    def site_predicate(self, site: exp.Expr) -> exp.Expr | None:
        """``site IN (<the project's sites>)``, or ``None`` when every site is in scope."""
        if not self.sites:
            return None
        return exp.In(this=site.copy(), expressions=[exp.Literal.string(code) for code in self.sites])

    def period_predicate(self, date: exp.Expr) -> exp.Expr | None:
        """``date >= start AND date <= end`` (the bounds that exist), or ``None`` when unbounded."""
        parts: list[exp.Expr] = []
        if self.period_start is not None:
            parts.append(exp.GTE(this=date.copy(), expression=_date_literal(self.period_start)))
        if self.period_end is not None:
            parts.append(exp.LTE(this=date.copy(), expression=_date_literal(self.period_end)))
        return exp.and_(*parts) if parts else None

    def cohort_predicate(self, person: exp.Expr) -> exp.Expr | None:
        """``person IN (SELECT subject_id FROM <cohort table> WHERE cohort_definition_id = <id>)``, or ``None``."""
        if self.cohort is None:
            return None
        table, cohort_id = self.cohort
        members = (
            exp.select(exp.column("subject_id"))
            .from_(exp.to_table(table))
            .where(exp.column("cohort_definition_id").eq(exp.Literal.number(int(cohort_id))))
        )
        return exp.In(this=person.copy(), query=exp.Subquery(this=members))

    def predicate(self, columns: ScopeColumns) -> exp.Expr | None:
        """The whole restriction over ``columns`` (``None``: nothing to restrict).

        Raises
        ------
        InvalidRequest
            The scope restricts something the table has no column for: refusing beats ignoring it.
        """
        parts: list[exp.Expr] = []
        for restricted, column, build, what in (
            (bool(self.sites), columns.site, self.site_predicate, "sites"),
            (self.has_period, columns.date, self.period_predicate, "period"),
            (self.cohort is not None, columns.person, self.cohort_predicate, "cohort"),
        ):
            if not restricted:
                continue
            if column is None:
                raise InvalidRequest(f"the project's scope restricts {what}, and this data has no column for it")
            part = build(column)
            if part is not None:
                parts.append(part)
        if not parts:
            return None
        return exp.and_(*parts) if len(parts) > 1 else parts[0]

    def contains_date(self, value: dt.date | None) -> bool:
        """Whether a date already read falls in the period (``None`` is outside a bounded period).

        For values computed in memory after the engine has run (the same bounds as :meth:`period_predicate`).
        """
        if not self.has_period:
            return True
        if value is None:
            return False
        day = value.date() if isinstance(value, dt.datetime) else value
        if self.period_start is not None and day < self.period_start:
            return False
        return not (self.period_end is not None and day > self.period_end)

    def variables_outside(self, used: Iterable[str]) -> list[str]:
        """The variables of ``used`` outside the project's list (none when the list is empty)."""
        if not self.variables:
            return []
        return sorted(set(used) - set(self.variables))


def _date_literal(day: dt.date) -> exp.Expr:
    return exp.cast(exp.Literal.string(day.isoformat()), exp.DataType.build("date"))
