"""Worker processes find what one process finds, in input order, with the pipeline built once in the parent."""

from __future__ import annotations

from collections.abc import Iterator

from massalia.health.nlp import pipeline as nlp_pipeline
from massalia.health.nlp.pipeline import IN_FLIGHT_PER_WORKER, ClinicalPipeline, extract_parallel

NOTES = [
    "Carcinome canalaire infiltrant du sein, pT2 N1a M0, stade IIB. RE positif, HER2 négatif. Le 3 mars 2021.",
    "Pas de métastase hépatique. ECOG 1. Traitement par pembrolizumab depuis le 12/04/2022.",
    "Antécédents familiaux :\n- mère : cancer du sein\nPas de recherche de mutation EGFR.",
    "Texte sans entité.",
    "Adénocarcinome pulmonaire, mutation EGFR présente. Progression tumorale.",
]


def test_two_workers_give_the_findings_of_one_process_in_order(pipeline: ClinicalPipeline) -> None:
    texts = NOTES * 3
    expected = pipeline.extract(texts)
    chunks = list(extract_parallel(texts, workers=2, chunk=4, pipeline=pipeline))
    assert [len(c) for c in chunks] == [4, 4, 4, 3]
    assert [f for chunk in chunks for f in chunk] == expected
    assert any(f.label == "tnm" for f in expected[0]) and expected[3] == []
    # The parent's pipeline was lent to the forked workers only for the run.
    assert nlp_pipeline._WORKER is None


def test_notes_are_read_as_the_workers_go_not_all_at_once(pipeline: ClinicalPipeline) -> None:
    read = 0

    def notes() -> Iterator[str]:
        nonlocal read
        for text in NOTES * 40:  # 200 notes, 100 chunks of 2
            read += 1
            yield text

    chunks = extract_parallel(notes(), workers=2, chunk=2, pipeline=pipeline)
    first = next(chunks)
    # Only the chunks in flight were read (Executor.map would have taken all 200 notes before the first answer).
    assert first == pipeline.extract(NOTES[:2])
    assert read <= (2 * IN_FLIGHT_PER_WORKER + 1) * 2 < 200
    rest = [f for chunk in chunks for f in chunk]
    assert read == 200 and [*first, *rest] == pipeline.extract(NOTES * 40)
    assert nlp_pipeline._WORKER is None
