"""Criteria nodes: one small class per OMOP domain, plus the groups that combine them.

A criterion selects records of one domain (its events: person, start, end, visit) filtered by
attributes. Criteria appear as entry events, inside correlated criteria (windowed relative to an
index event), and as censoring events. ``kind`` names the class (Circe's key for it).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, field_validator

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


# -- Oncology criteria (Massalia's own: Circe has no equivalent, ``to_circe`` refuses them) ----------------

Modality = Literal["chemotherapy", "targeted", "immunotherapy", "hormone"]
_TOPOGRAPHY = re.compile(r"C[0-9]{2}(\.[0-9])?")
_HISTOLOGY = re.compile(r"[0-9]{3,4}(/[0-9])?")


class OncologyCriterion(Criterion):
    """Base of the oncology criteria: records of the OMOP oncology extension, seen as events.

    Each has the person filters (age at the record, gender) and the record's date; ``first`` keeps
    the person's earliest record of that kind (over all such records, before any other filter).
    """

    first: bool | None = None
    age: NumericRange | None = None
    gender: Concepts | None = None
    occurrence_start_date: DateRange | None = None

    circe_refusal: ClassVar[str] = ""
    """Why Circe cannot express the criterion (named by ``to_circe`` when it refuses it)."""


class CancerDiagnosis(OncologyCriterion):
    """A cancer diagnosis: the condition record of a disease episode (EPISODE 32528, the tumour record).

    ``codeset_id`` matches the diagnosis concept (ICD-O-3 or SNOMED concept sets); ``topography``,
    ``histology`` and ``behaviour`` match the ICD-O-3 code of the diagnosis (``8500/3-C50.9``: from the
    ICDO3 condition concept, else its ICDO3 source concept, else an ICD-O-3 shaped source value).
    ``first``: the person's first cancer; ``age``: age at diagnosis; ``occurrence_start_date``: the
    diagnosis date.
    """

    kind: Literal["CancerDiagnosis"] = "CancerDiagnosis"
    codeset_id: int | None = None
    topography: list[str] | None = None
    """ICD-O-3 topography codes or prefixes: ``C50`` (any breast site), ``C34.1``."""
    histology: list[str] | None = None
    """ICD-O-3 morphology codes or prefixes: ``8500/3``, ``8140``, ``814`` (any of them)."""
    behaviour: list[Literal["0", "1", "2", "3", "6", "9"]] | None = None
    """ICD-O-3 behaviour digits (``3`` malignant primary, ``6`` metastatic, ``2`` in situ)."""

    circe_refusal: ClassVar[str] = (
        "Circe has no criterion for the tumour record of a disease episode, nor for ICD-O-3 topography/histology"
    )

    @field_validator("topography")
    @classmethod
    def _topography_codes(cls, codes: list[str] | None) -> list[str] | None:
        for code in codes or []:
            if not _TOPOGRAPHY.fullmatch(code):
                raise ValueError(f"topography {code!r} is not an ICD-O-3 topography code such as C50 or C50.9")
        return codes

    @field_validator("histology")
    @classmethod
    def _histology_codes(cls, codes: list[str] | None) -> list[str] | None:
        for code in codes or []:
            if not _HISTOLOGY.fullmatch(code):
                raise ValueError(f"histology {code!r} is not an ICD-O-3 morphology code such as 8500/3 or 8500")
        return codes


class TnmStage(OncologyCriterion):
    """A TNM category or stage group, as cancer-modifier MEASUREMENT rows linked to the tumour record.

    ``axis`` picks T, N, M or the stage ``group``; ``value`` compares its rank: T0/Tis = 0 … T4 = 4,
    N0 … N3, M0 = 0 / M1 = 1, stage 0 … IV = 4 (so "stage ≥ III" is ``{"op": "gte", "value": 3}``,
    "N+" is ``{"op": "gte", "value": 1}``). ``staging`` restricts to clinical (cTNM) or pathological
    (pTNM) records. ``cancer_codeset_id`` restricts to stages of tumours whose diagnosis concept is in
    that concept set.
    """

    kind: Literal["TnmStage"] = "TnmStage"
    axis: Literal["T", "N", "M", "group"]
    value: NumericRange | None = None
    staging: Literal["clinical", "pathological"] | None = None
    codeset_id: int | None = None
    cancer_codeset_id: int | None = None

    circe_refusal: ClassVar[str] = (
        "Circe cannot rank TNM categories nor follow measurement_event_id from a cancer modifier to its tumour"
    )


class Biomarker(OncologyCriterion):
    """A biomarker result (MEASUREMENT): marker concept set and/or source code, status, value.

    ``status`` is shorthand for ``value_as_concept`` Positive (9191) / Negative (9189);
    ``value_as_number`` compares a quantitative result (e.g. PD-L1 ≥ 50 %). ``marker_source_value``
    matches the source code (for markers the vocabulary lacks). ``cancer_codeset_id`` restricts to
    results linked to a tumour whose diagnosis concept is in that concept set.
    """

    kind: Literal["Biomarker"] = "Biomarker"
    codeset_id: int | None = None
    marker_source_value: TextFilter | None = None
    status: Literal["positive", "negative"] | None = None
    value_as_concept: Concepts | None = None
    value_as_number: NumericRange | None = None
    cancer_codeset_id: int | None = None

    circe_refusal: ClassVar[str] = (
        "Circe has no biomarker criterion (status shorthand, source-code match, link to the tumour record)"
    )


class TreatmentLine(OncologyCriterion):
    """A treatment episode (EPISODE 32531, written by the ETL): a line of therapy or a regimen outside one.

    ``line`` compares ``episode_number`` (the line; regimens outside a line have none and never match
    a ``line`` filter); ``codeset_id``: at least one of its administrations is a drug of that concept
    set (its regimen / ingredients); ``modality``: it holds at least one of these modalities;
    ``occurrence_start_date`` / ``occurrence_end_date``: its first / last administration.
    """

    kind: Literal["TreatmentLine"] = "TreatmentLine"
    line: NumericRange | None = None
    codeset_id: int | None = None
    modality: list[Modality] | None = None
    occurrence_end_date: DateRange | None = None

    circe_refusal: ClassVar[str] = "Circe has no criterion on EPISODE rows (lines of therapy)"


class DiseaseProgression(OncologyCriterion):
    """A progression or recurrence episode (EPISODE 32677 "Disease Progression" or 32529 "Disease Recurrence").

    ``number`` compares ``episode_number`` (1 = the person's first progression); the date is the
    episode's start (the first diagnosis showing it).
    """

    kind: Literal["DiseaseProgression"] = "DiseaseProgression"
    number: NumericRange | None = None

    circe_refusal: ClassVar[str] = "Circe has no criterion on EPISODE rows (disease progression / recurrence)"


NoteLabel = Literal[
    "cancer", "histology", "tnm", "stage", "biomarker", "drug", "date", "metastasis", "comorbidity", "procedure",
    "adverse_event", "ecog", "progression",
]  # fmt: skip
_NOTE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9:./ -]{0,63}")


class NoteFinding(OncologyCriterion):
    """A finding of the clinical NLP pipeline in a note (NOTE_NLP), with its qualifiers.

    ``codeset_id`` matches ``note_nlp_concept_id``; ``label`` the finding's type (``biomarker``, ``cancer``...);
    ``value`` its value exactly (``her2:positive``, ``C50``, an ECOG score ``2``...). The qualifiers default to
    what a cohort usually means by "the patient has it": not negated, not hypothetical, not about a relative
    (``false``); ``null`` accepts both, ``true`` asks for it (e.g. ``family: true`` for a family history).
    The date is the note's date; ``first`` keeps the person's first such finding.
    """

    kind: Literal["NoteFinding"] = "NoteFinding"
    codeset_id: int | None = None
    label: NoteLabel | None = None
    value: list[str] | None = Field(default=None, max_length=50)
    negated: bool | None = False
    hypothesis: bool | None = False
    family: bool | None = False
    history: bool | None = None

    circe_refusal: ClassVar[str] = "Circe has no criterion on NOTE_NLP findings and their qualifiers"

    @field_validator("value")
    @classmethod
    def _values(cls, values: list[str] | None) -> list[str] | None:
        for value in values or []:
            if not _NOTE_VALUE.fullmatch(value):
                raise ValueError(f"value {value!r} is not a finding value such as her2:positive, C50 or 2")
        return values


ONCOLOGY_CLASSES: tuple[type[OncologyCriterion], ...] = (
    CancerDiagnosis,
    TnmStage,
    Biomarker,
    TreatmentLine,
    DiseaseProgression,
    NoteFinding,
)
"""Massalia's oncology criteria (no Circe equivalent)."""


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
        | LocationRegion
        | CancerDiagnosis
        | TnmStage
        | Biomarker
        | TreatmentLine
        | DiseaseProgression
        | NoteFinding,
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


_MODELS: tuple[type[Node], ...] = (Criterion, *CRITERIA_CLASSES, *ONCOLOGY_CLASSES)
for _cls in _MODELS:
    _cls.model_rebuild()
