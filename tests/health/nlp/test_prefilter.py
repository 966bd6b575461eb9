"""The speed devices change no finding: the guarded patterns (first characters, shared word-start look-behind,
characters forbidden before a date) find exactly what the patterns as written find, and the batched extraction
(the note's text and Massalia's matches carried with each doc) finds what the plain spaCy call finds, on
hand-written notes and on the demo warehouse's notes."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from massalia.engine.duckdb import DuckDBEngine
from massalia.health.nlp import lexicon as lx
from massalia.health.nlp.pipeline import ClinicalPipeline, Finding
from massalia.health.nlp.prefilter import (
    excluded_before_class,
    first_char_class,
    guarded,
    guarded_source,
    second_char_class,
)

NOTES = [
    "Carcinome canalaire infiltrant du sein gauche, pT2 N1a M0 (UICC 2017), stade IIB. RE positif, HER2 négatif.",
    "Depuis le 3 mars 2021, traitement par FOLFOX ; à partir du 1er avril 2021 pembrolizumab 200 mg. ECOG 1.",
    "TisN0M0. cT3 cN2 cM1. pTxNx. Vingt-et-un janvier deux mille vingt. Le 15/06/2019, RCP : stade IV.",
    "Pas de métastase hépatique ni de lésion osseuse secondaire. ATCD : DT2, HTA. Mère : cancer du sein.",
    "Tél 04 91 22 33 44. NIR 1 56 03 13 055 123 45. Né le 01.02.1950.",
    "Traitement du 12/03/2021 au 3 avril 2021, jusqu'au vingt-et-un mai 2021 ; depuis le 2021-06-01. Page 1/2.",
]


@pytest.fixture(scope="module")
def unguarded() -> ClinicalPipeline:
    """The pipeline with its patterns as written (the reference the guard must not change)."""
    return ClinicalPipeline(guard=False)


def test_the_class_holds_every_first_character() -> None:
    assert first_char_class(r"(?:\bcancer|k) du sein|\d+ mg") == r"[ck\d]"
    assert first_char_class(r"(?<=depuis )?(?:le )?\d{1,2}") == r"[l\d]"
    # Patterns that may be empty or start anywhere get no guard at all.
    assert first_char_class(r"x?") is None and first_char_class(r".a") is None and first_char_class(r"[^a]b") is None
    assert first_char_class(r"(?i:a)b") is None  # an inline flag inside: not analysed
    assert guarded_source(r"(?i)t\d") == r"(?i)(?=[t][\d])(?:t\d)"  # leading global flags stay first
    # The second character: every alternative's, a repeat's own first, what follows an optional part.
    assert second_char_class(r"(?:\bcancer|k) du sein|\d+ mg") == r"[a\ \d]"
    assert second_char_class(r"a?b+c") == r"[bc]" and second_char_class(r"ab?") is None  # "a" alone may match
    assert second_char_class(r"a.") is None and second_char_class(r"a(?i:b)") is None
    assert first_char_class(r"[^\S]+x") == r"[\s]" and first_char_class(r"[^\S\D]x") is None  # a negated category
    # Characters that cannot precede a match: single-character alternatives of the opening negative look-behinds.
    assert excluded_before_class(r"(?<=du )?(?<!.-|[a-z]|[0-9][,]?)\d+") == "[a-z0-9]"
    assert excluded_before_class(r"\b(?<![a-z%])\d") == r"[a-z%]"
    assert excluded_before_class(r"(?<!ab)\d") is None and excluded_before_class(r"(?<![a-z]x?y)\d") is None
    assert excluded_before_class(r"\d(?<![a-z])") is None  # not at the start: says nothing of the character before
    assert guarded_source(r"(?<![a-z])\d", before=True) == r"(?=[\d])(?<![a-z])(?:(?<![a-z])\d)"


@pytest.mark.parametrize("engine_of", ["re", "edsnlp"])
def test_a_guarded_pattern_finds_the_same_matches(engine_of: str, pipeline: ClinicalPipeline) -> None:
    # Python's ``re`` (Massalia's patterns) and the engine EDS-NLP compiles its patterns with (``regex``).
    dates = dict(pipeline.nlp.pipeline)["dates"].regex_matcher.inner
    engine: object = (
        re
        if engine_of == "re"
        else importlib.import_module(type({k: v for k, v, *_ in dates.regex}["absolute"][0]).__module__.lstrip("_"))
    )
    assert engine_of == "re" or engine is not re
    text = " ".join(NOTES).lower()
    sources = (
        r"(?<!\w)(?:t[0-4x]|tis)(?:\s*n[0-3x])?",
        r"\b(?:du|le)\s+\d+\s+\w+|\d{4}",
        r"(?:s|se)in(?:s)?",
        r"(?<![a-z]|\.)\d{1,2}(?:[/.]\d{1,2})+",  # a date-like opening look-behind
    )
    for source in sources:
        compiled = engine.compile(source)  # type: ignore[attr-defined]
        for fast in (guarded(compiled), guarded(compiled, before=True)):
            assert fast.pattern != compiled.pattern
            assert [(m.span(), m.groups()) for m in fast.finditer(text)] == [
                (m.span(), m.groups()) for m in compiled.finditer(text)
            ]
    assert "(?<![a-z\\.])" in guarded(engine.compile(sources[-1]), before=True).pattern  # type: ignore[attr-defined]


def test_the_same_findings_as_the_patterns_as_written(
    pipeline: ClinicalPipeline, unguarded: ClinicalPipeline, demo_warehouse: Path
) -> None:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        texts = [str(t) for t in engine.query("SELECT note_text FROM note ORDER BY note_id LIMIT 200").column(0)
                 .to_pylist()]  # fmt: skip
    found = pipeline.extract(NOTES + texts)
    assert found == unguarded.extract(NOTES + texts)
    assert sum(len(f) for f in found) > 1000
    assert {f.label for f in found[2]} >= {"tnm", "date", "stage"}
    # The guard is really in place (the speed claim): every date, TNM and Massalia pattern is guarded.
    dates = dict(pipeline.nlp.pipeline)["dates"].regex_matcher.inner
    tnm = dict(pipeline.nlp.pipeline)["tnm"].regex_matcher
    guards = [p.pattern for m in (dates, tnm) for _, patterns, *_ in m.regex for p in patterns]
    guards += [p.pattern for p, _ in pipeline.patterns.by_label]
    assert guards and all(re.match(r"^(?:\(\?\w+\))?\(\?=\[", g) for g in guards)
    # A label's terms are tried only at a word start: their shared look-behind is checked once, in front.
    assert all(f")(?:{lx.WORD_START}(?:(?P<g0>" in p.pattern for p, _ in pipeline.patterns.by_label)
    assert all(p.pattern.count(lx.WORD_START) == 1 for p, _ in pipeline.patterns.by_label)
    # A day or a year cannot follow a letter or a digit: most date patterns check that before their alternations.
    absolute = [p.pattern for key, patterns, *_ in dates.regex if key == "absolute" for p in patterns]
    assert sum("])(?<![\\.:%a-zA-Z0-9" in p for p in absolute) >= 12
    # The optional "depuis le / jusqu'au" look-behind (a date's bound, never a finding) is gone, unguarded it is there.
    assert not any("bound_from" in p for p in absolute)
    as_written = dict(unguarded.nlp.pipeline)["dates"].regex_matcher.inner
    assert all("bound_from" in p.pattern for key, ps, *_ in as_written.regex if key == "absolute" for p in ps)


def test_one_normalizing_pass_gives_the_norms_and_tags_of_the_three(
    pipeline: ClinicalPipeline, unguarded: ClinicalPipeline
) -> None:
    # EDS-NLP's accents, quotes and spaces steps fused into one loop (speed): the same NORM and TAG on every token.
    texts = [*NOTES, "« Ça » l’œdème – “guillemets” ‘simples’ \t \n\n  Hôpital ÉCOLE naïve à côté", "\u00a0 \u2009 x"]
    normalizer = dict(pipeline.nlp.pipeline)["normalizer"]
    assert normalizer.accents is None and type(normalizer.spaces).__name__ == "_NormalizingPass"
    for text in texts:
        fused, three = pipeline.nlp(text), unguarded.nlp(text)
        assert [(t.norm_, t.norm, t.tag_) for t in fused] == [(t.norm_, t.norm, t.tag_) for t in three]
    assert any(t.norm_ == "hopital" for t in pipeline.nlp(texts[-2]))


def _plain(pipeline: ClinicalPipeline, text: str) -> list[Finding]:
    """One note through the plain spaCy call: Massalia's pipe finds its matches itself, the text is ``Doc.text``."""
    doc = pipeline.nlp(text)
    found = list(pipeline._qualified(doc)) + list(pipeline._dates_and_tnm(doc))
    return sorted(found, key=lambda f: (f.start, f.end))


def test_batched_extraction_finds_what_the_plain_call_finds(pipeline: ClinicalPipeline, demo_warehouse: Path) -> None:
    with DuckDBEngine(demo_warehouse, read_only=True) as engine:
        texts = [str(t) for t in engine.query("SELECT note_text FROM note ORDER BY note_id DESC LIMIT 120")
                 .column(0).to_pylist()]  # fmt: skip
    texts = NOTES + texts + ["", "Texte sans entité."]
    found = pipeline.extract(texts)
    assert found == [_plain(pipeline, text) for text in texts]
    assert sum(len(f) for f in found) > 500 and found[-2:] == [[], []]
