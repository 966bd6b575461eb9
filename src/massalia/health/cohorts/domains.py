"""Per-domain event queries: how each criteria node becomes rows of (person, event, start, end, visit).

Each domain is described as data (``DomainSpec``: table, columns, and one handler per attribute).
``DomainCompiler.events`` is the visitor for criteria nodes: it looks the node's class up in
``DOMAINS`` and refuses a class it does not know, or any set attribute without a handler, naming it.
Dates and defaults follow OHDSI Circe's builders (e.g. a condition without end date ends the day
after it starts; a drug exposure ends at its end date, else start + days supply, else start + 1).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from massalia.health.cohorts.criteria import (
    ConditionEra,
    ConditionOccurrence,
    Criterion,
    Death,
    DeviceExposure,
    DoseEra,
    DrugEra,
    DrugExposure,
    LocationRegion,
    Measurement,
    Observation,
    ObservationPeriod,
    OncologyCriterion,
    PayerPlanPeriod,
    ProcedureOccurrence,
    Specimen,
    VisitDetail,
    VisitOccurrence,
)
from massalia.health.cohorts.nodes import ConceptSetSelection, DateRange, NumericRange, TextFilter
from massalia.health.cohorts.oncology import oncology_events
from massalia.health.cohorts.sqltext import (
    UnsupportedConstruct,
    date_clause,
    date_literal,
    in_codeset,
    in_concepts,
    numeric_clause,
    selection_clause,
    shift,
    text_clause,
)
from massalia.health.omop.schema import cdm_table, cdm_tables

AGE = "EXTRACT(YEAR FROM C.start_date) - P.year_of_birth"
AGE_AT_END = "EXTRACT(YEAR FROM C.end_date) - P.year_of_birth"
DURATION = "DATE_DIFF('day', C.start_date, C.end_date)"


@dataclass(frozen=True)
class Attr:
    """How one attribute of a criteria node filters the rows: ``kind`` and the SQL expression it applies to."""

    kind: str  # concepts | cs | date | num | text | source | codeset_in | flag
    expression: str = ""
    exclude_flag: str | None = None


@dataclass(frozen=True)
class DomainSpec:
    """An OMOP table seen as events."""

    table: str
    id_column: str
    start_column: str
    end_sql: str
    """End date in terms of the raw row ``t`` (Circe's default when the table's end is missing)."""
    concept_column: str | None
    source_column: str | None = None
    visit_column: str | None = "visit_occurrence_id"
    attributes: dict[str, Attr] = field(default_factory=dict)


def _common(*, visit_type_column: str = "V.visit_concept_id") -> dict[str, Attr]:
    return {
        "age": Attr("num", AGE),
        **_concepts("gender", "P.gender_concept_id"),
        **_concepts("provider_specialty", "PR.specialty_concept_id"),
        **_concepts("visit_type", visit_type_column),
        "occurrence_start_date": Attr("date", "C.start_date"),
        "occurrence_end_date": Attr("date", "C.end_date"),
    }


def _concepts(name: str, column: str) -> dict[str, Attr]:
    """A concept attribute and its concept-set twin (``<name>_cs``) on the same column, as Circe pairs them."""
    return {name: Attr("concepts", column), f"{name}_cs": Attr("cs", column)}


def _typed(prefix: str, column: str) -> dict[str, Attr]:
    return {
        f"{prefix}": Attr("concepts", f"C.{column}", exclude_flag=f"{prefix}_exclude"),
        f"{prefix}_cs": Attr("cs", f"C.{column}"),
        f"{prefix}_exclude": Attr("flag"),
    }


def _era(concept: str) -> dict[str, Attr]:
    return {
        "era_start_date": Attr("date", "C.start_date"),
        "era_end_date": Attr("date", "C.end_date"),
        "era_length": Attr("num", DURATION),
        "age_at_start": Attr("num", AGE),
        "age_at_end": Attr("num", AGE_AT_END),
        **_concepts("gender", "P.gender_concept_id"),
    }


DOMAINS: dict[type[Criterion], DomainSpec] = {
    ConditionOccurrence: DomainSpec(
        "condition_occurrence", "condition_occurrence_id", "condition_start_date",
        "COALESCE(t.condition_end_date, t.condition_start_date + 1)", "condition_concept_id",
        "condition_source_concept_id",
        attributes={
            **_common(), **_typed("condition_type", "condition_type_concept_id"),
            "stop_reason": Attr("text", "C.stop_reason"),
            "condition_source_concept": Attr("source"),
            **_concepts("condition_status", "C.condition_status_concept_id"),
        },
    ),
    DrugExposure: DomainSpec(
        "drug_exposure", "drug_exposure_id", "drug_exposure_start_date",
        "COALESCE(t.drug_exposure_end_date, t.drug_exposure_start_date + t.days_supply,"
        " t.drug_exposure_start_date + 1)",
        "drug_concept_id", "drug_source_concept_id",
        attributes={
            **_common(), **_typed("drug_type", "drug_type_concept_id"),
            "stop_reason": Attr("text", "C.stop_reason"),
            "refills": Attr("num", "C.refills"),
            "quantity": Attr("num", "C.quantity"),
            "days_supply": Attr("num", "C.days_supply"),
            **_concepts("route_concept", "C.route_concept_id"),
            "effective_drug_dose": Attr("num", "C.effective_drug_dose"),
            **_concepts("dose_unit", "C.dose_unit_concept_id"),
            "lot_number": Attr("text", "C.lot_number"),
            "drug_source_concept": Attr("source"),
        },
    ),
    ProcedureOccurrence: DomainSpec(
        "procedure_occurrence", "procedure_occurrence_id", "procedure_date", "t.procedure_date + 1",
        "procedure_concept_id", "procedure_source_concept_id",
        attributes={
            **_common(), **_typed("procedure_type", "procedure_type_concept_id"),
            **_concepts("modifier", "C.modifier_concept_id"),
            "quantity": Attr("num", "C.quantity"),
            "procedure_source_concept": Attr("source"),
        },
    ),
    Measurement: DomainSpec(
        "measurement", "measurement_id", "measurement_date", "t.measurement_date + 1",
        "measurement_concept_id", "measurement_source_concept_id",
        attributes={
            **_common(), **_typed("measurement_type", "measurement_type_concept_id"),
            **_concepts("operator", "C.operator_concept_id"),
            "value_as_number": Attr("num", "C.value_as_number"),
            **_concepts("value_as_concept", "C.value_as_concept_id"),
            **_concepts("unit", "C.unit_concept_id"),
            "range_low": Attr("num", "C.range_low"),
            "range_high": Attr("num", "C.range_high"),
            "range_low_ratio": Attr("num", "(C.value_as_number / NULLIF(C.range_low, 0))"),
            "range_high_ratio": Attr("num", "(C.value_as_number / NULLIF(C.range_high, 0))"),
            "abnormal": Attr("flag"),
            "measurement_source_concept": Attr("source"),
        },
    ),
    Observation: DomainSpec(
        "observation", "observation_id", "observation_date", "t.observation_date + 1",
        "observation_concept_id", "observation_source_concept_id",
        attributes={
            **_common(), **_typed("observation_type", "observation_type_concept_id"),
            "value_as_number": Attr("num", "C.value_as_number"),
            "value_as_string": Attr("text", "C.value_as_string"),
            **_concepts("value_as_concept", "C.value_as_concept_id"),
            **_concepts("qualifier", "C.qualifier_concept_id"),
            **_concepts("unit", "C.unit_concept_id"),
            "observation_source_concept": Attr("source"),
        },
    ),
    DeviceExposure: DomainSpec(
        "device_exposure", "device_exposure_id", "device_exposure_start_date",
        "COALESCE(t.device_exposure_end_date, t.device_exposure_start_date + 1)", "device_concept_id",
        "device_source_concept_id",
        attributes={
            **_common(), **_typed("device_type", "device_type_concept_id"),
            "unique_device_id": Attr("text", "C.unique_device_id"),
            "quantity": Attr("num", "C.quantity"),
            "device_source_concept": Attr("source"),
        },
    ),
    VisitOccurrence: DomainSpec(
        "visit_occurrence", "visit_occurrence_id", "visit_start_date", "t.visit_end_date", "visit_concept_id",
        "visit_source_concept_id",
        attributes={
            **_common(visit_type_column="C.visit_type_concept_id"),
            "visit_type_exclude": Attr("flag"),
            "visit_source_concept": Attr("source"),
            "visit_length": Attr("num", DURATION),
            **_concepts("place_of_service", "CS.place_of_service_concept_id"),
            "place_of_service_location": Attr("flag"),
        },
    ),
    VisitDetail: DomainSpec(
        "visit_detail", "visit_detail_id", "visit_detail_start_date", "t.visit_detail_end_date",
        "visit_detail_concept_id", "visit_detail_source_concept_id",
        attributes={
            "visit_detail_start_date": Attr("date", "C.start_date"),
            "visit_detail_end_date": Attr("date", "C.end_date"),
            "visit_detail_type_cs": Attr("cs", "C.visit_detail_type_concept_id"),
            "visit_detail_source_concept": Attr("source"),
            "visit_detail_length": Attr("num", DURATION),
            "age": Attr("num", AGE),
            "gender_cs": Attr("cs", "P.gender_concept_id"),
            "provider_specialty_cs": Attr("cs", "PR.specialty_concept_id"),
            "place_of_service_cs": Attr("cs", "CS.place_of_service_concept_id"),
            "place_of_service_location": Attr("flag"),
        },
    ),
    Death: DomainSpec(
        "death", "person_id", "death_date", "t.death_date + 1", "cause_concept_id", "cause_source_concept_id",
        visit_column=None,
        attributes={
            "age": Attr("num", AGE),
            **_concepts("gender", "P.gender_concept_id"),
            "occurrence_start_date": Attr("date", "C.start_date"),
            **_typed("death_type", "death_type_concept_id"),
            "death_source_concept": Attr("source"),
        },
    ),
    Specimen: DomainSpec(
        "specimen", "specimen_id", "specimen_date", "t.specimen_date + 1", "specimen_concept_id",
        "specimen_source_concept_id", visit_column=None,
        attributes={
            "age": Attr("num", AGE),
            **_concepts("gender", "P.gender_concept_id"),
            "occurrence_start_date": Attr("date", "C.start_date"),
            **_typed("specimen_type", "specimen_type_concept_id"),
            "quantity": Attr("num", "C.quantity"),
            **_concepts("unit", "C.unit_concept_id"),
            **_concepts("anatomic_site", "C.anatomic_site_concept_id"),
            **_concepts("disease_status", "C.disease_status_concept_id"),
            "source_id": Attr("text", "C.specimen_source_id"),
            "specimen_source_concept": Attr("source"),
        },
    ),
    ConditionEra: DomainSpec(
        "condition_era", "condition_era_id", "condition_era_start_date", "t.condition_era_end_date",
        "condition_concept_id", visit_column=None,
        attributes={**_era("condition"), "occurrence_count": Attr("num", "C.condition_occurrence_count")},
    ),
    DrugEra: DomainSpec(
        "drug_era", "drug_era_id", "drug_era_start_date", "t.drug_era_end_date", "drug_concept_id",
        visit_column=None,
        attributes={
            **_era("drug"),
            "occurrence_count": Attr("num", "C.drug_exposure_count"),
            "gap_days": Attr("num", "C.gap_days"),
        },
    ),
    DoseEra: DomainSpec(
        "dose_era", "dose_era_id", "dose_era_start_date", "t.dose_era_end_date", "drug_concept_id",
        visit_column=None,
        attributes={
            **_era("drug"),
            **_concepts("unit", "C.unit_concept_id"),
            "dose_value": Attr("num", "C.dose_value"),
        },
    ),
    ObservationPeriod: DomainSpec(
        "observation_period", "observation_period_id", "observation_period_start_date",
        "t.observation_period_end_date", None, visit_column=None,
        attributes={
            "period_start_date": Attr("date", "C.start_date"),
            "period_end_date": Attr("date", "C.end_date"),
            "period_length": Attr("num", DURATION),
            "age_at_start": Attr("num", AGE),
            "age_at_end": Attr("num", AGE_AT_END),
            **_concepts("period_type", "C.period_type_concept_id"),
            "user_defined_period": Attr("flag"),
        },
    ),
    PayerPlanPeriod: DomainSpec(
        "payer_plan_period", "payer_plan_period_id", "payer_plan_period_start_date",
        "t.payer_plan_period_end_date", None, visit_column=None,
        attributes={
            "period_start_date": Attr("date", "C.start_date"),
            "period_end_date": Attr("date", "C.end_date"),
            "period_length": Attr("num", DURATION),
            "age_at_start": Attr("num", AGE),
            "age_at_end": Attr("num", AGE_AT_END),
            **_concepts("gender", "P.gender_concept_id"),
            "user_defined_period": Attr("flag"),
            **{
                name: Attr("codeset_in", f"C.{name}_id")
                for name in (
                    "payer_concept", "plan_concept", "sponsor_concept", "stop_reason_concept",
                    "payer_source_concept", "plan_source_concept", "sponsor_source_concept",
                    "stop_reason_source_concept",
                )
            },
        },
    ),
}  # fmt: skip
"""Every domain the compiler handles. A criteria class absent from here is refused."""

_BASE_FIELDS = {"kind", "codeset_id", "first", "correlated_criteria", "date_adjustment"}
_JOINS = {
    "P.": "JOIN person P ON C.person_id = P.person_id",
    "V.": "JOIN visit_occurrence V ON C.visit_occurrence_id = V.visit_occurrence_id AND C.person_id = V.person_id",
    "PR.": "LEFT JOIN provider PR ON C.provider_id = PR.provider_id",
    "CS.": "JOIN care_site CS ON C.care_site_id = CS.care_site_id",
}

ExtraColumn = Callable[[DomainSpec], str]
COUNT_COLUMNS: dict[str, str] = {
    "DOMAIN_CONCEPT": "C.domain_concept_id",
    "START_DATE": "C.start_date",
    "VISIT_ID": "C.visit_occurrence_id",
}


_COMPUTED = {"start_date", "end_date", "raw_start", "raw_end", "domain_concept_id", "ordinal"}
_COLUMN = re.compile(r"\bC\.([a-z_]+)")


@cache
def table_columns(table: str) -> frozenset[str]:
    """Columns of an OMOP CDM v5.4 table (empty when the table is not part of the CDM)."""
    if table not in set(cdm_tables()):
        return frozenset()
    return frozenset(f.name for f in cdm_table(table).fields)


def check_region_support(where: str) -> None:
    """Refuse location-region criteria: they need columns OMOP CDM v5.4 does not have."""
    if "region_concept_id" not in table_columns("location") or not table_columns("location_history"):
        raise UnsupportedConstruct(
            f"{where}: location regions need location.region_concept_id and the location_history table,"
            " which OMOP CDM v5.4 does not have"
        )


class DomainCompiler:
    """Compile criteria nodes into event queries (the visitor over the domain classes)."""

    def __init__(self, codesets: str) -> None:
        self.codesets = codesets

    def events(self, node: Criterion, where: str) -> str:
        """SQL of the events a criterion selects.

        Columns: person_id, event_id, start_date, end_date, visit_occurrence_id, sort_date, domain_concept_id.

        Raises ``UnsupportedConstruct`` naming the node (and ``where`` it is) when it cannot be compiled.
        """
        if isinstance(node, LocationRegion):
            return self._location_region(node, where)
        if isinstance(node, OncologyCriterion):
            return oncology_events(node, where, self.codesets)
        spec = DOMAINS.get(type(node))
        if spec is None:
            raise UnsupportedConstruct(f"{where}: criteria type {type(node).__name__} is not supported by the compiler")
        values = {name: getattr(node, name) for name in type(node).model_fields if getattr(node, name) is not None}
        unknown = sorted(set(values) - _BASE_FIELDS - set(spec.attributes))
        if unknown:
            raise UnsupportedConstruct(
                f"{where}: attribute(s) {', '.join(unknown)} of {type(node).__name__} are not supported by the compiler"
            )
        start, end = f"t.{spec.start_column}", spec.end_sql
        adjustment = node.date_adjustment
        raw_start, raw_end = start, end
        if adjustment is not None:
            start = shift(raw_start if adjustment.start_with == "START_DATE" else raw_end, adjustment.start_offset)
            end = shift(raw_start if adjustment.end_with == "START_DATE" else raw_end, adjustment.end_offset)
        user_period = getattr(node, "user_defined_period", None)
        if user_period is not None:
            if user_period.start_date is not None:
                start = date_literal(user_period.start_date)
            if user_period.end_date is not None:
                end = date_literal(user_period.end_date)

        inner_where: list[str] = []
        codeset_id = getattr(node, "codeset_id", None)
        if codeset_id is not None:
            if spec.concept_column is None:
                raise UnsupportedConstruct(f"{where}: {type(node).__name__} has no concept to match a codeset against")
            inner_where.append(in_codeset(f"t.{spec.concept_column}", codeset_id, self.codesets))
        clauses: list[str] = []
        for name, value in values.items():
            if name in _BASE_FIELDS:
                continue
            attr = spec.attributes[name]
            missing = sorted(set(_COLUMN.findall(attr.expression)) - _COMPUTED - table_columns(spec.table))
            if missing:
                raise UnsupportedConstruct(
                    f"{where}.{name}: column(s) {', '.join(missing)} of {spec.table} are not in OMOP CDM v5.4"
                )
            clauses.extend(self._attribute(node, name, value, attr, spec, inner_where, where))
        if adjustment is not None:
            clauses.append("C.end_date >= C.start_date")
        if user_period is not None:
            # the period must contain the user-defined dates (Circe's ObservationPeriod/PayerPlanPeriod rule)
            for bound in (user_period.start_date, user_period.end_date):
                if bound is not None:
                    literal = date_literal(bound)
                    clauses.append(f"C.raw_start <= {literal} AND C.raw_end >= {literal}")
        ordinal = ""
        if getattr(node, "first", None):
            ordinal = (
                f", ROW_NUMBER() OVER (PARTITION BY t.person_id ORDER BY t.{spec.start_column}, t.{spec.id_column})"
                " AS ordinal"
            )
            clauses.append("C.ordinal = 1")
        joins = [join for prefix, join in _JOINS.items() if any(prefix in clause for clause in clauses)]
        if getattr(node, "place_of_service_location", None) is not None:
            check_region_support(f"{where}.place_of_service_location")
            joins.extend(self._location_joins(node, spec))
        visit = f"C.{spec.visit_column}" if spec.visit_column else "CAST(NULL AS BIGINT)"
        concept = f"t.{spec.concept_column}" if spec.concept_column else "CAST(NULL AS BIGINT)"
        inner = (
            f"SELECT t.*, {start} AS start_date, {end} AS end_date, {raw_start} AS raw_start, {raw_end} AS raw_end, "
            f"{concept} AS domain_concept_id{ordinal} FROM {spec.table} t"
            + (f" WHERE {' AND '.join(inner_where)}" if inner_where else "")
        )
        return (
            f"SELECT C.person_id, CAST(C.{spec.id_column} AS BIGINT) AS event_id, C.start_date, C.end_date, "
            f"CAST({visit} AS BIGINT) AS visit_occurrence_id, C.start_date AS sort_date, "
            f"CAST(C.domain_concept_id AS BIGINT) AS domain_concept_id "
            f"FROM ({inner}) C " + " ".join(joins) + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
        )

    def _attribute(
        self, node: Criterion, name: str, value: object, attr: Attr, spec: DomainSpec,
        inner_where: list[str], where: str,
    ) -> list[str]:  # fmt: skip
        here = f"{where}.{name}"
        if attr.kind == "concepts":
            exclude = bool(getattr(node, attr.exclude_flag, False)) if attr.exclude_flag else False
            concepts = value if isinstance(value, list) else []
            if not concepts:
                return []  # Circe treats an empty concept list as no filter
            return [in_concepts(attr.expression, (c.concept_id for c in concepts), exclude=exclude)]
        if attr.kind == "cs" and isinstance(value, ConceptSetSelection):
            return [selection_clause(attr.expression, value, self.codesets)]
        if attr.kind == "date" and isinstance(value, DateRange):
            return [date_clause(attr.expression, value, here)]
        if attr.kind == "num" and isinstance(value, NumericRange):
            return [numeric_clause(attr.expression, value, here)]
        if attr.kind == "text" and isinstance(value, TextFilter):
            return [text_clause(attr.expression, value, here)]
        if attr.kind == "source" and isinstance(value, int):
            inner_where.append(in_codeset(f"t.{spec.source_column}", value, self.codesets))
            return []
        if attr.kind == "codeset_in" and isinstance(value, int):
            return [in_codeset(attr.expression, value, self.codesets)]
        if attr.kind == "flag":
            if name == "abnormal" and value:
                return ["(C.value_as_number < C.range_low OR C.value_as_number > C.range_high "
                        "OR C.value_as_concept_id IN (4155142, 4155143))"]  # fmt: skip
            return []  # consumed elsewhere (exclude flags, user-defined period, location)
        raise UnsupportedConstruct(f"{here}: value {value!r} cannot be compiled as a {attr.kind} filter")

    def _location_joins(self, node: Criterion, spec: DomainSpec) -> list[str]:
        codeset_id = getattr(node, "place_of_service_location", None)
        return [
            "JOIN location_history LH ON LH.entity_id = C.care_site_id AND LH.domain_id = 'CARE_SITE' "
            "AND C.raw_start >= LH.start_date AND C.raw_end <= COALESCE(LH.end_date, DATE '2099-12-31')",
            "JOIN location LOC ON LOC.location_id = LH.location_id AND "
            + in_codeset("LOC.region_concept_id", int(codeset_id or 0), self.codesets),
        ]

    def _location_region(self, node: LocationRegion, where: str) -> str:
        check_region_support(where)
        codeset = (
            f" AND {in_codeset('l.region_concept_id', node.codeset_id, self.codesets)}"
            if node.codeset_id is not None
            else ""
        )
        if node.date_adjustment is not None:
            raise UnsupportedConstruct(f"{where}.date_adjustment: not supported on LocationRegion")
        return (
            "SELECT lh.entity_id AS person_id, CAST(lh.location_history_id AS BIGINT) AS event_id, "
            "lh.start_date AS start_date, COALESCE(lh.end_date, DATE '2099-12-31') AS end_date, "
            "CAST(NULL AS BIGINT) AS visit_occurrence_id, lh.start_date AS sort_date, "
            "CAST(l.region_concept_id AS BIGINT) AS domain_concept_id "
            "FROM location l JOIN location_history lh ON l.location_id = lh.location_id "
            f"WHERE lh.domain_id = 'PERSON'{codeset}"
        )
