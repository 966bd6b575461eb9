"""Where each emitted source code lands in the demo vocabulary: the generator's SOURCE_TO_CONCEPT_MAP.

Hospitals write ICD-10, ATC, LOINC, SNOMED CT, ICD-O-3 and local codes. The demo vocabulary
(``massalia/health/omop/vocab``) holds real concepts but not every source vocabulary (no WHO ICD-10,
no ATC 5th level, few ICD-O-3 pairs). ``source_code_map.csv`` gives, for every code the generator
can emit, the standard concept (``target_vocabulary_id``, ``target_concept_code``) it means in that
vocabulary: itself when present, else the closest standard concept. An empty target is a gap of the
vocabulary (``VOCABULARY_GAPS``): the ETL keeps the source value with concept 0.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

from massalia.health.synth.catalogue import (
    ADVERSE_EVENTS,
    BIOMARKERS,
    CANCERS,
    COMORBIDITIES,
    DRUGS,
    LABS,
    METASTASES,
    PREGNANCY,
    PROCEDURES,
    icdo3_topography,
)

SOURCE_CODE_MAP_FILE = "source_code_map.csv"
HEADER = ("source_vocabulary_id", "source_code", "source_label", "target_vocabulary_id", "target_concept_code")

SECONDARY = "128462008"  # Secondary malignant neoplastic disease
ICD10_TO_SNOMED: dict[str, str] = {
    "C50.9": "254837009",
    "C50.4": "254837009",
    "C50.2": "254837009",
    "C61": "399068003",
    "C34.1": "363358000",
    "C34.3": "363358000",
    "C34.9": "363358000",
    "C18.7": "363410008",
    "C18.0": "363350007",
    "C18.2": "363412000",
    "C20": "363351006",
    "C67.9": "399326009",
    "C64": "363518003",
    "C43.5": "93655004",
    "C43.7": "93655004",
    "C43.6": "93655004",
    "C25.0": "363418001",
    "C25.9": "363418001",
    "C32.9": "255056009",
    "C10.9": "255056009",
    "C09.9": "255056009",
    "C01": "255056009",
    "C83.3": "118600007",
    "C82.9": "308121000",
    "C56": "363443007",
    "C54.1": "371973000",
    "C78.0": "94391008",
    "C78.7": "94381002",
    "C78.2": SECONDARY,
    "C79.3": SECONDARY,
    "C79.5": SECONDARY,
    "C77.9": SECONDARY,
    "E11.9": "44054006",
    "I10": "59621000",
    "Z33": "72892002",  # pregnant state -> 'Normal pregnancy' (4217975 in the shipped vocabulary)
    "I25.9": "53741008",
    "J44.9": "13645005",
    "N18.3": "433144002",
    "E66.9": "414916001",
    "I48.9": "49436004",
    "D70": "165517008",
    "D64.9": "271737000",
    "R11": "422587007",
    "G62.0": "386033004",
    "K52.1": "128333008",
    "J70.4": "205237003",
    "R50.9": "386661006",
}
"""ICD-10 (WHO) → SNOMED CT standard condition present in the demo vocabulary (some are broader)."""

ICDO3_PRESENT: frozenset[str] = frozenset(
    {
        "8140/3-C61.9",
        "8140/3-C34.1",
        "8140/3-C34.3",
        "8070/3-C34.1",
        "8041/3-C34.1",
        "8140/3-C18.7",
        "8140/3-C18.0",
        "8480/3-C18.7",
    }
)
"""ICD-O-3 morphology-topography pairs the generator can emit that the demo vocabulary has."""

MOLECULAR_TO_GENOMIC: dict[str, str] = {"MOL-EGFR": "3236", "MOL-ALK": "427", "MOL-KRAS": "6407", "MOL-BRAF": "1097"}
"""Local molecular pathology codes → OMOP Genomic gene variant measurements."""

LOINC_ABSENT: frozenset[str] = frozenset()
"""LOINC codes the generator writes that the demo vocabulary lacks (none since the tumour markers were added)."""


@dataclass(frozen=True)
class CodeTarget:
    """One row of the map: a source code and the standard concept it lands on (empty = gap)."""

    source_vocabulary_id: str
    source_code: str
    source_label: str
    target_vocabulary_id: str
    target_concept_code: str


@cache
def source_code_map() -> dict[tuple[str, str], CodeTarget]:
    """Every source code the generator can write, keyed by (source vocabulary, code).

    Examples
    --------
    >>> source_code_map()[("ICD10", "C50.9")].target_concept_code
    '254837009'
    """
    rows: list[CodeTarget] = []
    for c in CANCERS:
        for code, _ in c.icd10:
            rows.append(CodeTarget("ICD10", code, c.label_fr, "SNOMED", ICD10_TO_SNOMED[code]))
            for morph, label, _ in c.histologies:
                pair = f"{morph}-{icdo3_topography(code)}"
                target = ("ICDO3", pair) if pair in ICDO3_PRESENT else ("SNOMED", ICD10_TO_SNOMED[code])
                rows.append(CodeTarget("ICDO3", pair, f"{label} ({code})", *target))
    conditions = [cond for cond, _ in COMORBIDITIES.values()]
    conditions += list(ADVERSE_EVENTS.values()) + list(METASTASES.values()) + [PREGNANCY]
    rows += [
        CodeTarget("ICD10", cond.icd10, cond.label_fr, "SNOMED", ICD10_TO_SNOMED[cond.icd10]) for cond in conditions
    ]
    for d in DRUGS.values():
        rows.append(CodeTarget("ATC", d.atc, d.inn_en, "RxNorm" if d.rxnorm else "", d.rxnorm))
    for lab in LABS.values():
        absent = lab.loinc in LOINC_ABSENT
        target = ("", "") if absent else ("LOINC", lab.loinc)
        rows.append(CodeTarget("LOINC", lab.loinc, lab.label_fr, *target))
    for b in BIOMARKERS.values():
        if b.system == "LOINC":
            rows.append(CodeTarget("LOINC", b.code, b.label_fr, "LOINC", b.code))
        else:
            genomic = MOLECULAR_TO_GENOMIC.get(b.code, "")
            rows.append(CodeTarget("LOCAL", b.code, b.label_fr, "OMOP Genomic" if genomic else "", genomic))
    for p in PROCEDURES.values():
        rows.append(CodeTarget("SNOMED", p.snomed, p.label_fr, "SNOMED", p.snomed))
    out: dict[tuple[str, str], CodeTarget] = {}
    for r in rows:
        out.setdefault((r.source_vocabulary_id, r.source_code), r)
    return out


def vocabulary_gaps() -> list[CodeTarget]:
    """Emitted source codes with no concept in the demo vocabulary (mapped to concept 0 by the ETL)."""
    return [r for r in source_code_map().values() if not r.target_concept_code]


def target_of(vocabulary_id: str, code: str) -> tuple[str, str]:
    """(target vocabulary, target code) of a source code, or the source itself when it is a gap."""
    row = source_code_map()[(vocabulary_id, code)]
    return (row.target_vocabulary_id, row.target_concept_code) if row.target_concept_code else (vocabulary_id, code)


def source_code_map_csv() -> str:
    """The map as CSV text (what ``source_code_map.csv`` contains)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for r in sorted(source_code_map().values(), key=lambda r: (r.source_vocabulary_id, r.source_code)):
        w.writerow(
            [r.source_vocabulary_id, r.source_code, r.source_label, r.target_vocabulary_id, r.target_concept_code]
        )
    return buf.getvalue()


def shipped_source_code_map() -> str:
    """The map file shipped in the package (must equal ``source_code_map_csv()``)."""
    return resources.files("massalia.health.synth").joinpath(SOURCE_CODE_MAP_FILE).read_text(encoding="utf-8")
