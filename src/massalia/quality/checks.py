"""The shapes of a quality check, chosen for speed, and the pieces their SQL is made of.

- :class:`MetadataCheck` answers from the engine's catalogue (table and column lists);
- :class:`ScanCheck` contributes a numerator and a denominator aggregate (plus the joins it needs)
  to one query per table, so every field-level rule on a table costs a single scan;
- :class:`QueryCheck` needs its own query (grouping, anti-joins, per-concept rule lists); instances
  sharing a ``batch_key`` run together, each returning ``k, num_violated_rows, num_denominator_rows``.

A domain writes its checks as subclasses (health: the DQD check types and the oncology rules) and
registers them in a :class:`~massalia.quality.registry.CheckRegistry`; :func:`~massalia.quality.runner.run_checks`
runs them. Identifiers are validated by :func:`~massalia.engine.base.check_identifier`; literal values are
quoted by SQLGlot.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from sqlglot import exp

from massalia.engine.base import check_identifier
from massalia.quality.definitions import CheckInstance


class CheckDefinitionError(ValueError):
    """A definition row cannot be turned into SQL (unknown expression, unsupported join...)."""


def ident(name: str) -> str:
    """A validated, lower-case SQL identifier."""
    return check_identifier(name.strip().lower())


def literal(value: str) -> str:
    """A quoted string literal in the house dialect."""
    return exp.Literal.string(value).sql(dialect="duckdb")


def count_if(condition: str) -> str:
    """Portable conditional count (``COUNT_IF`` is not in every engine)."""
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


@dataclass(frozen=True)
class Join:
    """A join a scan fragment needs; fragments sharing an alias share the join."""

    alias: str
    clause: str


@dataclass(frozen=True)
class Fragment:
    """What a scan check adds to its table's query: two aggregates over alias ``t``."""

    numerator: str
    denominator: str
    joins: tuple[Join, ...] = ()


class CheckType(ABC):
    """One check type (DQD's, a rule of a domain); subclasses say how its instances are computed."""

    name: ClassVar[str]
    level: ClassVar[str] = "FIELD"
    detects_empty_field: ClassVar[bool] = False
    """Reported even on a field holding no value at all (it is what detects the emptiness, as DQD's
    ``isRequired`` does); other checks on such a field are not applicable."""

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """Tables (and their fields) that must exist for the check to be applicable."""
        return {instance.table: (ident(instance.field),) if instance.field else ()}

    @property
    def key(self) -> tuple[str, str]:
        """Registry key: a check name may be reused at several levels (DQD does)."""
        return (self.level, self.name)


class MetadataCheck(CheckType):
    """A conformance check answered from the engine's catalogue."""

    @abstractmethod
    def violated(self, instance: CheckInstance, catalogue: Mapping[str, frozenset[str]]) -> bool:
        """Whether the instance is violated, given ``{table: columns}`` of the warehouse."""

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """Conformance checks are never 'not applicable'."""
        return {}


class ScanCheck(CheckType):
    """A check computed as two aggregates in its table's shared scan."""

    @abstractmethod
    def fragment(self, instance: CheckInstance) -> Fragment:
        """The aggregates (and joins) for ``instance``."""

    def holds_by_type(self, instance: CheckInstance, column_type: str) -> bool:
        """Whether the column's declared type alone guarantees no violation (no scan needed)."""
        return False


class QueryCheck(CheckType):
    """A check with its own query; instances with the same ``batch_key`` share one query."""

    def batch_key(self, instance: CheckInstance) -> tuple[str, ...]:
        """Instances with equal keys run in one query."""
        return (self.name, instance.table, instance.field or "", str(instance.concept_id))

    @abstractmethod
    def query(self, instances: Sequence[CheckInstance]) -> str:
        """SQL returning ``k, num_violated_rows, num_denominator_rows`` (k indexes ``instances``)."""


def scan_query(table: str, fragments: Sequence[Fragment]) -> str:
    """One query computing every fragment over ``table`` (columns ``n0, d0, n1, d1...``)."""
    joins: dict[str, str] = {}
    columns = []
    for index, fragment in enumerate(fragments):
        for join in fragment.joins:
            joins.setdefault(join.alias, join.clause)
        columns.append(f"{fragment.numerator} AS n{index}, {fragment.denominator} AS d{index}")
    select = ",\n  ".join(columns)
    joined = "".join(f"\n{clause}" for clause in joins.values())
    return f"SELECT\n  {select}\nFROM {ident(table)} AS t{joined}"
