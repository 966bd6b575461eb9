"""What a quality check is, as data: a check type's description and its instances (table, field, concept).

The shapes follow OHDSI DataQualityDashboard's (Kahn category, severity, threshold in percent), which
every domain's checks reuse; a domain's definitions (health: DQD's ``dqd_checks.json``) build them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

LEVELS = ("TABLE", "FIELD", "CONCEPT")


@dataclass(frozen=True)
class CheckDescription:
    """One check type as described to its readers: name, level, Kahn category and severity (DQD's shape)."""

    name: str
    level: str
    description: str
    kahn_context: str
    kahn_category: str
    kahn_subcategory: str | None
    evaluation_filter: str
    severity: str


@dataclass(frozen=True)
class CheckInstance:
    """One check applied to one table / field / concept, with its threshold (percent).

    ``params`` holds the definition row the check was enabled by (DQD's column names), so a
    check type reads what it needs (``fkTableName``, ``plausibleValueLow``...) from it.
    """

    check: CheckDescription
    table: str
    field: str | None = None
    concept_id: int | None = None
    unit_concept_id: int | None = None
    threshold: float = 0.0
    params: Mapping[str, str] = dataclasses.field(default_factory=dict, compare=False, hash=False)

    @property
    def check_id(self) -> str:
        """Stable identifier, e.g. ``isrequired.person.person_id``."""
        parts = [self.check.name, self.table, self.field, self.concept_id, self.unit_concept_id]
        return ".".join(str(p) for p in parts if p is not None).lower()

    def param(self, name: str) -> str:
        """Definition value ``name`` ('' when absent)."""
        return self.params.get(name, "")
