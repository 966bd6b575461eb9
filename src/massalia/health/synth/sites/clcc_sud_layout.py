"""clcc_sud: a cancer centre's export (comma CSV, English headers, ISO dates, LOCAL codes)."""

from __future__ import annotations

from massalia.health.synth.sites.layout import Column as C  # noqa: N817 (short alias keeps the tables readable)
from massalia.health.synth.sites.layout import FileLayout, SiteLayout

D = "YYYY-MM-DD"
DT = "YYYY-MM-DDTHH:MM:SS"
NUM = "decimal point"

LAYOUT = SiteLayout(
    name="clcc_sud",
    description="Comprehensive cancer centre (CLCC): oncology information system, local codes.",
    file_format="csv",
    separator=",",
    encoding="utf-8",
    date_format="%Y-%m-%d",
    datetime_format="%Y-%m-%dT%H:%M:%S",
    decimal=".",
    files=(
        FileLayout(
            "patients",
            "patients_part{part:04d}.csv",
            (
                C("patient_id", "string", "CS + 7 digits", True),
                C("gender", "string", "male or female", True),
                C("birth_date", "date", D, True),
                C("zip_code", "string", "5 digits"),
                C("vital_status", "string", "alive or dead", True),
                C("death_date", "date", D + " (deaths live here), empty if alive"),
                C("last_contact_date", "date", D),
            ),
        ),
        FileLayout(
            "visits",
            "encounters_part{part:04d}.csv",
            (
                C("encounter_id", "string", "E + 11 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("encounter_type", "string", "OUTPATIENT, DAY_CARE, INPATIENT, EMERGENCY", True),
                C("admit_datetime", "datetime", DT, True),
                C("discharge_datetime", "datetime", DT),
                C("department", "string", "MED_ONC, SURGERY, RADIOTHERAPY, ..."),
            ),
        ),
        FileLayout(
            "diagnoses",
            "diagnoses_part{part:04d}.csv",
            (
                C("diagnosis_id", "string", "X + 10 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("encounter_id", "string", "E + 11 digits or empty"),
                C("diagnosis_date", "date", D, True),
                C("local_code", "string", "LOCAL DX-* code (see clcc_sud_codes.csv)", True),
                C("description", "string", "English label"),
                C("category", "string", "primary_cancer, metastasis, comorbidity, adverse_event, second_cancer"),
            ),
        ),
        FileLayout(
            "tumours",
            "tumors_part{part:04d}.csv",
            (
                C("tumor_id", "string", "TU + 8 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("diagnosis_date", "date", D, True),
                C("local_code", "string", "LOCAL DX-* code of the primary cancer", True),
                C("histology_code", "string", "LOCAL HI-* code (see clcc_sud_codes.csv)"),
                C("grade", "string", "G1, G2, G3 or empty"),
                C("ecog_ps", "string", "ECOG performance status at diagnosis, 0-4; empty if unknown"),
            ),
        ),
        FileLayout(
            "staging",
            "staging_part{part:04d}.csv",
            (
                C("tumor_id", "string", "TU + 8 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("staging_date", "date", D, True),
                C("staging_type", "string", "clinical or pathological", True),
                C("t", "string", "T1..T4, TX (no prefix)"),
                C("n", "string", "N0..N3"),
                C("m", "string", "M0, M1 or empty (pathological)"),
                C("stage_group", "string", "I, II, III, IV (clinical rows only)"),
            ),
        ),
        FileLayout(
            "biomarkers",
            "biomarkers_part{part:04d}.csv",
            (
                C("tumor_id", "string", "TU + 8 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("test_date", "date", D, True),
                C("marker_code", "string", "LOCAL BM-* code", True),
                C("result", "string", "positive, negative, or empty when numeric"),
                C("value_numeric", "decimal", NUM),
                C("unit", "string", "%, ng/mL, ..."),
            ),
        ),
        FileLayout(
            "drugs",
            "medications_part{part:04d}.csv",
            (
                C("administration_id", "string", "A + 11 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("encounter_id", "string", "E + 11 digits", True),
                C("admin_datetime", "datetime", DT, True),
                C("drug_code", "string", "LOCAL MED-* code (see clcc_sud_codes.csv)", True),
                C("drug_name", "string", "English INN"),
                C("dose_value", "decimal", NUM),
                C("dose_unit", "string", "mg"),
                C("route", "string", "intravenous, oral, subcutaneous"),
                C("regimen", "string", "regimen name (FEC100, FOLFOX...) or empty"),
                C("line", "int", "treatment line or empty"),
                C("cycle", "int", "cycle or empty"),
            ),
        ),
        FileLayout(
            "procedures",
            "procedures_part{part:04d}.csv",
            (
                C("procedure_id", "string", "P + 10 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("encounter_id", "string", "E + 11 digits", True),
                C("procedure_date", "date", D, True),
                C("procedure_code", "string", "LOCAL PR-* code (see clcc_sud_codes.csv)", True),
                C("description", "string", "English label"),
            ),
        ),
        FileLayout(
            "labs",
            "lab_results_part{part:04d}.csv",
            (
                C("result_id", "string", "R + 11 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("collected_at", "datetime", DT, True),
                C("test_code", "string", "LOCAL LAB-* code (see clcc_sud_codes.csv)", True),
                C("test_name", "string", "English label"),
                C("value", "decimal", NUM, True),
                C("unit", "string", "LOCAL unit (g/L, G/L, mg/dL...; conversion in clcc_sud_codes.csv)"),
                C("ref_low", "decimal", NUM),
                C("ref_high", "decimal", NUM),
            ),
        ),
        FileLayout(
            "documents",
            "notes_part{part:04d}.csv",
            (
                C("note_id", "string", "N + 10 digits", True),
                C("patient_id", "string", "CS + 7 digits", True),
                C("encounter_id", "string", "E + 11 digits or empty"),
                C("note_date", "date", D, True),
                C("note_type", "string", "PATHOLOGY, TUMOR_BOARD, CONSULTATION, DISCHARGE, IMAGING", True),
                C("note_text", "string", "French free text, multi-line, quoted", True),
            ),
        ),
    ),
)
