"""Helpers of the safety tests (found through pytest's ``pythonpath``): the loaded world and the ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from massalia.engine import Engine
from massalia.pipelines import LineageStore, RunResult
from massalia.safety.synth.generator import GeneratedLogs

EVENTS = 3000


@dataclass
class Loaded:
    """A generated delivery and the warehouse it was loaded into (first run's result kept)."""

    logs: GeneratedLogs
    engine: Engine
    store: LineageStore
    first: RunResult


def truth_table(engine: Engine, root: Path) -> None:
    """Load the generator's ground truth (observations) as table ``truth_obs`` (idempotent)."""
    if not engine.table_exists("truth_obs"):
        path = root / "truth" / "observations.csv"
        engine.execute_native(f"CREATE TABLE truth_obs AS SELECT * FROM read_csv('{path}', all_varchar=true)")
