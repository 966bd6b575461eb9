"""The clinical pipeline on short French notes: expected findings written inline, offsets checked against the text."""

from __future__ import annotations

import pytest

from massalia.health.nlp.lexicon import fold
from massalia.health.nlp.pipeline import ClinicalPipeline, Finding, nlp_system, tnm_value

# (note, [(label, value, lexical variant, qualifiers set)])
CASES: list[tuple[str, list[tuple[str, str, str, set[str]]]]] = [
    ("Pas de métastase hépatique.", [("metastasis", "C78.7", "métastase hépatique", {"negated"})]),
    ("Suspicion de cancer du sein.", [("cancer", "C50", "cancer du sein", {"hypothesis"})]),
    ("Sa mère a été traitée pour un cancer du sein.", [("cancer", "C50", "cancer du sein", {"family"})]),
    (
        "HER2 positif, RE négatif, Ki-67 20 %, PD-L1 60 %.",
        [
            ("biomarker", "her2:positive", "HER2 positif", set()),
            ("biomarker", "er:negative", "RE négatif", set()),
            ("biomarker", "ki67:20", "Ki-67 20 %", set()),
            ("biomarker", "pdl1:60", "PD-L1 60 %", set()),
        ],
    ),
    ("Examen : PS 1.", [("ecog", "1", "PS 1", set())]),
    ("Stade : cT2N1M0 (stade II).", [("tnm", "cT2 N1 M0", "cT2N1M0", set()), ("stage", "II", "stade II", set())]),
    ("RCP du 3 mars 2021.", [("date", "2021-03-03", "3 mars 2021", set())]),
    (
        "Diagnostic : carcinome canalaire infiltrant, grade 2.",
        [("histology", "8500/3", "carcinome canalaire infiltrant", set())],
    ),
    ("Pas de récidive.", [("progression", "relapse", "récidive", {"negated"})]),
    (
        "Traitement par capécitabine + Keytruda.",
        [("drug", "L01BC06", "capécitabine", set()), ("drug", "L01FF02", "Keytruda", set())],
    ),
    (
        "Absence de métastase. Cancer du poumon confirmé.",
        [("metastasis", "C79.9", "métastase", {"negated"}), ("cancer", "C34", "Cancer du poumon", set())],
    ),
    ("Antécédents : HTA, diabète de type 2.", [("comorbidity", "I10", "HTA", {"history"}),
                                               ("comorbidity", "E11.9", "diabète de type 2", {"history"})]),
    ("Bonjour, rien à signaler.", []),
]  # fmt: skip


def _qualifiers(f: Finding) -> set[str]:
    return {q for q in ("negated", "hypothesis", "family", "history") if getattr(f, q)}


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:40] for c in CASES])
def test_findings_of_short_notes(
    pipeline: ClinicalPipeline, text: str, expected: list[tuple[str, str, str, set[str]]]
) -> None:
    (found,) = pipeline.extract([text])
    assert [(f.label, f.value, f.lexical_variant, _qualifiers(f)) for f in found] == expected
    for f in found:
        assert text[f.start : f.end] == f.lexical_variant  # offsets are the note's own


def test_negation_does_not_leak_into_the_next_sentence(pipeline: ClinicalPipeline) -> None:
    (found,) = pipeline.extract(["Pas de métastase. Métastases osseuses à la scintigraphie."])
    assert [(f.value, f.negated) for f in found if f.label == "metastasis"] == [("C79.9", True), ("C79.5", False)]


def test_accents_and_case_do_not_matter_and_offsets_survive_folding(pipeline: ClinicalPipeline) -> None:
    text = "RECEPTEURS AUX ŒSTROGÈNES positifs ; Ki67 : 30 %"
    assert len(fold(text)) == len(text)
    (found,) = pipeline.extract([text])
    assert [(f.value, f.lexical_variant) for f in found] == [
        ("er:positive", "RECEPTEURS AUX ŒSTROGÈNES positifs"),
        ("ki67:30", "Ki67 : 30 %"),
    ]


def test_batches_keep_the_order_of_the_notes(pipeline: ClinicalPipeline) -> None:
    texts = [f"ECOG {i % 5}" if i % 3 else "Rien." for i in range(150)]
    found = pipeline.extract(texts)
    assert [[f.value for f in group] for group in found] == [[str(i % 5)] if i % 3 else [] for i in range(150)]


def test_a_huge_note_is_cut_not_hung(pipeline: ClinicalPipeline) -> None:
    (found,) = pipeline.extract(["HTA. " + "x " * 200_000])
    assert [f.value for f in found] == ["I10"]


def test_tnm_values_compare_across_spellings() -> None:
    assert tnm_value("cT2 cN1 cM0") == tnm_value("cT2N1M0") == "cT2 N1 M0"
    assert tnm_value("pT1c pN0") == "pT1c N0"
    assert tnm_value("rien") is None


def test_the_system_names_both_versions() -> None:
    assert nlp_system().startswith("massalia-nlp 1.") and "edsnlp 0.23" in nlp_system()


def test_a_letterhead_department_is_not_a_procedure_and_a_nir_is_not_a_date(pipeline: ClinicalPipeline) -> None:
    text = "CHU Nord - Département de radiothérapie\nNIR : 1 56 03 13 055 123 45\nRadiothérapie le 12/03/2021."
    (found,) = pipeline.extract([text])
    procedures = [f for f in found if f.label == "procedure"]
    dates = [f for f in found if f.label == "date"]
    assert [text[f.start : f.end] for f in procedures] == ["Radiothérapie"]
    assert [text[f.start : f.end] for f in dates] == ["12/03/2021"]
