"""The same vocabulary gap at several sites is one warning naming them (it was one warning per site)."""

from __future__ import annotations

from massalia.health.etl.pipeline import OmopPipeline


def test_one_warning_per_gap_naming_every_site() -> None:
    pipeline = OmopPipeline.__new__(OmopPipeline)  # only the warning list is exercised
    pipeline.warnings = []
    gap = "note.language_concept_id: concept 4180190 is not in the vocabulary; written as 0"
    for site in ("clcc_sud", "ch_est", "chu_nord", "ch_est"):
        pipeline._warn(f"{site}: {gap}")
    pipeline._warn("ch_est: measurement.unit_concept_id: concept 1 is not in the vocabulary; written as 0")
    assert pipeline.warnings == [
        f"ch_est, chu_nord, clcc_sud: {gap}",
        "ch_est: measurement.unit_concept_id: concept 1 is not in the vocabulary; written as 0",
    ]
