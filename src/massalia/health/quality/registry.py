"""The registry of check types: DQD's, Massalia's oncology rules, and any a deployment adds.

Built-in checks register the same way an extension would (:meth:`CheckRegistry.register`);
nothing is registered as an import side effect and no check is looked up by a built string.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from massalia.health.quality import checks as dqd
from massalia.health.quality import concept_checks as concept
from massalia.health.quality.checks import CheckType
from massalia.health.quality.definitions import CheckDescription, CheckInstance, check_descriptions, instantiate
from massalia.health.quality.oncology import register_oncology_rules

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


@dataclass(frozen=True)
class RegisteredCheck:
    """A check type with the description its results carry and its instances."""

    check_type: CheckType
    description: CheckDescription
    instances: tuple[CheckInstance, ...]


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


class CheckRegistry:
    """Check types by ``(level, name)``, in registration order.

    Examples
    --------
    >>> registry = default_registry()
    >>> "isRequired" in registry.names()
    True
    """

    def __init__(self) -> None:
        self._checks: dict[tuple[str, str], RegisteredCheck] = {}

    def register(
        self,
        check_type: CheckType,
        description: CheckDescription | None = None,
        instances: Iterable[CheckInstance] | None = None,
    ) -> None:
        """Add a check type; DQD types default to DQD's description and definition rows."""
        if check_type.key in self._checks:
            raise ValueError(f"check type {check_type.key} is already registered")
        description = description or dqd_description(check_type)
        found = tuple(instances) if instances is not None else tuple(instantiate(description))
        self._checks[check_type.key] = RegisteredCheck(check_type, description, found)

    def names(self) -> list[str]:
        """Distinct check names."""
        return list(dict.fromkeys(key[1] for key in self._checks))

    def checks(self, names: Sequence[str] | None = None) -> list[RegisteredCheck]:
        """Registered checks, restricted to ``names`` when given (unknown names are an error)."""
        if names is None:
            return list(self._checks.values())
        unknown = sorted(set(names) - set(self.names()))
        if unknown:
            raise KeyError(f"unknown quality checks {unknown}; known: {', '.join(self.names())}")
        return [check for key, check in self._checks.items() if key[1] in names]


def default_registry(*, oncology: bool = True) -> CheckRegistry:
    """A registry with every DQD check type and, unless disabled, the oncology rules."""
    registry = CheckRegistry()
    for check_type in DQD_CHECK_TYPES:
        registry.register(check_type())
    if oncology:
        register_oncology_rules(registry)
    return registry
