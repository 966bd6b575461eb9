"""The unified incident log's tables: source reports (every version), incidents, dedup links, the street gazetteer.

- ``safety_report``: one row per version of a source record (append-only: an edit in a later delivery adds
  version 2, never overwrites version 1), with its lineage (file, line, run) and the catalogue version used;
- ``safety_incident``: one row per real-world incident, the union of the reports that describe it (its time,
  place and type are its first report's);
- ``safety_incident_link``: why each report belongs to its incident (the dedup rule that matched, the time and
  distance between the reports);
- ``safety_street``: the gazetteer addresses are geocoded with (replaced when a new one is delivered);
- ``safety_zone``: the districts (zone, name, population, seed), written on first load from the package.
"""

from __future__ import annotations

from massalia.engine import Column, Engine
from massalia.safety.geo import districts

REPORTS = "safety_report"
INCIDENTS = "safety_incident"
LINKS = "safety_incident_link"
STREETS = "safety_street"
ZONES = "safety_zone"

REPORT_COLUMNS = (
    Column("report_id", "BIGINT", False),
    Column("source", "VARCHAR", False),
    Column("source_id", "VARCHAR", False),
    Column("version", "INTEGER", False),
    Column("incident_id", "BIGINT", False),
    Column("occurred_at", "TIMESTAMP", False),
    Column("zone", "VARCHAR", False),
    Column("x_l93", "DOUBLE"),
    Column("y_l93", "DOUBLE"),
    Column("address", "VARCHAR"),
    Column("local_code", "VARCHAR", False),
    Column("type_code", "VARCHAR", False),
    Column("narrative", "VARCHAR"),
    Column("parties", "VARCHAR"),
    Column("status", "VARCHAR"),
    Column("attachments", "VARCHAR"),
    Column("content_hash", "VARCHAR", False),
    Column("source_file", "VARCHAR", False),
    Column("source_line", "BIGINT", False),
    Column("run_id", "VARCHAR", False),
    Column("catalogue_version", "VARCHAR", False),
)
INCIDENT_COLUMNS = (
    Column("incident_id", "BIGINT", False),
    Column("occurred_at", "TIMESTAMP", False),
    Column("zone", "VARCHAR", False),
    Column("x_l93", "DOUBLE"),
    Column("y_l93", "DOUBLE"),
    Column("type_code", "VARCHAR", False),
    Column("family", "VARCHAR", False),
    Column("first_source", "VARCHAR", False),
    Column("run_id", "VARCHAR", False),
)
LINK_COLUMNS = (
    Column("report_id", "BIGINT", False),
    Column("incident_id", "BIGINT", False),
    Column("matched_report_id", "BIGINT"),
    Column("rule", "VARCHAR", False),
    Column("minutes_apart", "DOUBLE"),
    Column("metres_apart", "DOUBLE"),
    Column("run_id", "VARCHAR", False),
)
STREET_COLUMNS = (
    Column("postcode", "VARCHAR", False),
    Column("street", "VARCHAR", False),
    Column("street_key", "VARCHAR", False),
    Column("x_start", "DOUBLE", False),
    Column("y_start", "DOUBLE", False),
    Column("x_end", "DOUBLE", False),
    Column("y_end", "DOUBLE", False),
    Column("number_max", "INTEGER", False),
)
ZONE_COLUMNS = (
    Column("zone", "VARCHAR", False),
    Column("name", "VARCHAR", False),
    Column("postcode", "VARCHAR", False),
    Column("population", "BIGINT", False),
    Column("x_seed", "DOUBLE", False),
    Column("y_seed", "DOUBLE", False),
)


def ensure_tables(engine: Engine) -> None:
    """Create the log's tables when absent, and the zones from the package's districts."""
    existing = set(engine.list_tables())
    for name, columns in (
        (REPORTS, REPORT_COLUMNS),
        (INCIDENTS, INCIDENT_COLUMNS),
        (LINKS, LINK_COLUMNS),
        (STREETS, STREET_COLUMNS),
    ):
        if name not in existing:
            engine.create_empty_table(name, columns)
    if ZONES not in existing:
        engine.create_empty_table(ZONES, ZONE_COLUMNS)
        values = ", ".join(
            f"('{d.zone}', '{d.name}', '{d.postcode}', {d.population}, {d.seed[0]:.1f}, {d.seed[1]:.1f})"
            for d in districts()
        )
        engine.execute(f"INSERT INTO {ZONES} VALUES {values}")


def street_key(column_sql: str) -> str:
    """SQL normalising a street name for the gazetteer join (lowercase, letters and digits only)."""
    return f"regexp_replace(lower(trim({column_sql})), '[^a-z0-9]+', '', 'g')"
