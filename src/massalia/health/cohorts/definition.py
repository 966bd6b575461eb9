"""The cohort definition: entry events, qualifying criteria, inclusion rules, exit and collapse.

``CohortDefinition`` is the root node. Its JSON form (``to_json``/``from_json``) uses Massalia's
field names; ``massalia.health.cohorts.circe`` reads and writes OHDSI Circe's form of the same tree.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, model_validator

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

# Bounds on a definition's JSON, checked before anything else reads it: a definition comes from anyone
# with an account (API, CLI, portal), and each of these was a 500 or seconds of CPU per request.
MAX_JSON_DEPTH = 100
"""Nested objects and lists: about 20 levels of correlated criteria or groups, far beyond any real cohort."""
MAX_JSON_NODES = 50_000
"""Objects, lists and values in all: thousands of concept set items, not 100,000."""
MAX_CONCEPT_ITEMS = 10_000
"""Items of all concept sets together (descendants are expanded in SQL, not listed)."""
MAX_STRING_LENGTH = 10_000
"""Characters of one string (titles, names, text filters)."""
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**63 - 1
"""Integers must fit the warehouse's BIGINT (ids, days, counts)."""


class DefinitionTooLarge(ValueError):  # noqa: N818 (a refusal of input, named by what is wrong)
    """A definition beyond the input bounds; the message names the bound and where it was passed."""


def check_input_bounds(data: Any) -> None:
    """Refuse a definition's parsed JSON that is too deep, too large, or holds out-of-range numbers.

    Iterative (no recursion), so a hostile nesting cannot exhaust the stack while it is checked.

    Raises
    ------
    DefinitionTooLarge
        Naming the bound and the JSON path where it was passed.

    Examples
    --------
    >>> check_input_bounds({"concept_sets": [{"id": 0}]})
    >>> deep: dict = {}
    >>> cursor = deep
    >>> for _ in range(200):
    ...     cursor["groups"] = [{}]
    ...     cursor = cursor["groups"][0]
    >>> check_input_bounds(deep)
    Traceback (most recent call last):
    ...
    massalia.health.cohorts.definition.DefinitionTooLarge: nested deeper than 100 levels at $.groups[0].groups...
    """
    stack: list[tuple[Any, int, str]] = [(data, 1, "$")]
    nodes = concept_items = 0
    while stack:
        value, depth, path = stack.pop()
        nodes += 1
        if nodes > MAX_JSON_NODES:
            raise DefinitionTooLarge(f"more than {MAX_JSON_NODES:,} JSON values")
        if isinstance(value, dict | list) and depth > MAX_JSON_DEPTH:
            raise DefinitionTooLarge(f"nested deeper than {MAX_JSON_DEPTH} levels at {path[:40]}...")
        if isinstance(value, dict):
            items = value.get("items") if isinstance(value.get("items"), list) else value.get("Items")
            if isinstance(items, list):
                concept_items += len(items)
                if concept_items > MAX_CONCEPT_ITEMS:
                    raise DefinitionTooLarge(f"more than {MAX_CONCEPT_ITEMS:,} concept set items (at {path})")
            stack.extend((child, depth + 1, f"{path}.{key}") for key, child in value.items())
        elif isinstance(value, list):
            stack.extend((child, depth + 1, f"{path}[{index}]") for index, child in enumerate(value))
        elif isinstance(value, str) and len(value) > MAX_STRING_LENGTH:
            raise DefinitionTooLarge(f"a string longer than {MAX_STRING_LENGTH:,} characters at {path}")
        elif isinstance(value, int) and not isinstance(value, bool) and not MIN_INTEGER <= value <= MAX_INTEGER:
            raise DefinitionTooLarge(f"an integer out of the 64-bit range at {path}")


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

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        check_input_bounds(data)
        return data

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
