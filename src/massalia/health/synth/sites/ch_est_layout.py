"""ch_est: a general hospital's export (Parquet, YYYYMMDD and epoch dates, ICD-10 + ICD-O-3, NDJSON notes)."""

from __future__ import annotations

from massalia.health.synth.sites.layout import Column as C  # noqa: N817 (short alias keeps the tables readable)
from massalia.health.synth.sites.layout import FileLayout, SiteLayout

D = "int32 YYYYMMDD (20230314)"
DT = "int64 seconds since 1970-01-01 UTC"

LAYOUT = SiteLayout(
    name="ch_est",
    description="General hospital (CH): Parquet extracts from the PMSI/lab systems, NDJSON documents.",
    file_format="parquet",
    separator="",
    encoding="utf-8",
    date_format="yyyymmdd-int",
    datetime_format="epoch-s",
    decimal=".",
    files=(
        FileLayout(
            "patients",
            "patient_part{part:04d}.parquet",
            (
                C("nip", "string", "8 upper-case hex chars", True),
                C("sexe", "int", "INSEE code: 1 male, 2 female", True),
                C("naissance", "date", D, True),
                C("commune_insee", "string", "5 chars"),
            ),
        ),
        FileLayout(
            "deaths",
            "deces_part{part:04d}.parquet",
            (
                C("nip", "string", "8 hex chars", True),
                C("date_deces", "date", D, True),
            ),
        ),
        FileLayout(
            "visits",
            "venue_part{part:04d}.parquet",
            (
                C("venue_id", "int", "int64", True),
                C("nip", "string", "8 hex chars", True),
                C("nature", "string", "C (consultation), HDJ, HOSP, URG", True),
                C("debut", "datetime", DT, True),
                C("fin", "datetime", DT),
            ),
        ),
        FileLayout(
            "diagnoses",
            "diagnostic_part{part:04d}.parquet",
            (
                C("venue_id", "int", "int64", True),
                C("nip", "string", "8 hex chars", True),
                C("date_diag", "date", D, True),
                C("cim10", "string", "ICD-10 WITH dot (C50.9, C61, E11.9)", True),
                C("rang", "string", "principal or associe"),
            ),
        ),
        FileLayout(
            "tumours",
            "tumeur_part{part:04d}.parquet",
            (
                C("tumeur_id", "int", "int64", True),
                C("nip", "string", "8 hex chars", True),
                C("date_diag", "date", D, True),
                C("topographie", "string", "ICD-O-3 topography (C50.9)", True),
                C("morphologie", "string", "ICD-O-3 morphology (8500/3)", True),
                C("tnm_clinique", "string", "compact 'cT2N1M0'"),
                C("tnm_pathologique", "string", "compact 'pT2N1' or null"),
                C("stade", "string", "I, II, III, IV"),
                C("ecog", "int", "int8: ECOG performance status at diagnosis, 0-4; null if unknown"),
            ),
        ),
        FileLayout(
            "biomarkers",
            "marqueur_part{part:04d}.parquet",
            (
                C("tumeur_id", "int", "int64", True),
                C("nip", "string", "8 hex chars", True),
                C("date_prelev", "date", D, True),
                C("loinc", "string", "LOINC, or the lab's local MOL-* code for molecular/IHC markers", True),
                C("resultat", "string", "POS, NEG, or number as text"),
                C("unite", "string", "UCUM or null"),
            ),
        ),
        FileLayout(
            "drugs",
            "medicament_part{part:04d}.parquet",
            (
                C("venue_id", "int", "int64", True),
                C("nip", "string", "8 hex chars", True),
                C("administre_le", "datetime", DT, True),
                C("atc", "string", "ATC 5th level", True),
                C("dose_mg", "decimal", "float64"),
                C("voie", "string", "IV, PO, SC"),
            ),
        ),
        FileLayout(
            "procedures",
            "acte_part{part:04d}.parquet",
            (
                C("venue_id", "int", "int64", True),
                C("nip", "string", "8 hex chars", True),
                C("date_acte", "date", D, True),
                C("snomed", "string", "SNOMED CT procedure", True),
            ),
        ),
        FileLayout(
            "labs",
            "labo_part{part:04d}.parquet",
            (
                C("nip", "string", "8 hex chars", True),
                C("venue_id", "int", "int64 or null"),
                C("preleve_le", "datetime", DT, True),
                C("loinc", "string", "LOINC", True),
                C("valeur", "string", "number as TEXT with point ('12.5'; may be '<0.5')", True),
                C("unite", "string", "UCUM"),
                C("ref_min", "decimal", "float64"),
                C("ref_max", "decimal", "float64"),
            ),
        ),
        FileLayout(
            "documents",
            "documents_part{part:04d}.ndjson",
            (
                C("doc_id", "string", "DOC + 10 digits", True),
                C("nip", "string", "8 hex chars", True),
                C("venue_id", "int", "int64 or null"),
                C("date", "string", "YYYYMMDD as a JSON string", True),
                C("type", "string", "anapath, rcp, consultation, crh, imagerie", True),
                C("texte", "string", "French free text", True),
            ),
        ),
    ),
)
