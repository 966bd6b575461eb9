"""The date patterns scan only the windows around digits (speed): they find what EDS-NLP finds over the whole
note, on dates of every written form and on the demo warehouse's notes."""

from __future__ import annotations

from pathlib import Path

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.nlp.pipeline import ClinicalPipeline, digit_windows

NOTES = [
    "Consultation du 3 mars 2021. Revu le 12/03/2021 puis le 1er avril 2021, enfin en mai 2022.",
    "Née le 01.02.1950 ; RCP du 15-06-2019 : décision collégiale. Prochain rendez-vous : septembre 2024.",
    "Tél 04 91 22 33 44. NIR 1 56 03 13 055 123 45. Chimiothérapie débutée le 2 janvier 2020 à 14h30.",
    "Pas de date ici, seulement du texte sans chiffre aucun.",
]


def test_windows_cover_every_digit_and_nothing_else(pipeline: ClinicalPipeline) -> None:
    doc = pipeline.nlp.make_doc(NOTES[0] + " " + "mot " * 40 + "fin 7.")
    windows = digit_windows(doc)
    covered = {i for span in windows for i in range(span.start_char, span.end_char)}
    assert all(i in covered for i, ch in enumerate(doc.text) if ch.isdigit())
    assert len(covered) < len(doc.text) * 0.8 and len(windows) == 2
    assert digit_windows(pipeline.nlp.make_doc(NOTES[3])) == []


def test_the_same_findings_as_scanning_the_whole_note(pipeline: ClinicalPipeline, demo_warehouse: Path) -> None:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        texts = [str(t) for t in engine.query("SELECT note_text FROM note ORDER BY note_id LIMIT 150").column(0)
                 .to_pylist()]  # fmt: skip
    found = pipeline.extract(NOTES + texts)
    dates = dict(pipeline.nlp.pipeline)["dates"]
    windowed = dates.regex_matcher
    dates.regex_matcher = windowed.inner  # EDS-NLP's matcher over the whole note, as it runs by itself
    try:
        expected = pipeline.extract(NOTES + texts)
    finally:
        dates.regex_matcher = windowed
    assert found == expected
    assert {f.value for f in found[0] if f.label == "date"} >= {"2021-03-03", "2021-03-12", "2021-04-01"}
