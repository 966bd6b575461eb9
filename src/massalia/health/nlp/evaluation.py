"""Precision, recall and F1 of the findings against the generator's ground truth, per entity type and qualifier.

Matching: a predicted entity matches a true one of the same label when their character spans overlap (each
true entity matches at most one prediction, the first overlapping one). An entity is *correct* when it matches
and its value agrees (:func:`same_value`); precision and recall count correct entities. Qualifiers are scored
over the matched pairs: for ``negated``, a true positive is a matched pair where both say negated.

The ground truth is the generator's annotation file (``truth/annotations_part*.jsonl``): one JSON object per
note with its ``note_id`` (the id the site wrote) and its spans.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from massalia.health.nlp.pipeline import QUALIFIERS, Finding, tnm_value

EVALUATED_LABELS: tuple[str, ...] = (
    "cancer", "histology", "tnm", "stage", "biomarker", "drug", "date", "metastasis", "comorbidity", "procedure",
    "adverse_event", "ecog", "progression",
)  # fmt: skip


@dataclass
class Counts:
    """True positives, false positives and false negatives, with the scores they give."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        """Tp / (tp + fp); 1.0 when nothing was predicted."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Tp / (tp + fn); 1.0 when there was nothing to find."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        """How many true items there were."""
        return self.tp + self.fn


@dataclass
class Evaluation:
    """Scores per entity type and per qualifier, over ``notes`` notes."""

    notes: int = 0
    entities: dict[str, Counts] = field(default_factory=dict)
    qualifiers: dict[str, Counts] = field(default_factory=dict)

    def overall(self) -> Counts:
        """Micro-averaged counts over every entity type."""
        total = Counts()
        for counts in self.entities.values():
            total.tp += counts.tp
            total.fp += counts.fp
            total.fn += counts.fn
        return total

    def rows(self) -> list[dict[str, Any]]:
        """One row per entity type and qualifier (kind, name, support, precision, recall, f1)."""
        out = []
        for kind, table in (("entity", self.entities), ("qualifier", self.qualifiers)):
            for name, c in sorted(table.items()):
                out.append(
                    {
                        "kind": kind,
                        "name": name,
                        "support": c.support,
                        "precision": round(c.precision, 4),
                        "recall": round(c.recall, 4),
                        "f1": round(c.f1, 4),
                    }
                )
        o = self.overall()
        out.append(
            {"kind": "entity", "name": "ALL", "support": o.support, "precision": round(o.precision, 4),
             "recall": round(o.recall, 4), "f1": round(o.f1, 4)}
        )  # fmt: skip
        return out


def same_value(label: str, predicted: str, truth: object) -> bool:
    """Whether a predicted value agrees with the ground truth's.

    Cancers compare by ICD-10 category or site group (the text rarely says the sub-site: ``cancer ORL``),
    TNM by categories (:func:`~massalia.health.nlp.pipeline.tnm_value`, prefix aside), other values exactly.

    Examples
    --------
    >>> same_value("cancer", "C50", "C50.4"), same_value("tnm", "cT2 N1 M0", "cT2 cN1 cM0")
    (True, True)
    """
    text = str(truth)
    if label == "cancer":
        return _cancer_group(predicted) == _cancer_group(text)
    if label == "tnm":
        # The prefix (c/p) is often left out of the text ("T4N0M0"): compare the categories.
        return _categories(predicted) == _categories(tnm_value(text) or "")
    return predicted == text


def _cancer_group(code: str) -> str:
    """ICD-10 category, with the sites a note names as one (``cancer ORL``: C00-C14 and C30-C32; colorectal)."""
    category = code[:3]
    if category[:1] == "C" and category[1:].isdigit():
        number = int(category[1:])
        if number <= 14 or 30 <= number <= 32:
            return "head_neck"
        if 18 <= number <= 20:
            return "colorectal"
        if 82 <= number <= 85:
            return "lymphoma"
    return category


def _categories(tnm: str) -> str:
    return " ".join(part.lstrip("cpy") for part in tnm.split())


@dataclass(frozen=True)
class TruthNote:
    """One note's ground truth: its site id and its annotated spans."""

    note_id: str
    spans: tuple[Mapping[str, Any], ...]


def read_truth(folder: Path) -> Iterator[TruthNote]:
    """The annotations under ``folder`` (a generated sources folder or its ``truth/`` folder)."""
    truth = folder / "truth" if (folder / "truth").is_dir() else folder
    files = sorted(truth.glob("annotations_part*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no annotations_part*.jsonl under {truth}: generate sources with documents first")
    for path in files:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    record = json.loads(line)
                    yield TruthNote(str(record["note_id"]), tuple(record.get("spans", ())))


def evaluate(
    predicted: Mapping[str, Sequence[Finding]], truth: Iterable[TruthNote], *, labels: Sequence[str] = EVALUATED_LABELS
) -> Evaluation:
    """Score ``predicted`` (findings by note id) against ``truth``; notes absent from ``predicted`` are skipped."""
    result = Evaluation()
    for label in labels:
        result.entities[label] = Counts()
    for q in QUALIFIERS:
        result.qualifiers[q] = Counts()
    for note in truth:
        if note.note_id not in predicted:
            continue
        result.notes += 1
        _score_note(result, [f for f in predicted[note.note_id] if f.label in labels],
                    [s for s in note.spans if s["label"] in labels])  # fmt: skip
    return result


def _score_note(result: Evaluation, found: Sequence[Finding], spans: Sequence[Mapping[str, Any]]) -> None:
    used: set[int] = set()
    for span in spans:
        match = next(
            (
                j
                for j, f in enumerate(found)
                if j not in used and f.label == span["label"] and f.start < span["end"] and span["start"] < f.end
            ),
            None,
        )
        counts = result.entities[span["label"]]
        if match is None:
            counts.fn += 1
            for q in QUALIFIERS:
                if span.get(q):
                    result.qualifiers[q].fn += 1
            continue
        used.add(match)
        f = found[match]
        if same_value(span["label"], f.value, span["value"]):
            counts.tp += 1
        else:
            counts.fn += 1
            counts.fp += 1
        for q in QUALIFIERS:
            truth_q, found_q = bool(span.get(q)), bool(getattr(f, q))
            qc = result.qualifiers[q]
            qc.tp += truth_q and found_q
            qc.fp += found_q and not truth_q
            qc.fn += truth_q and not found_q
    for j, f in enumerate(found):
        if j not in used:
            result.entities[f.label].fp += 1
            for q in QUALIFIERS:
                if getattr(f, q):
                    result.qualifiers[q].fp += 1
