"""Criteria nodes: one small class per OMOP domain, plus the groups that combine them.

A criterion selects records of one domain (its events: person, start, end, visit) filtered by
attributes. Criteria appear as entry events, inside correlated criteria (windowed relative to an
index event), and as censoring events. ``kind`` names the class (Circe's key for it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from massalia.health.cohorts.nodes import (
    Concept,
    ConceptSetSelection,
    DateAdjustment,
    DateRange,
    Node,
    NumericRange,
    Occurrence,
    Period,
    TextFilter,
    Window,
)

Concepts = list[Concept]


class Criterion(Node):
    """Base of the domain criteria: nested correlated criteria and a date adjustment apply to all."""

    kind: str
    correlated_criteria: CriteriaGroup | None = None
    date_adjustment: DateAdjustment | None = None


class _Coded(Criterion):
    codeset_id: int | None = None
    first: bool | None = None


class _PersonFilters(Criterion):
    age: NumericRange | None = None
    gender: Concepts | None = None
    gender_cs: ConceptSetSelection | None = None


class _CareFilters(Criterion):
    provider_specialty: Concepts | None = None
    provider_specialty_cs: ConceptSetSelection | None = None
    visit_type: Concepts | None = None
    visit_type_cs: ConceptSetSelection | None = None


class ConditionOccurrence(_Coded, _PersonFilters, _CareFilters):
    """Condition occurrences (``condition_occurrence``)."""

    kind: Literal["ConditionOccurrence"] = "ConditionOccurrence"
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None
    condition_type: Concepts | None = None
    condition_type_cs: ConceptSetSelection | None = None
    condition_type_exclude: bool | None = None
    stop_reason: TextFilter | None = None
    condition_source_concept: int | None = None
    condition_status: Concepts | None = None
    condition_status_cs: ConceptSetSelection | None = None


class DrugExposure(_Coded, _PersonFilters, _CareFilters):
    """Drug exposures (``drug_exposure``)."""

    kind: Literal["DrugExposure"] = "DrugExposure"
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None
    drug_type: Concepts | None = None
    drug_type_cs: ConceptSetSelection | None = None
    drug_type_exclude: bool | None = None
    stop_reason: TextFilter | None = None
    refills: NumericRange | None = None
    quantity: NumericRange | None = None
    days_supply: NumericRange | None = None
    route_concept: Concepts | None = None
    route_concept_cs: ConceptSetSelection | None = None
    effective_drug_dose: NumericRange | None = None
    dose_unit: Concepts | None = None
    dose_unit_cs: ConceptSetSelection | None = None
    lot_number: TextFilter | None = None
    drug_source_concept: int | None = None


class ProcedureOccurrence(_Coded, _PersonFilters, _CareFilters):
    """Procedures (``procedure_occurrence``)."""

    kind: Literal["ProcedureOccurrence"] = "ProcedureOccurrence"
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None
    procedure_type: Concepts | None = None
    procedure_type_cs: ConceptSetSelection | None = None
    procedure_type_exclude: bool | None = None
    modifier: Concepts | None = None
    modifier_cs: ConceptSetSelection | None = None
    quantity: NumericRange | None = None
    procedure_source_concept: int | None = None


class Measurement(_Coded, _PersonFilters, _CareFilters):
    """Measurements (``measurement``): values, units, normal ranges, abnormal flags."""

    kind: Literal["Measurement"] = "Measurement"
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None
    measurement_type: Concepts | None = None
    measurement_type_cs: ConceptSetSelection | None = None
    measurement_type_exclude: bool | None = None
    operator: Concepts | None = None
    operator_cs: ConceptSetSelection | None = None
    value_as_number: NumericRange | None = None
    value_as_concept: Concepts | None = None
    value_as_concept_cs: ConceptSetSelection | None = None
    unit: Concepts | None = None
    unit_cs: ConceptSetSelection | None = None
    range_low: NumericRange | None = None
    range_high: NumericRange | None = None
    range_low_ratio: NumericRange | None = None
    range_high_ratio: NumericRange | None = None
    abnormal: bool | None = None
    measurement_source_concept: int | None = None


class Observation(_Coded, _PersonFilters, _CareFilters):
    """Observations (``observation``)."""

    kind: Literal["Observation"] = "Observation"
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None
    observation_type: Concepts | None = None
    observation_type_cs: ConceptSetSelection | None = None
    observation_type_exclude: bool | None = None
    value_as_number: NumericRange | None = None
    value_as_string: TextFilter | None = None
    value_as_concept: Concepts | None = None
    value_as_concept_cs: ConceptSetSelection | None = None
    qualifier: Concepts | None = None
    qualifier_cs: ConceptSetSelection | None = None
    unit: Concepts | None = None
    unit_cs: ConceptSetSelection | None = None
    observation_source_concept: int | None = None


class DeviceExposure(_Coded, _PersonFilters, _CareFilters):
    """Device exposures (``device_exposure``)."""

    kind: Literal["DeviceExposure"] = "DeviceExposure"
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None
    device_type: Concepts | None = None
    device_type_cs: ConceptSetSelection | None = None
    device_type_exclude: bool | None = None
    unique_device_id: TextFilter | None = None
    quantity: NumericRange | None = None
    device_source_concept: int | None = None


class VisitOccurrence(_Coded, _PersonFilters):
    """Visits (``visit_occurrence``); ``visit_type`` here is the visit's type concept."""

    kind: Literal["VisitOccurrence"] = "VisitOccurrence"
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None
    visit_type: Concepts | None = None
    visit_type_cs: ConceptSetSelection | None = None
    visit_type_exclude: bool | None = None
    visit_source_concept: int | None = None
    visit_length: NumericRange | None = None
    provider_specialty: Concepts | None = None
    provider_specialty_cs: ConceptSetSelection | None = None
    place_of_service: Concepts | None = None
    place_of_service_cs: ConceptSetSelection | None = None
    place_of_service_location: int | None = None


class VisitDetail(_Coded):
    """Visit details (``visit_detail``); as in Circe, concept filters are concept-set selections."""

    kind: Literal["VisitDetail"] = "VisitDetail"
    visit_detail_start_date: DateRange | None = None
    visit_detail_end_date: DateRange | None = None
    visit_detail_type_cs: ConceptSetSelection | None = None
    visit_detail_source_concept: int | None = None
    visit_detail_length: NumericRange | None = None
    age: NumericRange | None = None
    gender_cs: ConceptSetSelection | None = None
    provider_specialty_cs: ConceptSetSelection | None = None
    place_of_service_cs: ConceptSetSelection | None = None
    place_of_service_location: int | None = None


class Death(_PersonFilters):
    """Deaths (``death``); the cause concept is matched against the codeset."""

    kind: Literal["Death"] = "Death"
    codeset_id: int | None = None
    occurrence_start_date: DateRange | None = None
    death_type: Concepts | None = None
    death_type_cs: ConceptSetSelection | None = None
    death_type_exclude: bool | None = None
    death_source_concept: int | None = None


class Specimen(_Coded, _PersonFilters):
    """Specimens (``specimen``)."""

    kind: Literal["Specimen"] = "Specimen"
    occurrence_start_date: DateRange | None = None
    specimen_type: Concepts | None = None
    specimen_type_cs: ConceptSetSelection | None = None
    specimen_type_exclude: bool | None = None
    quantity: NumericRange | None = None
    unit: Concepts | None = None
    unit_cs: ConceptSetSelection | None = None
    anatomic_site: Concepts | None = None
    anatomic_site_cs: ConceptSetSelection | None = None
    disease_status: Concepts | None = None
    disease_status_cs: ConceptSetSelection | None = None
    source_id: TextFilter | None = None
    specimen_source_concept: int | None = None


class _Era(_Coded):
    era_start_date: DateRange | None = None
    era_end_date: DateRange | None = None
    era_length: NumericRange | None = None
    age_at_start: NumericRange | None = None
    age_at_end: NumericRange | None = None
    gender: Concepts | None = None
    gender_cs: ConceptSetSelection | None = None


class ConditionEra(_Era):
    """Condition eras (``condition_era``)."""

    kind: Literal["ConditionEra"] = "ConditionEra"
    occurrence_count: NumericRange | None = None


class DrugEra(_Era):
    """Drug eras (``drug_era``)."""

    kind: Literal["DrugEra"] = "DrugEra"
    occurrence_count: NumericRange | None = None
    gap_days: NumericRange | None = None


class DoseEra(_Era):
    """Dose eras (``dose_era``)."""

    kind: Literal["DoseEra"] = "DoseEra"
    unit: Concepts | None = None
    unit_cs: ConceptSetSelection | None = None
    dose_value: NumericRange | None = None


class _Period(Criterion):
    first: bool | None = None
    period_start_date: DateRange | None = None
    period_end_date: DateRange | None = None
    user_defined_period: Period | None = None
    period_length: NumericRange | None = None
    age_at_start: NumericRange | None = None
    age_at_end: NumericRange | None = None


class ObservationPeriod(_Period):
    """Observation periods (``observation_period``), optionally replaced by a user-defined period."""

    kind: Literal["ObservationPeriod"] = "ObservationPeriod"
    period_type: Concepts | None = None
    period_type_cs: ConceptSetSelection | None = None


class PayerPlanPeriod(_Period):
    """Payer plan periods (``payer_plan_period``); concept attributes are codeset ids."""

    kind: Literal["PayerPlanPeriod"] = "PayerPlanPeriod"
    gender: Concepts | None = None
    gender_cs: ConceptSetSelection | None = None
    payer_concept: int | None = None
    plan_concept: int | None = None
    sponsor_concept: int | None = None
    stop_reason_concept: int | None = None
    payer_source_concept: int | None = None
    plan_source_concept: int | None = None
    sponsor_source_concept: int | None = None
    stop_reason_source_concept: int | None = None


class LocationRegion(Criterion):
    """Periods a person lived in a region (``location_history`` joined to ``location``)."""

    kind: Literal["LocationRegion"] = "LocationRegion"
    codeset_id: int | None = None


CRITERIA_CLASSES: tuple[type[Criterion], ...] = (
    ConditionOccurrence,
    ConditionEra,
    DrugExposure,
    DrugEra,
    DoseEra,
    ProcedureOccurrence,
    Measurement,
    Observation,
    VisitOccurrence,
    VisitDetail,
    Death,
    DeviceExposure,
    Specimen,
    ObservationPeriod,
    PayerPlanPeriod,
    LocationRegion,
)
"""Every domain criterion, in Circe's order."""

CRITERIA_BY_KIND: dict[str, type[Criterion]] = {cls.model_fields["kind"].default: cls for cls in CRITERIA_CLASSES}


def _unwrap_criterion(value: Any) -> Any:
    """Accept Circe's wrapper (``{"ConditionOccurrence": {...}}``) as well as ``{"kind": ...}``."""
    if isinstance(value, dict) and "kind" not in value and len(value) == 1:
        ((key, body),) = value.items()
        if key in CRITERIA_BY_KIND and isinstance(body, dict):
            return {"kind": key, **body}
        raise ValueError(f"unsupported criteria type {key!r} (supported: {', '.join(CRITERIA_BY_KIND)})")
    return value


AnyCriterion = Annotated[
    Annotated[
        ConditionOccurrence
        | ConditionEra
        | DrugExposure
        | DrugEra
        | DoseEra
        | ProcedureOccurrence
        | Measurement
        | Observation
        | VisitOccurrence
        | VisitDetail
        | Death
        | DeviceExposure
        | Specimen
        | ObservationPeriod
        | PayerPlanPeriod
        | LocationRegion,
        Field(discriminator="kind"),
    ],
    BeforeValidator(_unwrap_criterion),
]


class CorrelatedCriteria(Node):
    """A criterion counted in a window around the index event (Circe's ``CorelatedCriteria``)."""

    criteria: AnyCriterion | None = None  # None only in drafts: lint reports it, the compiler refuses it
    start_window: Window = Field(default_factory=Window)
    end_window: Window | None = None
    restrict_visit: bool = False
    ignore_observation_period: bool = False
    occurrence: Occurrence = Field(default_factory=Occurrence)


class DemographicCriteria(Node):
    """Demographic conditions on the person at the index event."""

    age: NumericRange | None = None
    gender: Concepts | None = None
    gender_cs: ConceptSetSelection | None = None
    race: Concepts | None = None
    race_cs: ConceptSetSelection | None = None
    ethnicity: Concepts | None = None
    ethnicity_cs: ConceptSetSelection | None = None
    occurrence_start_date: DateRange | None = None
    occurrence_end_date: DateRange | None = None


class CriteriaGroup(Node):
    """Criteria, demographic criteria and sub-groups combined with ALL / ANY / AT_LEAST n / AT_MOST n."""

    type: Literal["ALL", "ANY", "AT_LEAST", "AT_MOST"] = "ALL"
    count: int | None = None
    criteria_list: list[CorrelatedCriteria] = Field(default_factory=list)
    demographic_criteria_list: list[DemographicCriteria] = Field(default_factory=list)
    groups: list[CriteriaGroup] = Field(default_factory=list)

    def is_empty(self) -> bool:
        """Whether the group holds nothing (an empty group accepts every event, as in Circe)."""
        return not (self.criteria_list or self.demographic_criteria_list or self.groups)


for _cls in (Criterion, *CRITERIA_CLASSES):
    _cls.model_rebuild()
