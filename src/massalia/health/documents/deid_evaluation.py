"""Recall and precision of the de-identification against the generator's planted identifiers.

- **recall** of a type: the share of its planted identifiers whose every non-blank character was
  replaced (by a finding of any type: a name replaced as an address is still gone);
- **precision** of a type: the share of its findings that overlap a planted identifier (of any type);
  what the rules replace that is not an identifier (a drug, a heading) lowers it;
- **leaks**: planted identifiers (3 characters or more, dates aside) still present, as written, in the output.

Names planted with no cue at all (``cue: false`` in the ground truth: ``Thierry rappellera le
secrétariat.``) are scored apart (``uncued``): no rule can find them, and mixing them in would hide how
well the rules do on the rest, or, left out silently, hide the limit.

Examples
--------
>>> from massalia.health.documents.corpus import generated_notes
>>> result = evaluate_deidentification(generated_notes(20, seed=5))
>>> result.scores["nir"].recall
1.0
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from massalia.health.documents.corpus import GeneratedNote
from massalia.health.documents.deid import IDENTIFIER_TYPES, deidentify_note


@dataclass
class TypeScore:
    """Counts of one identifier type."""

    planted: int = 0
    replaced: int = 0
    found: int = 0
    correct: int = 0

    @property
    def recall(self) -> float:
        """Share of planted identifiers replaced (1.0 when none was planted)."""
        return self.replaced / self.planted if self.planted else 1.0

    @property
    def precision(self) -> float:
        """Share of findings that are planted identifiers (1.0 when nothing was found)."""
        return self.correct / self.found if self.found else 1.0


@dataclass
class DeidEvaluation:
    """Scores per type, the documents seen, the leaks and a few missed examples (types and offsets only)."""

    scores: dict[str, TypeScore] = field(default_factory=lambda: {k: TypeScore() for k in IDENTIFIER_TYPES})
    uncued: TypeScore = field(default_factory=TypeScore)
    documents: int = 0
    leaks: int = 0
    uncued_leaks: int = 0
    missed: list[tuple[str, str]] = field(default_factory=list)


def _covered(mask: bytearray, text: str, start: int, end: int) -> bool:
    return all(mask[i] or text[i].isspace() for i in range(start, end))


def evaluate_deidentification(notes: Iterable[GeneratedNote], *, shift_days: int | None = 17) -> DeidEvaluation:
    """Score :func:`deidentify_note` on generated notes (see the module docstring for the measures)."""
    result = DeidEvaluation()
    for note in notes:
        text, truth = note.text, note.truth["identifiers"]
        out = deidentify_note(text, shift_days=shift_days)
        mask = bytearray(len(text))
        for span in out.spans:
            mask[span.start : span.end] = b"\x01" * (span.end - span.start)
        planted = bytearray(len(text))
        for item in truth:
            planted[item["start"] : item["end"]] = b"\x01" * (item["end"] - item["start"])
            score = result.scores[item["type"]] if item.get("cue", True) else result.uncued
            score.planted += 1
            if _covered(mask, text, item["start"], item["end"]):
                score.replaced += 1
            elif len(result.missed) < 50:
                result.missed.append((item["type"], item["text"]))
        for span in out.spans:
            score = result.scores[span.type]
            score.found += 1
            score.correct += any(planted[span.start : span.end])
        for cued in (True, False):
            words = {
                item["text"]
                for item in truth
                if len(item["text"]) >= 3 and item["type"] != "date" and item.get("cue", True) is cued
            }
            leaked = sum(1 for w in words if re.search(rf"(?<!\w){re.escape(w)}(?!\w)", out.text))
            if cued:
                result.leaks += leaked
            else:
                result.uncued_leaks += leaked
        result.documents += 1
    return result
