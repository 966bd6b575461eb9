"""The unified incident log: tables, the loading pipeline (three source layouts), cross-source deduplication."""

from __future__ import annotations

from massalia.engine import Engine
from massalia.pipelines import LineageStore, RunResult
from massalia.pipelines.runner import run_pipeline
from massalia.safety.log.pipeline import PIPELINE_NAME, IncidentPipeline
from massalia.safety.log.tables import INCIDENTS, LINKS, REPORTS, STREETS, ZONES, ensure_tables

__all__ = [
    "INCIDENTS",
    "LINKS",
    "PIPELINE_NAME",
    "REPORTS",
    "STREETS",
    "ZONES",
    "IncidentPipeline",
    "ensure_tables",
    "load_delivery",
]


def load_delivery(engine: Engine, root: object, store: LineageStore) -> RunResult:
    """Load a delivery folder into the incident log in one atomic run (files already loaded are skipped)."""
    from pathlib import Path

    return run_pipeline(engine, IncidentPipeline(Path(str(root))), store=store)
