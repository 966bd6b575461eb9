from __future__ import annotations

import json
from collections import Counter

import pyarrow.parquet as pq
from synth_helpers import read_site_file

from massalia.health.synth.documents import LABELS

TEXT_COLUMN = {
    "chu_nord": ("id_document", "texte", "documents_part{p:04d}.csv"),
    "clcc_sud": ("note_id", "note_text", "notes_part{p:04d}.csv"),
    "ch_est": ("doc_id", "texte", "documents_part{p:04d}.ndjson"),
}


def _notes(out, part):
    texts = {}
    for site, (id_col, text_col, pattern) in TEXT_COLUMN.items():
        table = read_site_file(out / site / pattern.format(p=part), site)
        texts |= dict(zip(table.column(id_col).to_pylist(), table.column(text_col).to_pylist(), strict=True))
    return texts


def _annotations(out, part):
    lines = (out / "truth" / f"annotations_part{part:04d}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_every_span_offset_matches_the_note_text(small_run):
    out, summary = small_run
    for part in summary.parts:
        texts = _notes(out, part)
        notes = _annotations(out, part)
        assert len(notes) == len(texts) > 0
        for note in notes:
            text = texts[note["note_id"]]
            for span in note["spans"]:
                assert text[span["start"] : span["end"]] == span["text"], (note["note_id"], span)
                assert span["label"] in LABELS


def test_documents_carry_negations_hypotheses_family_and_history(small_run):
    out, _ = small_run
    flags = Counter()
    labels = Counter()
    for note in _annotations(out, 0):
        for span in note["spans"]:
            labels[span["label"]] += 1
            for q in ("negated", "hypothesis", "family", "history"):
                flags[q] += span[q]
    assert all(flags[q] > 10 for q in ("negated", "hypothesis", "family", "history")), flags
    assert set(labels) == set(LABELS), labels


def test_documents_state_the_structured_truth(small_run):
    out, _ = small_run
    truth = pq.read_table(out / "truth" / "patients_part0000.parquet").to_pylist()
    by_patient = {(t["site"], t["source_patient_id"]): t for t in truth}
    checked = 0
    for note in _annotations(out, 0):
        t = by_patient[(note["site"], note["patient_id"])]
        for span in note["spans"]:
            if span["label"] == "cancer" and not span["family"]:
                assert span["value"] == t["icd10"]
            if span["label"] == "tnm" and span["value"].startswith("c"):
                assert span["value"] == f"c{t['ct']} c{t['cn']} c{t['cm']}"
                checked += 1
            if span["label"] == "stage":
                assert span["value"] == t["stage"]
            if span["label"] == "histology":
                assert span["value"] == t["morphology"]
            if span["label"] == "biomarker":
                key, value = span["value"].split(":")
                status = t[f"marker_{key}"]
                if value in ("positive", "negative"):
                    assert status == (value == "positive"), (span, status)
    assert checked > 50


def test_wording_varies(small_run):
    out, _ = small_run
    texts = list(_notes(out, 0).values())
    assert len({t.split("\n", 1)[0] for t in texts}) > 10
    starts = Counter(t[:25] for t in texts)
    assert starts.most_common(1)[0][1] < len(texts) / 5
