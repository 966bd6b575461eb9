"""The cohort definition: entry events, qualifying criteria, inclusion rules, exit and collapse.

``CohortDefinition`` is the root node. Its JSON form (``to_json``/``from_json``) uses Massalia's
field names; ``massalia.health.cohorts.circe`` reads and writes OHDSI Circe's form of the same tree.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field

from massalia.health.cohorts.criteria import AnyCriterion, CriteriaGroup
from massalia.health.cohorts.nodes import (
    CollapseSettings,
    ConceptSet,
    Node,
    ObservationWindow,
    Period,
    ResultLimit,
    camel_alias,
)


class PrimaryCriteria(Node):
    """Entry events: records of any of ``criteria_list`` in an observation period with enough observation."""

    criteria_list: list[AnyCriterion] = Field(default_factory=list)
    observation_window: ObservationWindow = Field(default_factory=ObservationWindow)
    primary_criteria_limit: ResultLimit = Field(default_factory=lambda: ResultLimit(type="First"))


class InclusionRule(Node):
    """A named rule that each qualifying event must satisfy (its expression is a criteria group)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, alias_generator=camel_alias)

    name: str = ""
    description: str | None = None
    expression: CriteriaGroup = Field(default_factory=CriteriaGroup)


class DateOffset(Node):
    """Exit ``offset`` days after the event's start or end date (capped at the observation period end)."""

    kind: Literal["DateOffset"] = "DateOffset"
    date_field: Literal["StartDate", "EndDate"] = "StartDate"
    offset: int = 0


class CustomEra(Node):
    """Exit at the end of continuous exposure to a drug concept set (gap days, offset, days-supply override)."""

    kind: Literal["CustomEra"] = "CustomEra"
    drug_codeset_id: int | None = None
    gap_days: int = 0
    offset: int = 0
    days_supply_override: int | None = None


_STRATEGIES = {"DateOffset", "CustomEra"}


def _unwrap_strategy(value: Any) -> Any:
    if isinstance(value, dict) and "kind" not in value and len(value) == 1:
        ((key, body),) = value.items()
        if key in _STRATEGIES and isinstance(body, dict):
            return {"kind": key, **body}
        raise ValueError(f"unsupported end strategy {key!r} (supported: {', '.join(sorted(_STRATEGIES))})")
    return value


EndStrategy = Annotated[
    Annotated[DateOffset | CustomEra, Field(discriminator="kind")], BeforeValidator(_unwrap_strategy)
]


class CohortDefinition(Node):
    """A cohort definition: the root of the tree, serializable as JSON.

    Examples
    --------
    >>> from massalia.health.cohorts import CohortDefinition
    >>> text = '{"primary_criteria": {"criteria_list": [{"kind": "Death"}]}}'
    >>> definition = CohortDefinition.from_json(text)
    >>> definition.primary_criteria.criteria_list[0].kind
    'Death'
    """

    title: str | None = None
    cdm_version_range: str | None = Field(default=None, alias="cdmVersionRange")
    concept_sets: list[ConceptSet] = Field(default_factory=list)
    primary_criteria: PrimaryCriteria = Field(default_factory=PrimaryCriteria)
    additional_criteria: CriteriaGroup | None = None
    qualified_limit: ResultLimit = Field(default_factory=lambda: ResultLimit(type="First"))
    expression_limit: ResultLimit = Field(default_factory=lambda: ResultLimit(type="First"))
    inclusion_rules: list[InclusionRule] = Field(default_factory=list)
    end_strategy: EndStrategy | None = None
    censoring_criteria: list[AnyCriterion] = Field(default_factory=list)
    collapse_settings: CollapseSettings = Field(default_factory=CollapseSettings)
    censor_window: Period | None = None

    def to_json(self, *, indent: int | None = None) -> str:
        """The definition as Massalia JSON (snake-case names, criteria tagged by ``kind``)."""
        return self.model_dump_json(exclude_none=True, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> CohortDefinition:
        """Read a definition written by ``to_json``."""
        return cls.model_validate_json(text)

    def definition_hash(self) -> str:
        """SHA-256 of the canonical JSON: equal definitions always hash alike (labels excluded)."""
        payload = self.model_dump(mode="json", exclude_none=True, exclude={"title"})
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    def concept_set(self, codeset_id: int) -> ConceptSet | None:
        """The concept set with this id, if any."""
        return next((cs for cs in self.concept_sets if cs.id == codeset_id), None)
