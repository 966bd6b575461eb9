"""Health's quality checks: DataQualityDashboard's check types (the OMOP CDM's own) and the oncology rules.

The registry itself is the core's (:class:`massalia.quality.registry.CheckRegistry`); health registers
its checks into it when its plug-in contributes (:mod:`massalia.health.plugin`) or when
:func:`default_registry` is asked for one, never as an import side effect.
"""

from __future__ import annotations

from dataclasses import replace

from massalia.health.quality import checks as dqd
from massalia.health.quality import concept_checks as concept
from massalia.health.quality.definitions import check_descriptions, instantiate
from massalia.health.quality.oncology import register_oncology_rules
from massalia.quality.checks import CheckType
from massalia.quality.definitions import CheckDescription
from massalia.quality.registry import CheckRegistry

__all__ = ["DQD_CHECK_TYPES", "CheckRegistry", "default_registry", "dqd_description", "register_dqd_check"]

DQD_CHECK_TYPES: tuple[type[CheckType], ...] = (
    dqd.CdmTable,
    dqd.MeasurePersonCompleteness,
    dqd.MeasureConditionEraCompleteness,
    dqd.MeasureObservationPeriodOverlap,
    dqd.CdmField,
    dqd.IsRequired,
    dqd.CdmDatatype,
    dqd.IsPrimaryKey,
    dqd.IsForeignKey,
    dqd.FkDomain,
    dqd.FkClass,
    dqd.IsStandardValidConcept,
    dqd.MeasureValueCompleteness,
    dqd.StandardConceptRecordCompleteness,
    dqd.SourceConceptRecordCompleteness,
    dqd.SourceValueCompleteness,
    dqd.PlausibleValueLow,
    dqd.PlausibleValueHigh,
    dqd.PlausibleTemporalAfter,
    dqd.PlausibleDuringLife,
    dqd.WithinVisitDates,
    dqd.PlausibleAfterBirth,
    dqd.PlausibleBeforeDeath,
    dqd.PlausibleStartBeforeEnd,
    concept.PlausibleGender,
    concept.PlausibleGenderUseDescendants,
    concept.PlausibleUnitConceptIds,
    concept.ConceptPlausibleValueLow,
    concept.ConceptPlausibleValueHigh,
)
"""Every DQD v2.8.4 check type Massalia implements."""


def dqd_description(check_type: CheckType) -> CheckDescription:
    """DQD's description of ``check_type``.

    DQD 2.8.4's concept-level CSV carries ``plausibleValueLow/High`` per concept and unit while its
    description file lists those checks at field level only; the concept variant reuses the
    field-level description with a concept-level filter.
    """
    description = check_descriptions()[check_type.name]
    if description.level != check_type.level:
        description = replace(description, level=check_type.level, evaluation_filter=f"{check_type.name}!=''")
    return description


def register_dqd_check(registry: CheckRegistry, check_type: CheckType) -> None:
    """Register a DQD check type with DQD's description and the definition rows that enable it.

    Examples
    --------
    >>> registry = CheckRegistry()
    >>> register_dqd_check(registry, dqd.IsRequired())
    >>> registry.names()
    ['isRequired']
    """
    description = dqd_description(check_type)
    registry.register(check_type, description, instantiate(description))


def default_registry(*, oncology: bool = True) -> CheckRegistry:
    """A registry with every DQD check type and, unless disabled, the oncology rules.

    Examples
    --------
    >>> registry = default_registry()
    >>> "isRequired" in registry.names()
    True
    """
    registry = CheckRegistry()
    for check_type in DQD_CHECK_TYPES:
        register_dqd_check(registry, check_type())
    if oncology:
        register_oncology_rules(registry)
    return registry
