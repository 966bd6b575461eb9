"""The evaluation against the generator's ground truth: the scoring rules, and the regression floors.

The floors were set from measurement (``massalia nlp evaluate`` / ``benchmarks/nlp.py``, see docs/nlp.md) a
few points below what the pipeline reaches on generated notes, so that a change that loses recall or precision
on a type or a qualifier fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_helpers import read_site_file

from massalia.health.nlp.evaluation import Counts, Evaluation, TruthNote, evaluate, read_truth, same_value
from massalia.health.nlp.pipeline import ClinicalPipeline, Finding
from massalia.health.synth import generate

TEXT_COLUMN = {
    "chu_nord": ("id_document", "texte", "documents_part0000.csv"),
    "clcc_sud": ("note_id", "note_text", "notes_part0000.csv"),
    "ch_est": ("doc_id", "texte", "documents_part0000.ndjson"),
}
# Measured on 80 generated patients (seed 23, 487 notes), then a margin below: every entity type 0.98-1.00
# (misses are typos inside entities); qualifiers negated 0.99, hypothesis 0.98, family 1.00, history 0.99.
ENTITY_F1_FLOORS = {
    "cancer": 0.96, "histology": 0.96, "tnm": 0.96, "stage": 0.96, "biomarker": 0.96, "drug": 0.96, "date": 0.96,
    "metastasis": 0.96, "comorbidity": 0.96, "procedure": 0.96, "adverse_event": 0.96, "ecog": 0.96,
    "progression": 0.96,
}  # fmt: skip
QUALIFIER_F1_FLOORS = {"negated": 0.95, "hypothesis": 0.95, "family": 0.95, "history": 0.95}
OVERALL_F1_FLOOR = 0.98


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, pipeline: ClinicalPipeline) -> Evaluation:
    out = tmp_path_factory.mktemp("nlp-eval")
    generate(out, 80, seed=23, chunk_size=80, with_documents=True)
    texts: dict[str, str] = {}
    for site, (id_column, text_column, name) in TEXT_COLUMN.items():
        table = read_site_file(out / site / name, site)
        texts |= dict(zip(table.column(id_column).to_pylist(), table.column(text_column).to_pylist(), strict=True))
    ids = list(texts)
    found = pipeline.extract([texts[i] for i in ids])
    return evaluate(dict(zip(ids, found, strict=True)), read_truth(out))


def test_every_note_is_scored(generated: Evaluation) -> None:
    assert generated.notes > 300
    assert all(generated.entities[label].support > 10 for label in ENTITY_F1_FLOORS), generated.rows()


@pytest.mark.parametrize("label", list(ENTITY_F1_FLOORS))
def test_entity_f1_floor(generated: Evaluation, label: str) -> None:
    assert generated.entities[label].f1 >= ENTITY_F1_FLOORS[label], generated.rows()


@pytest.mark.parametrize("qualifier", list(QUALIFIER_F1_FLOORS))
def test_qualifier_f1_floor(generated: Evaluation, qualifier: str) -> None:
    assert generated.qualifiers[qualifier].f1 >= QUALIFIER_F1_FLOORS[qualifier], generated.rows()


def test_overall_f1_floor(generated: Evaluation) -> None:
    assert generated.overall().f1 >= OVERALL_F1_FLOOR


def _span(start: int, end: int, label: str, value: object, **q: bool) -> dict[str, object]:
    return {"start": start, "end": end, "label": label, "value": value, "text": "", **q}


def test_scoring_counts_label_value_and_qualifiers() -> None:
    truth = [
        TruthNote(
            "n1",
            (
                _span(0, 10, "cancer", "C50.4", hypothesis=True),
                _span(20, 30, "biomarker", "her2:positive"),
                _span(40, 50, "metastasis", "C79.9", negated=True),
            ),
        ),
        TruthNote("n2", (_span(0, 5, "ecog", 1),)),  # not predicted at all: skipped, not counted
    ]
    predicted = {
        "n1": [
            Finding(2, 9, "cancer", "C50", "", hypothesis=True),  # overlapping, same category: correct
            Finding(20, 30, "biomarker", "her2:negative", ""),  # wrong value: a false positive and a miss
            Finding(60, 70, "drug", "L01BC06", ""),  # not in the truth
        ]
    }
    result = evaluate(predicted, truth)
    assert result.notes == 1
    assert (result.entities["cancer"].tp, result.entities["cancer"].fp) == (1, 0)
    assert (result.entities["biomarker"].tp, result.entities["biomarker"].fp, result.entities["biomarker"].fn) == (
        0,
        1,
        1,
    )
    assert result.entities["metastasis"].fn == 1 and result.qualifiers["negated"].fn == 1
    assert result.entities["drug"].fp == 1
    assert result.qualifiers["hypothesis"].tp == 1
    assert result.entities["ecog"].support == 0


def test_scores_of_counts() -> None:
    c = Counts(tp=8, fp=2, fn=8)
    assert (c.precision, c.recall, round(c.f1, 4)) == (0.8, 0.5, 0.6154)
    assert Counts().f1 == 1.0 or Counts().f1 == 0.0  # defined, never a division by zero


def test_value_rules() -> None:
    assert same_value("cancer", "C32", "C10.9")  # "cancer ORL": one site group
    assert same_value("cancer", "C18", "C20")
    assert not same_value("cancer", "C50", "C56")
    assert same_value("tnm", "T4 N0 M0", "cT4 cN0 cM0")
    assert not same_value("tnm", "cT2 N0 M0", "cT2 cN1 cM0")
    assert same_value("ecog", "2", 2)


def test_missing_annotations_say_where(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="annotations_part"):
        list(read_truth(tmp_path))
