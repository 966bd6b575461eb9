"""The DQD check types, each written once as a parametrized house-dialect (DuckDB) query.

Three shapes of check exist, chosen for speed:

- :class:`MetadataCheck` answers from the engine's catalogue (table and column lists);
- :class:`ScanCheck` contributes a numerator and a denominator aggregate (plus the joins it needs)
  to one query per table, so every field-level rule on a table costs a single scan;
- :class:`QueryCheck` needs its own query (grouping, anti-joins, per-concept rule lists); instances
  sharing a ``batch_key`` run together, each returning ``k, num_violated_rows, num_denominator_rows``.

Identifiers come from the DQD definitions and are validated by :func:`check_identifier`; literal
values are quoted by SQLGlot. Queries are rendered for each engine by SQLGlot.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from massalia.health.omop.schema import cdm_tables
from massalia.quality.checks import (
    CheckDefinitionError,
    CheckType,
    Fragment,
    Join,
    MetadataCheck,
    QueryCheck,
    ScanCheck,
    count_if,
    ident,
    literal,
    scan_query,
)
from massalia.quality.definitions import CheckInstance

__all__ = [  # the core's shapes are re-exported: the DQD and oncology modules import them from here
    "CheckDefinitionError",
    "CheckType",
    "Fragment",
    "Join",
    "MetadataCheck",
    "QueryCheck",
    "ScanCheck",
    "count_if",
    "ident",
    "literal",
    "scan_query",
]

GENDER_CONCEPTS = {"Male": 8507, "Female": 8532}
"""OMOP gender concepts DQD's ``plausibleGender`` values name."""

DEATH_GRACE_DAYS = 60
"""DQD tolerates events up to 60 days after death (late claims, post-mortem procedures)."""

VISIT_WINDOW_DAYS = 7
"""DQD's ``withinVisitDates`` window on either side of the visit."""

# DQD writes a few thresholds as OHDSI SqlRender expressions; these are their house-dialect forms.
_DQD_EXPRESSIONS = {
    "DATEADD(dd,1,GETDATE())": "CURRENT_DATE + INTERVAL 1 DAY",
    "YEAR(GETDATE())+1": "YEAR(CURRENT_DATE) + 1",
}
_DQD_DATE = re.compile(r"^'(\d{4})(\d{2})(\d{2})'$")
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "INT", "BIGINT", "HUGEINT", "INT2", "INT4", "INT8", "LONG", "SHORT"}
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def dqd_value(value: str) -> str:
    """A DQD threshold value (``'19500101'``, ``0.0000001``, ``DATEADD(dd,1,GETDATE())``) as SQL."""
    value = value.strip()
    date = _DQD_DATE.match(value)
    if date:
        return f"DATE '{date.group(1)}-{date.group(2)}-{date.group(3)}'"
    if _NUMBER.match(value):
        return value
    compact = value.replace(" ", "")
    if compact in _DQD_EXPRESSIONS:
        return _DQD_EXPRESSIONS[compact]
    raise CheckDefinitionError(f"unsupported DQD value expression {value!r}")


def birth_date(alias: str = "p") -> str:
    """A person's birth date; year-only fallback is January 1st, the earliest possible day."""
    return (
        f"COALESCE(CAST({alias}.birth_datetime AS DATE), "
        f"CAST(CAST({alias}.year_of_birth AS VARCHAR) || '-01-01' AS DATE))"
    )


def is_primary_key(table: str, field: str) -> bool:
    """Whether ``table.field`` is the (single-column) primary key in the CDM specification."""
    spec = cdm_tables().get(table)
    return spec is not None and spec.primary_key == (field,)


def person_join() -> Join:
    """Join the checked row's person."""
    return Join("p", "LEFT JOIN person AS p ON p.person_id = t.person_id")


def death_join() -> Join:
    """Join the earliest death date of the checked row's person (DEATH may hold several rows)."""
    return Join(
        "dth",
        "LEFT JOIN (SELECT person_id, MIN(death_date) AS death_date FROM death GROUP BY person_id) AS dth "
        "ON dth.person_id = t.person_id",
    )


def concept_join(field: str) -> Join:
    """Join CONCEPT on ``t.<field>`` (CONCEPT_ID is CONCEPT's primary key)."""
    alias = f"c_{field}"[:63]
    return Join(alias, f"LEFT JOIN concept AS {alias} ON {alias}.concept_id = t.{field}")


def foreign_join(field: str, fk_table: str, fk_field: str) -> Join:
    """Join the table ``t.<field>`` refers to; a key that is not unique is made distinct first."""
    if fk_table == "concept" and fk_field == "concept_id":
        return concept_join(field)
    alias = f"fk_{field}"[:63]
    unique = is_primary_key(fk_table, fk_field)
    target = fk_table if unique else f"(SELECT DISTINCT {fk_field} FROM {fk_table})"
    return Join(alias, f"LEFT JOIN {target} AS {alias} ON {alias}.{fk_field} = t.{field}")


# -- table level ----------------------------------------------------------------------------
class CdmTable(MetadataCheck):
    """The table exists."""

    name = "cdmTable"
    level = "TABLE"

    def violated(self, instance: CheckInstance, catalogue: Mapping[str, frozenset[str]]) -> bool:
        """Violated when the table is absent."""
        return instance.table not in catalogue


class MeasurePersonCompleteness(QueryCheck):
    """Persons with no record in the table."""

    name = "measurePersonCompleteness"
    level = "TABLE"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """PERSON and the table's PERSON_ID."""
        return {instance.table: ("person_id",), "person": ("person_id",)}

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """Anti-join of PERSON with the table's distinct persons."""
        (instance,) = instances
        return (
            f"SELECT 0 AS k, {count_if('x.person_id IS NULL')} AS num_violated_rows, "
            f"COUNT(*) AS num_denominator_rows FROM person AS p "
            f"LEFT JOIN (SELECT DISTINCT person_id FROM {ident(instance.table)}) AS x "
            f"ON x.person_id = p.person_id"
        )


class MeasureConditionEraCompleteness(QueryCheck):
    """Persons with conditions but no condition era."""

    name = "measureConditionEraCompleteness"
    level = "TABLE"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """CONDITION_OCCURRENCE and CONDITION_ERA."""
        return {"condition_occurrence": ("person_id",), "condition_era": ("person_id",)}

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """Persons of CONDITION_OCCURRENCE absent from CONDITION_ERA."""
        return (
            f"SELECT 0 AS k, {count_if('e.person_id IS NULL')} AS num_violated_rows, "
            "COUNT(*) AS num_denominator_rows "
            "FROM (SELECT DISTINCT person_id FROM condition_occurrence) AS c "
            "LEFT JOIN (SELECT DISTINCT person_id FROM condition_era) AS e ON e.person_id = c.person_id"
        )


class MeasureObservationPeriodOverlap(QueryCheck):
    """Persons with overlapping or back-to-back observation periods."""

    name = "measureObservationPeriodOverlap"
    level = "TABLE"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """OBSERVATION_PERIOD with its dates."""
        return {"observation_period": ("person_id", "observation_period_start_date", "observation_period_end_date")}

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """A period starting on or before the day after the previous one ends overlaps it."""
        return (
            "SELECT 0 AS k, COUNT(DISTINCT CASE WHEN start_date <= previous_end + INTERVAL 1 DAY "
            "THEN person_id END) AS num_violated_rows, COUNT(DISTINCT person_id) AS num_denominator_rows "
            "FROM (SELECT person_id, observation_period_start_date AS start_date, "
            "MAX(observation_period_end_date) OVER (PARTITION BY person_id "
            "ORDER BY observation_period_start_date, observation_period_end_date "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS previous_end "
            "FROM observation_period) AS periods"
        )


# -- field level: conformance -----------------------------------------------------------------
class CdmField(MetadataCheck):
    """The field exists in its table."""

    name = "cdmField"
    detects_empty_field = True  # DQD reports it even on an empty field

    def violated(self, instance: CheckInstance, catalogue: Mapping[str, frozenset[str]]) -> bool:
        """Violated when the table or the column is absent."""
        return ident(instance.field or "") not in catalogue.get(instance.table, frozenset())


class IsRequired(ScanCheck):
    """Records with NULL in a required field."""

    name = "isRequired"
    detects_empty_field = True  # DQD reports it even on an empty field

    def fragment(self, instance: CheckInstance) -> Fragment:
        """NULLs over all records."""
        return Fragment(count_if(f"t.{ident(instance.field or '')} IS NULL"), "COUNT(*)")


class CdmDatatype(ScanCheck):
    """Values of an integer field that are not integers."""

    name = "cdmDatatype"

    def holds_by_type(self, instance: CheckInstance, column_type: str) -> bool:
        """An integer column cannot hold anything but integers; casting every value to text is costly."""
        return column_type.upper().split("(")[0] in _INTEGER_TYPES

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Text form of the value must be an optional minus and digits only."""
        field = f"t.{ident(instance.field or '')}"
        condition = f"{field} IS NOT NULL AND NOT regexp_matches(CAST({field} AS VARCHAR), '^-?[0-9]+$')"
        return Fragment(count_if(condition), "COUNT(*)")


class IsPrimaryKey(QueryCheck):
    """Records whose key value appears more than once."""

    name = "isPrimaryKey"

    def query(self, instances: Sequence[CheckInstance]) -> str:
        """Sum of the sizes of duplicated key groups."""
        (instance,) = instances
        table, field = ident(instance.table), ident(instance.field or "")
        return (
            f"SELECT 0 AS k, COALESCE(SUM(n), 0) AS num_violated_rows, "
            f"(SELECT COUNT(*) FROM {table}) AS num_denominator_rows "
            f"FROM (SELECT {field}, COUNT(*) AS n FROM {table} GROUP BY {field} HAVING COUNT(*) > 1) AS dup"
        )


def _fk(instance: CheckInstance) -> tuple[str, str]:
    return ident(instance.param("fkTableName")), ident(instance.param("fkFieldName"))


class IsForeignKey(ScanCheck):
    """Values absent from the referenced table."""

    name = "isForeignKey"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The table, the field and the referenced key."""
        fk_table, fk_field = _fk(instance)
        return {**super().requires(instance), fk_table: (fk_field,)}

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Non-NULL values with no match in the referenced table."""
        field = ident(instance.field or "")
        fk_table, fk_field = _fk(instance)
        join = foreign_join(field, fk_table, fk_field)
        return Fragment(count_if(f"t.{field} IS NOT NULL AND {join.alias}.{fk_field} IS NULL"), "COUNT(*)", (join,))


class _ConceptAttributeCheck(ScanCheck):
    """Values whose concept does not have the expected attribute."""

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The table, the field and CONCEPT."""
        return {**super().requires(instance), "concept": ("concept_id",)}

    @abstractmethod
    def condition(self, instance: CheckInstance, alias: str) -> str:
        """Violation condition on the joined concept ``alias`` (concept 0 is never a violation)."""

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Violations over all records."""
        join = concept_join(ident(instance.field or ""))
        condition = f"{join.alias}.concept_id <> 0 AND ({self.condition(instance, join.alias)})"
        return Fragment(count_if(condition), "COUNT(*)", (join,))


class FkDomain(_ConceptAttributeCheck):
    """Concepts outside the field's domain."""

    name = "fkDomain"

    def condition(self, instance: CheckInstance, alias: str) -> str:
        """Domain differs."""
        return f"{alias}.domain_id <> {literal(instance.param('fkDomain'))}"


class FkClass(_ConceptAttributeCheck):
    """Concepts outside the field's concept class."""

    name = "fkClass"

    def condition(self, instance: CheckInstance, alias: str) -> str:
        """Concept class differs."""
        return f"{alias}.concept_class_id <> {literal(instance.param('fkClass'))}"


class IsStandardValidConcept(_ConceptAttributeCheck):
    """Concepts that are not standard or no longer valid."""

    name = "isStandardValidConcept"

    def condition(self, instance: CheckInstance, alias: str) -> str:
        """Non-standard concepts have a NULL flag: compare with COALESCE so they count."""
        return f"COALESCE({alias}.standard_concept, '') <> 'S' OR {alias}.invalid_reason IS NOT NULL"


# -- field level: completeness ----------------------------------------------------------------
class MeasureValueCompleteness(ScanCheck):
    """Records with NULL in the field."""

    name = "measureValueCompleteness"
    detects_empty_field = True  # DQD reports it even on an empty field

    def fragment(self, instance: CheckInstance) -> Fragment:
        """NULLs over all records."""
        return Fragment(count_if(f"t.{ident(instance.field or '')} IS NULL"), "COUNT(*)")


class _ZeroConceptCompleteness(ScanCheck):
    def fragment(self, instance: CheckInstance) -> Fragment:
        """Concept id 0 ('no matching concept') over all records."""
        return Fragment(count_if(f"t.{ident(instance.field or '')} = 0"), "COUNT(*)")


class StandardConceptRecordCompleteness(_ZeroConceptCompleteness):
    """Records whose standard concept is 0."""

    name = "standardConceptRecordCompleteness"


class SourceConceptRecordCompleteness(_ZeroConceptCompleteness):
    """Records whose source concept is 0."""

    name = "sourceConceptRecordCompleteness"


class SourceValueCompleteness(ScanCheck):
    """Distinct source values mapped to concept 0."""

    name = "sourceValueCompleteness"

    def _standard(self, instance: CheckInstance) -> str:
        return ident(instance.param("standardConceptFieldName"))

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The source value field and its standard concept field."""
        return {instance.table: (ident(instance.field or ""), self._standard(instance))}

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Distinct source values, counted once each."""
        field, standard = ident(instance.field or ""), self._standard(instance)
        return Fragment(f"COUNT(DISTINCT CASE WHEN t.{standard} = 0 THEN t.{field} END)", f"COUNT(DISTINCT t.{field})")


# -- field level: plausibility ----------------------------------------------------------------
class PlausibleValueLow(ScanCheck):
    """Values below the plausible minimum."""

    name = "plausibleValueLow"
    operator: ClassVar[str] = "<"

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Over non-NULL values."""
        field = f"t.{ident(instance.field or '')}"
        bound = dqd_value(instance.param(self.name))
        return Fragment(count_if(f"{field} {self.operator} {bound}"), f"COUNT({field})")


class PlausibleValueHigh(PlausibleValueLow):
    """Values above the plausible maximum."""

    name = "plausibleValueHigh"
    operator = ">"


class PlausibleTemporalAfter(ScanCheck):
    """Dates before the date they must follow (birth, or another date of the same row)."""

    name = "plausibleTemporalAfter"

    def _other(self, instance: CheckInstance) -> tuple[str, str]:
        return ident(instance.param("plausibleTemporalAfterTableName")), ident(
            instance.param("plausibleTemporalAfterFieldName")
        )

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The field and the date it must follow."""
        table, field = self._other(instance)
        needs = dict(super().requires(instance))
        if table == instance.table:
            needs[table] = (*needs[table], field)
        else:
            needs[table] = ("person_id", "year_of_birth", "birth_datetime")
        return needs

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Birth is compared by day (a birth time must not flag a same-day event)."""
        field = f"t.{ident(instance.field or '')}"
        table, other = self._other(instance)
        if table == instance.table:
            return Fragment(count_if(f"{field} < t.{other}"), "COUNT(*)")
        if table == "person":
            return Fragment(count_if(f"CAST({field} AS DATE) < {birth_date()}"), "COUNT(*)", (person_join(),))
        raise CheckDefinitionError(f"plausibleTemporalAfter against {table} has no join rule")


class PlausibleAfterBirth(ScanCheck):
    """Dates before the person's birth."""

    name = "plausibleAfterBirth"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The field, the row's person and PERSON's birth fields."""
        field = ident(instance.field or "")
        return {instance.table: (field, "person_id"), "person": ("person_id", "year_of_birth", "birth_datetime")}

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Over records with a date."""
        field = f"t.{ident(instance.field or '')}"
        return Fragment(count_if(f"CAST({field} AS DATE) < {birth_date()}"), f"COUNT({field})", (person_join(),))


class PlausibleBeforeDeath(ScanCheck):
    """Dates more than 60 days after the person's death."""

    name = "plausibleBeforeDeath"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The field, the row's person and DEATH."""
        field = ident(instance.field or "")
        return {instance.table: (field, "person_id"), "death": ("person_id", "death_date")}

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Over records of persons who died."""
        field = f"t.{ident(instance.field or '')}"
        late = f"CAST({field} AS DATE) > dth.death_date + INTERVAL {DEATH_GRACE_DAYS} DAY"
        return Fragment(count_if(late), count_if("dth.person_id IS NOT NULL"), (death_join(),))


class PlausibleDuringLife(PlausibleBeforeDeath):
    """DQD's older name for :class:`PlausibleBeforeDeath`, still enabled on other fields."""

    name = "plausibleDuringLife"


class PlausibleStartBeforeEnd(ScanCheck):
    """Start dates after the matching end date."""

    name = "plausibleStartBeforeEnd"

    def _end(self, instance: CheckInstance) -> str:
        return ident(instance.param("plausibleStartBeforeEndFieldName"))

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """Start and end fields."""
        return {instance.table: (ident(instance.field or ""), self._end(instance))}

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Over all records (NULL ends never violate)."""
        return Fragment(count_if(f"t.{ident(instance.field or '')} > t.{self._end(instance)}"), "COUNT(*)")


class WithinVisitDates(ScanCheck):
    """Dates more than a week outside their visit."""

    name = "withinVisitDates"

    def requires(self, instance: CheckInstance) -> dict[str, tuple[str, ...]]:
        """The field, its visit and VISIT_OCCURRENCE's dates."""
        return {
            instance.table: (ident(instance.field or ""), "visit_occurrence_id"),
            "visit_occurrence": ("visit_occurrence_id", "visit_start_date", "visit_end_date"),
        }

    def fragment(self, instance: CheckInstance) -> Fragment:
        """Over records linked to an existing visit."""
        day = f"CAST(t.{ident(instance.field or '')} AS DATE)"
        window = VISIT_WINDOW_DAYS
        outside = (
            f"v.visit_occurrence_id IS NOT NULL AND ({day} < v.visit_start_date - INTERVAL {window} DAY "
            f"OR {day} > v.visit_end_date + INTERVAL {window} DAY)"
        )
        join = Join("v", "LEFT JOIN visit_occurrence AS v ON v.visit_occurrence_id = t.visit_occurrence_id")
        return Fragment(count_if(outside), count_if("v.visit_occurrence_id IS NOT NULL"), (join,))


def concept_ids(instance: CheckInstance) -> list[int]:
    """Concept ids of a concept-level row (DQD lists several, comma-separated, for descendants)."""
    return [int(part) for part in instance.param("conceptId").replace(" ", "").split(",") if part]


def values_table(alias: str, columns: Sequence[str], rows: Iterable[Sequence[int | float]]) -> str:
    """An inline ``VALUES`` relation (the per-concept rules of a batch)."""
    body = ", ".join("(" + ", ".join(repr(v) for v in row) + ")" for row in rows)
    return f"(VALUES {body}) AS {alias}({', '.join(columns)})"
