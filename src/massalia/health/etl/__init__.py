"""ETL from hospital site extracts into OMOP CDM v5.4 (declarative per-site mappings)."""

from __future__ import annotations

from massalia.health.etl.api import EtlReport, format_reject, get_run, list_runs, run_etl, show_rejects
from massalia.health.etl.mapping import SiteMapping, builtin_sites, find_mappings, load_site_mapping

__all__ = [
    "EtlReport",
    "SiteMapping",
    "builtin_sites",
    "find_mappings",
    "format_reject",
    "get_run",
    "list_runs",
    "load_site_mapping",
    "run_etl",
    "show_rejects",
]
