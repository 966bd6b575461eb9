"""Alarm rules: six kinds, declared in YAML or JSON, validated field by field, versioned as a set.

A rule set is ``{"version": N, "rules": [...]}``; every rule has an ``id``, a ``kind`` and filters (incident
types or families of the catalogue, zones ``D01``..``D16``). Rules are evaluated in Python on each ingested
incident: nothing of a rule is ever spliced into SQL, and every string a rule holds is checked against a closed
vocabulary (catalogue codes, zone codes, identifier patterns), so a definition carrying SQL is refused at
load, naming its field.

Examples
--------
>>> rules = parse_rules('{"version": 1, "rules": [{"id": "vols", "kind": "threshold", "families": ["VOL"],'
...                     ' "count": 5, "window_minutes": 30}]}')
>>> rules.rules[0].kind, rules.version
('threshold', 1)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from massalia.governance import InvalidRequest
from massalia.safety.catalogue import load_catalogue

MAX_RULES = 200
MAX_RULES_BYTES = 256 * 1024
RULE_ID = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
ZONE = r"^D(0[1-9]|1[0-6])$"
DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")


class RuleError(InvalidRequest):
    """A rule set is invalid: the message names the field (``rules[2].window_minutes``) and what was wrong."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=RULE_ID, description="Unique within the set; an alarm names its rule by it.")
    title: str = Field(min_length=1, max_length=200)
    severity: Literal["informational", "low", "medium", "high", "critical"] = "medium"
    types: tuple[Annotated[str, Field(max_length=64)], ...] = Field(default=(), max_length=200)
    families: tuple[Annotated[str, Field(max_length=16)], ...] = Field(default=(), max_length=50)
    zones: tuple[Annotated[str, Field(pattern=ZONE)], ...] = Field(default=(), max_length=16)
    escalate_after_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = load_catalogue().types
        for i, code in enumerate(value):
            if code not in known:
                raise ValueError(f"[{i}] {code!r} is not an incident type of the catalogue")
        return value

    @field_validator("families")
    @classmethod
    def _known_families(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = load_catalogue().families
        for i, code in enumerate(value):
            if code not in known:
                raise ValueError(f"[{i}] {code!r} is not a family of the catalogue ({', '.join(sorted(known))})")
        return value

    def matches(self, type_code: str, zone: str) -> bool:
        """Whether an incident of ``type_code`` in ``zone`` passes this rule's filters (empty filter: all)."""
        typed = type_code in self.types or type_code.split(".", 1)[0] in self.families
        if (self.types or self.families) and not typed:
            return False
        return not self.zones or zone in self.zones


class ThresholdRule(_Rule):
    """At least ``count`` incidents passing the filters within ``window_minutes`` (one alarm for the rule)."""

    kind: Literal["threshold"]
    count: int = Field(ge=1, le=1_000_000)
    window_minutes: int = Field(ge=1, le=7 * 24 * 60)


class FrequencyRule(_Rule):
    """At least ``count`` incidents within ``window_minutes`` for one value of ``group_by`` (one alarm per value)."""

    kind: Literal["frequency"]
    count: int = Field(ge=1, le=1_000_000)
    window_minutes: int = Field(ge=1, le=7 * 24 * 60)
    group_by: Literal["zone", "type_code", "family", "source"] = "zone"


class SpikeRule(_Rule):
    """Incidents of the last ``window_minutes`` against the mean of the same window over the past ``weeks`` weeks.

    The alarm opens when the count reaches ``minimum`` and exceeds ``factor`` times the baseline mean (one alarm
    per zone when ``group_by`` is ``zone``).
    """

    kind: Literal["spike"]
    window_minutes: int = Field(default=60, ge=5, le=24 * 60)
    weeks: int = Field(default=4, ge=1, le=52)
    factor: float = Field(default=3.0, gt=1.0, le=1000.0)
    minimum: int = Field(default=5, ge=1, le=1_000_000)
    group_by: Literal["zone", "all"] = "zone"


class GeofenceRule(_Rule):
    """An incident whose point lies inside ``polygon`` (WGS84 ``[lon, lat]`` pairs, closed or not)."""

    kind: Literal["geofence"]
    polygon: tuple[tuple[float, float], ...] = Field(min_length=3, max_length=2000)

    @field_validator("polygon")
    @classmethod
    def _in_range(cls, value: tuple[tuple[float, float], ...]) -> tuple[tuple[float, float], ...]:
        for i, (lon, lat) in enumerate(value):
            if not (-180.0 <= lon <= 180.0 and -90.0 <= lat <= 90.0):
                raise ValueError(f"[{i}] ({lon}, {lat}) is not a WGS84 [lon, lat] pair")
        return value


class NewTermRule(_Rule):
    """A word of a narrative never seen in the baseline vocabulary (the narratives of the log, then every one)."""

    kind: Literal["new_term"]
    min_length: int = Field(default=6, ge=3, le=40)


class SilenceRule(_Rule):
    """No message from ``source`` for ``minutes`` (evaluated by the timer, on the wall clock)."""

    kind: Literal["silence"]
    source: Literal["mc", "csu", "dtp"]
    minutes: int = Field(ge=1, le=7 * 24 * 60)


Rule = Annotated[
    ThresholdRule | FrequencyRule | SpikeRule | GeofenceRule | NewTermRule | SilenceRule,
    Field(discriminator="kind"),
]


class RuleSet(BaseModel):
    """A versioned set of rules (ids unique)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, le=1_000_000)
    rules: tuple[Rule, ...] = Field(max_length=MAX_RULES)

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is declared twice")
            seen.add(rule.id)
        return self

    def digest(self) -> str:
        """SHA-256 of the set's canonical JSON (a version's content; a version may not change content)."""
        return hashlib.sha256(canonical(self).encode()).hexdigest()

    def rule(self, rule_id: str) -> Rule:
        """The rule ``rule_id``."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def canonical(rules: RuleSet) -> str:
    """The rule set as canonical JSON (sorted keys), the form stored and hashed."""
    return json.dumps(rules.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


KINDS = ("threshold", "frequency", "spike", "geofence", "new_term", "silence")


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not (part in KINDS and isinstance(previous, int)):  # the discriminator's tag is not a field
            path += f".{part}" if path else str(part)
        previous = part
    return path


def parse_rules(text: str | bytes, *, name: str = "rules") -> RuleSet:
    """Parse and validate a rule set from YAML or JSON text; a :class:`RuleError` names the field at fault."""
    if len(text) > MAX_RULES_BYTES:
        raise RuleError(f"{name}: {len(text)} bytes, over the {MAX_RULES_BYTES} bytes a rule set may have")
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleError(f"{name}: not YAML/JSON: {error}") from None
    if not isinstance(document, dict):
        raise RuleError(f"{name}: expected a mapping with 'version' and 'rules'")
    try:
        return RuleSet.model_validate(document)
    except ValidationError as error:
        problems = []
        for item in error.errors()[:10]:
            problems.append(f"{_field_path(tuple(item['loc'])) or '(document)'}: {item['msg']}")
        raise RuleError(f"{name}: " + "; ".join(problems)) from None


def load_rules(path: Path | None = None) -> RuleSet:
    """The rule set in ``path`` (default: the package's demo rules)."""
    target = path or DEFAULT_RULES
    return parse_rules(target.read_bytes(), name=str(target))
