"""Generated clinical documents held in memory with their ground truth, for evaluations and tests.

The same draws as :func:`massalia.health.synth.generate.generate` (same seed, same blocks, same sites),
without writing any file: each document's text with its annotation record (``spans`` of the clinical
entities and ``identifiers`` planted by :mod:`massalia.health.synth.identifiers`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from massalia.health.synth import documents as docgen
from massalia.health.synth.cohort import draw_cohort
from massalia.health.synth.generate import BLOCK, SITE_WEIGHTS, subset
from massalia.health.synth.hazard import DEFAULT_MODEL
from massalia.health.synth.timeline import build_timeline

MAX_PATIENTS = 100_000
"""Largest corpus drawn in memory (about 640,000 documents)."""


@dataclass(frozen=True)
class GeneratedNote:
    """One generated document: its text and its annotation record (see ``documents.build_documents``)."""

    text: str
    truth: dict[str, Any]


def generated_notes(n_patients: int, seed: int = 0) -> Iterator[GeneratedNote]:
    """The documents of the first ``n_patients`` patients the generator draws with ``seed``.

    Examples
    --------
    >>> notes = list(generated_notes(5, seed=1))
    >>> all(n.text[i["start"]:i["end"]] == i["text"] for n in notes for i in n.truth["identifiers"])
    True
    """
    if not 0 < n_patients <= MAX_PATIENTS:
        raise ValueError(f"n_patients must be within 1..{MAX_PATIENTS}, got {n_patients}")
    names = list(SITE_WEIGHTS)
    weights = np.array([SITE_WEIGHTS[s] for s in names])
    weights = weights / weights.sum()
    for block in range((n_patients - 1) // BLOCK + 1):
        rng = np.random.default_rng([seed, block])
        index = np.arange(block * BLOCK, (block + 1) * BLOCK, dtype=np.int64)
        cohort = draw_cohort(rng, index, weights, DEFAULT_MODEL)
        timeline = build_timeline(rng, cohort)
        for s, site in enumerate(names):
            c, t = subset(cohort, timeline, (index < n_patients) & (cohort.site == s))
            if len(c) == 0:
                continue
            docs, annotations = docgen.build_documents(np.random.default_rng([seed, block, 1, s]), c, t, site)
            for text, line in zip(docs["text"].tolist(), annotations, strict=True):
                yield GeneratedNote(str(text), json.loads(line))
