"""Value nodes of a cohort definition: ranges, concepts, concept sets, windows and limits.

Every node is a small frozen pydantic model. Field names are Massalia's (snake case); each field
also carries its OHDSI Circe name as an alias, so the same classes read and write both our JSON
and Circe's. Unknown keys are refused (``extra="forbid"``): nothing is ever silently dropped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def circe_alias(name: str) -> str:
    """Circe's key for a Massalia field name (``condition_type_cs`` → ``ConditionTypeCS``).

    Examples
    --------
    >>> circe_alias("occurrence_start_date")
    'OccurrenceStartDate'
    """
    if name == "kind":  # our union tag; Circe wraps the node in a one-key object instead
        return name
    return "".join("CS" if part == "cs" else part.capitalize() for part in name.split("_"))


def camel_alias(name: str) -> str:
    """Circe's lower-camel key (concept set items, rules): ``include_descendants`` → ``includeDescendants``."""
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


class Node(BaseModel):
    """Base of every definition node: immutable, strict about keys, Circe names as aliases."""

    model_config = ConfigDict(
        extra="forbid", populate_by_name=True, frozen=True, alias_generator=circe_alias, serialize_by_alias=False
    )


NumericOp = Literal["lt", "lte", "eq", "!eq", "gt", "gte", "bt", "!bt"]
TextOp = Literal["startsWith", "contains", "endsWith", "!startsWith", "!contains", "!endsWith"]


class NumericRange(Node):
    """A number compared with ``value`` (or between ``value`` and ``extent``, both inclusive)."""

    op: NumericOp
    value: float | None = None
    extent: float | None = None

    def missing_bound(self) -> str | None:
        """Why this range cannot be evaluated (a draft without value), or ``None`` when it can."""
        if self.value is None:
            return f"range with op {self.op!r} has no Value"
        if self.op.endswith("bt") and self.extent is None:
            return f"range with op {self.op!r} has no Extent"
        return None

    def is_empty_between(self) -> bool:
        """Whether a between range has its bounds reversed (``value > extent``: nothing can match)."""
        return (
            self.op.endswith("bt") and self.value is not None and self.extent is not None and self.value > self.extent
        )


class DateRange(Node):
    """A date compared with ``value`` (or between ``value`` and ``extent``, both inclusive)."""

    op: NumericOp
    value: dt.date | None = None
    extent: dt.date | None = None

    def missing_bound(self) -> str | None:
        """Why this range cannot be evaluated (a draft without value), or ``None`` when it can."""
        if self.value is None:
            return f"date range with op {self.op!r} has no Value"
        if self.op.endswith("bt") and self.extent is None:
            return f"date range with op {self.op!r} has no Extent"
        return None

    def is_empty_between(self) -> bool:
        """Whether a between range has its bounds reversed (``value > extent``: nothing can match)."""
        return (
            self.op.endswith("bt") and self.value is not None and self.extent is not None and self.value > self.extent
        )


class TextFilter(Node):
    """A text column matched with LIKE (starts with, contains, ends with, or their negation)."""

    op: TextOp
    text: str | None = None  # None only in drafts: lint reports it, the compiler refuses it


class Period(Node):
    """A calendar period; either bound may be open."""

    start_date: dt.date | None = None
    end_date: dt.date | None = None


class DateAdjustment(Node):
    """Shift an event's start/end dates (each taken from the event's start or end date) by days."""

    start_with: Literal["START_DATE", "END_DATE"] = "START_DATE"
    start_offset: int = 0
    end_with: Literal["START_DATE", "END_DATE"] = "END_DATE"
    end_offset: int = 0


class Concept(Node):
    """One OMOP concept as Circe embeds it (only ``concept_id`` has meaning for the SQL)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, alias_generator=str.upper)

    concept_id: int
    concept_name: str | None = None
    concept_code: str | None = None
    domain_id: str | None = None
    vocabulary_id: str | None = None
    concept_class_id: str | None = None
    standard_concept: str | None = None
    standard_concept_caption: str | None = None
    invalid_reason: str | None = None
    invalid_reason_caption: str | None = None


class ConceptSetItem(Node):
    """A concept in a concept set, with its descendants and/or mapped source concepts, possibly excluded."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, alias_generator=camel_alias)

    concept: Concept
    is_excluded: bool = False
    include_descendants: bool = False
    include_mapped: bool = False


class ConceptSetExpression(Node):
    """The items of a concept set."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, alias_generator=camel_alias)

    items: list[ConceptSetItem] = Field(default_factory=list)


class ConceptSet(Node):
    """A named concept set, referred to by ``id`` from criteria (``codeset_id``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True, alias_generator=camel_alias)

    id: int
    name: str = ""
    expression: ConceptSetExpression = Field(default_factory=ConceptSetExpression)


class ConceptSetSelection(Node):
    """A column restricted to a concept set (or, with no codeset, to NULL / NOT NULL)."""

    codeset_id: int | None = None
    is_exclusion: bool = False


class WindowBound(Node):
    """One end of a window: ``days`` before (coeff -1) or after (coeff +1); ``None`` days = unbounded."""

    days: int | None = None
    coeff: Literal[-1, 1] = 1


class Window(Node):
    """A window relative to the index event, in days, both bounds inclusive."""

    start: WindowBound = Field(default_factory=lambda: WindowBound(coeff=-1))
    end: WindowBound = Field(default_factory=WindowBound)
    use_index_end: bool | None = None
    use_event_end: bool | None = None


class Occurrence(Node):
    """How many matching records a correlated criterion needs: 0 exactly, 1 at most, 2 at least."""

    type: Literal[0, 1, 2] = 2
    count: int = 1
    is_distinct: bool = False
    count_column: Literal["DOMAIN_CONCEPT", "START_DATE", "VISIT_ID"] | None = None


class ObservationWindow(Node):
    """Days of continuous observation required before and after the entry event."""

    prior_days: int = 0
    post_days: int = 0


class ResultLimit(Node):
    """Which events per person to keep: the first, the last, or all."""

    type: Literal["First", "Last", "All", "FIRST", "LAST", "ALL", "first", "last", "all"] = "All"

    @property
    def kind(self) -> str:
        """The limit normalised to ``first``, ``last`` or ``all``."""
        return self.type.lower()


class CollapseSettings(Node):
    """How overlapping cohort periods of a person are merged (``era_pad`` days of gap allowed)."""

    collapse_type: Literal["ERA"] = "ERA"
    era_pad: int = 0


def strip_none(value: Any) -> Any:
    """Drop ``None`` values recursively (Circe omits unset attributes)."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value
