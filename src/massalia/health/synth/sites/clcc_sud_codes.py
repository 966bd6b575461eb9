"""clcc_sud's local code list (what the site's data team hands over), built from the catalogue.

Each local code names the real concept it means as (vocabulary_id, concept_code); lab codes also carry
the local unit and the factor to the UCUM unit of the standard LOINC test. Targets are concepts of
the demo vocabulary (through ``vocab_map``); a gap keeps the standard source code it means.
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
    ucum_code,
)
from massalia.health.synth.vocab_map import target_of

CODE_LIST_FILE = "clcc_sud_codes.csv"
HEADER = (
    "local_code",
    "local_label",
    "domain",
    "target_vocabulary_id",
    "target_concept_code",
    "local_unit",
    "ucum_unit",
    "factor",
)

# Local units of the site's lab system: value_in_ucum = local_value * factor.
LOCAL_LAB_UNITS: dict[str, tuple[str, float]] = {
    "hemoglobin": ("g/L", 0.1),
    "leukocytes": ("G/L", 1.0),
    "neutrophils": ("G/L", 1.0),
    "lymphocytes": ("G/L", 1.0),
    "platelets": ("G/L", 1.0),
    "creatinine": ("mg/dL", 88.42),
    "bilirubin": ("mg/dL", 17.1),
    "glucose": ("g/L", 5.551),
}


@dataclass(frozen=True)
class LocalCode:
    """One row of the local code list."""

    local_code: str
    local_label: str
    domain: str
    target_vocabulary_id: str
    target_concept_code: str
    local_unit: str = ""
    ucum_unit: str = ""
    factor: float = 1.0


def _english(key: str) -> str:
    return key.replace("_", " ")


@cache
def local_codes() -> dict[tuple[str, str], LocalCode]:
    """Every local code, keyed by (domain, catalogue key or standard code).

    Keys: ``("diagnosis", icd10)``, ``("histology", icdo3)``, ``("biomarker", key)``,
    ``("drug", key)``, ``("procedure", key)``, ``("lab", key)``.

    Examples
    --------
    >>> local_codes()[("diagnosis", "C50.9")].target_concept_code
    'C50.9'
    """
    out: dict[tuple[str, str], LocalCode] = {}
    dx: list[tuple[str, str]] = []
    for c in CANCERS:
        dx += [(code, f"{c.key} cancer ({code})") for code, _ in c.icd10]
    dx += [(cond.icd10, _english(cond.key)) for cond, _ in COMORBIDITIES.values()]
    dx += [(cond.icd10, _english(cond.key)) for cond in ADVERSE_EVENTS.values()]
    dx += [(cond.icd10, f"metastasis {cond.key}") for cond in METASTASES.values()]
    dx.append((PREGNANCY.icd10, PREGNANCY.key))  # last: the earlier local codes keep their numbers
    for i, (code, label) in enumerate(dx, start=1):
        out[("diagnosis", code)] = LocalCode(f"DX-{i:04d}", label, "diagnosis", *target_of("ICD10", code))
    morph_labels: dict[str, str] = {}
    for c in CANCERS:
        for h in c.histologies:
            morph_labels.setdefault(h[0], h[1])
    for i, (m, label) in enumerate(sorted(morph_labels.items()), start=1):
        # A histology alone is no concept: the ETL combines it with the tumour's site (local DX code).
        out[("histology", m)] = LocalCode(f"HI-{i:03d}", label, "histology", "ICDO3", m)
    for key, b in BIOMARKERS.items():
        out[("biomarker", key)] = LocalCode(f"BM-{key.upper()}", b.label_fr, "biomarker", *target_of(b.system, b.code))
    for i, (key, d) in enumerate(DRUGS.items(), start=101):
        out[("drug", key)] = LocalCode(f"MED-{i:04d}", d.inn_en, "drug", *target_of("ATC", d.atc))
    for i, (key, p) in enumerate(PROCEDURES.items(), start=1):
        out[("procedure", key)] = LocalCode(f"PR-{i:03d}", _english(key), "procedure", *target_of("SNOMED", p.snomed))
    for key, lab in LABS.items():
        unit, factor = LOCAL_LAB_UNITS.get(key, (lab.unit, 1.0))
        out[("lab", key)] = LocalCode(
            f"LAB-{key.upper().replace('_', '')}",
            _english(key),
            "lab",
            *target_of("LOINC", lab.loinc),
            unit,
            ucum_code(lab.unit),
            factor,
        )
    return out


def code_list_csv() -> str:
    """The local code list as CSV text (what ``clcc_sud_codes.csv`` contains)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(HEADER)
    for code in local_codes().values():
        w.writerow(
            [
                code.local_code,
                code.local_label,
                code.domain,
                code.target_vocabulary_id,
                code.target_concept_code,
                code.local_unit,
                code.ucum_unit,
                f"{code.factor:g}",
            ]
        )
    return buf.getvalue()


def shipped_code_list() -> str:
    """The code list file shipped in the package (its content must equal ``code_list_csv()``)."""
    return resources.files("massalia.health.synth.sites").joinpath(CODE_LIST_FILE).read_text(encoding="utf-8")
