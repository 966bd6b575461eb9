"""Worker processes find what one process finds, in input order, with the pipeline built once in the parent."""

from __future__ import annotations

from massalia.health.nlp import pipeline as nlp_pipeline
from massalia.health.nlp.pipeline import ClinicalPipeline, extract_parallel

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
