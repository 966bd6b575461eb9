"""The direct identifiers the generator plants in its documents: exact ground truth, valid numbers, hard cases."""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict

import pyarrow.parquet as pq
from test_documents import _annotations, _notes

from massalia.health.synth.identifiers import (
    FIRST_NAMES_F,
    FIRST_NAMES_M,
    IDENTIFIER_TYPES,
    SURNAMES,
    nir_key,
    patient_identity,
)


def test_every_identifier_offset_matches_the_written_text(small_run):
    """The spans hold in the files as the sites write them (CSV quoting, NDJSON escapes included)."""
    out, summary = small_run
    kinds: Counter[str] = Counter()
    for part in summary.parts:
        texts = _notes(out, part)
        for note in _annotations(out, part):
            text = texts[note["note_id"]]
            for span in note["identifiers"]:
                assert text[span["start"] : span["end"]] == span["text"], (note["note_id"], span)
                kinds[span["type"]] += 1
    assert set(kinds) == set(IDENTIFIER_TYPES), kinds
    assert min(kinds.values()) > 100, kinds


def test_nir_keys_check_and_patients_keep_one_identity(small_run):
    out, _ = small_run
    by_patient: dict[tuple[str, str], set[str]] = defaultdict(set)
    nirs = 0
    for note in _annotations(out, 0):
        for span in note["identifiers"]:
            if span["type"] == "nir":
                digits = span["text"].replace(" ", "")
                assert len(digits) == 15 and nir_key(digits[:13]) == int(digits[13:]), span
                by_patient[(note["site"], note["patient_id"])].add(digits)
                nirs += 1
    assert nirs > 50
    assert all(len(values) == 1 for values in by_patient.values())  # one person, one NIR in all their notes


def test_the_cases_are_hard(small_run):
    """Names that are words, uppercase blocks, particles, initials, lowercase banners, split banners, +33 phones."""
    out, _ = small_run
    texts = _notes(out, 0)
    names: Counter[str] = Counter()
    phones, nirs, uncued, split = Counter(), Counter(), 0, 0
    for note in _annotations(out, 0):
        text = texts[note["note_id"]]
        split += "\nPrénom : " in text
        for span in note["identifiers"]:
            value = span["text"]
            uncued += not span["cue"]
            if span["type"] == "name":
                names["upper" if value.isupper() and len(value) > 2 else "lower" if value.islower() else "other"] += 1
                names["word"] += value in {"Rose", "Blanc", "Martin", "Petit", "Blanche", "Noir", "Berger", "Roux"}
                names["particle"] += bool(re.match(r"(de |de la |du |Le |Da )", value, re.IGNORECASE))
                names["initial"] += bool(re.fullmatch(r"[A-Z]\.", value))
                names["in sentence"] += (
                    text[span["end"] : span["end"] + 2] == ", " and " ans" in text[span["end"] :][:12]
                )
            elif span["type"] == "phone":
                phones["+33" if value.startswith("+33") else "dots" if "." in value else "other"] += 1
            elif span["type"] == "nir":
                nirs["spaced" if " " in value else "plain"] += 1
    assert all(names[k] > 20 for k in ("upper", "lower", "word", "particle", "initial", "in sentence")), names
    assert all(phones[k] > 20 for k in ("+33", "dots", "other")) and min(nirs.values()) > 10, (phones, nirs)
    assert split > 50 and uncued > 0


def test_names_are_the_shipped_common_words_or_built_from_syllables():
    """No real person: first names and surnames from the module's lists, or syllables."""
    shipped = {w for s in (*FIRST_NAMES_F, *FIRST_NAMES_M, *SURNAMES) for w in re.split(r"[ -]", s)}
    syllabic = re.compile(r"(?:ba|ber|lo|mar|ti|gue|ran|dou|vi|ler|sa|cor|nel|pi|thou)+(?:ine)?", re.IGNORECASE)
    for index in range(300):
        person = patient_identity("clcc_sud", index, index % 2 == 0, 0, f"CS{index:07d}").person
        for word in re.split(r"[ -]", f"{person.first} {person.last}"):
            assert word in shipped or word.lower() in {"de", "la", "du", "le", "da"} or syllabic.fullmatch(word), word


def test_identity_is_stable_and_draws_nothing_from_the_text_generator():
    state = random.getstate()
    first = patient_identity("chu_nord", 42, True, 1000, "100000042")
    assert random.getstate() == state  # a generator of its own, seeded by site and index
    assert patient_identity("chu_nord", 42, True, 1000, "100000042") == first
    assert patient_identity("ch_est", 42, True, 1000, "x") != first


def test_the_birth_date_is_the_patient_s_and_a_date_of_the_clinical_truth_too(small_run):
    """The header's birth date agrees with the structured truth and is annotated for NLP as every other date."""
    out, _ = small_run
    truth = pq.read_table(out / "truth" / "patients_part0000.parquet").to_pylist()
    births = {(t["site"], t["source_patient_id"]): t["birth_date"].isoformat() for t in truth}
    checked = 0
    for note in _annotations(out, 0):
        first = min((s for s in note["spans"] if s["label"] == "date"), key=lambda s: s["start"])
        planted = [s for s in note["identifiers"] if s["type"] == "date" and s["start"] == first["start"]]
        assert planted and first["value"] == births[(note["site"], note["patient_id"])]
        assert sum(1 for s in note["identifiers"] if (s["start"], s["end"]) == (first["start"], first["end"])) == 1
        checked += 1
    assert checked > 1000
