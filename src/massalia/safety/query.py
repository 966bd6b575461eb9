"""Filters over the incident log, validated against the catalogue and compiled to a safe SQL predicate.

Every value a filter holds is checked against a closed list (zones, families, types and sources the
catalogue knows; dates parsed) before it reaches SQL, so the predicate can inline them.

Examples
--------
>>> IncidentFilter(zones=("D03",), families=("VOL",)).where("i")
"(i.zone IN ('D03')) AND (i.family IN ('VOL'))"
>>> IncidentFilter(zones=("D99",))
Traceback (most recent call last):
...
massalia.safety.query.FilterError: zones: unknown zone 'D99' (zones are D01 to D16)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from massalia.governance import InvalidRequest
from massalia.safety.catalogue import load_catalogue
from massalia.safety.geo import districts

SOURCES = ("mc", "csu", "dtp")


class FilterError(InvalidRequest):
    """A filter names something the log does not know (the message names the field and the value)."""


@dataclass(frozen=True)
class IncidentFilter:
    """Which incidents: a period ``[start, end)``, zones, type families, types, sources (all optional, ANDed)."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None
    zones: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        catalogue = load_catalogue()
        known_zones = {d.zone for d in districts()}
        for zone in self.zones:
            if zone not in known_zones:
                raise FilterError(f"zones: unknown zone {zone!r} (zones are D01 to D16)")
        for family in self.families:
            if family not in catalogue.families:
                raise FilterError(f"families: unknown family {family!r} (families: {', '.join(catalogue.families)})")
        for code in self.types:
            if code not in catalogue.types:
                raise FilterError(f"types: unknown incident type {code!r}")
        for source in self.sources:
            if source not in SOURCES:
                raise FilterError(f"sources: unknown source {source!r} (sources: {', '.join(SOURCES)})")
        if self.start and self.end and self.start >= self.end:
            raise FilterError(f"start ({self.start}) must be before end ({self.end})")

    def where(self, alias: str = "i") -> str:
        """The predicate over the incident table aliased ``alias`` (``true`` when nothing is filtered)."""
        parts = []
        if self.start:
            parts.append(f"{alias}.occurred_at >= TIMESTAMP '{self.start:%Y-%m-%d %H:%M:%S}'")
        if self.end:
            parts.append(f"{alias}.occurred_at < TIMESTAMP '{self.end:%Y-%m-%d %H:%M:%S}'")
        for column, values in (("zone", self.zones), ("family", self.families), ("type_code", self.types)):
            if values:
                parts.append(f"{alias}.{column} IN ({', '.join(repr(v) for v in values)})")
        if self.sources:
            listed = ", ".join(repr(s) for s in self.sources)
            parts.append(
                f"{alias}.incident_id IN (SELECT fr.incident_id FROM safety_report AS fr WHERE fr.source IN ({listed}))"
            )
        return " AND ".join(f"({p})" for p in parts) or "true"

    def previous(self) -> IncidentFilter | None:
        """The same filter over the period just before (same length), for comparisons; ``None`` without a period."""
        if not (self.start and self.end):
            return None
        length = self.end - self.start
        return IncidentFilter(self.start - length, self.start, self.zones, self.families, self.types, self.sources)

    def last_year(self) -> IncidentFilter | None:
        """The same filter over the same dates one year earlier (29 February falls back to the 28th)."""
        if not (self.start and self.end):
            return None

        def back(moment: dt.datetime) -> dt.datetime:
            try:
                return moment.replace(year=moment.year - 1)
            except ValueError:
                return moment.replace(year=moment.year - 1, day=28)

        return IncidentFilter(back(self.start), back(self.end), self.zones, self.families, self.types, self.sources)

    def describe(self) -> dict[str, object]:
        """The filter as JSON-ready values (for audit entries and answers)."""
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "zones": list(self.zones),
            "families": list(self.families),
            "types": list(self.types),
            "sources": list(self.sources),
        }
