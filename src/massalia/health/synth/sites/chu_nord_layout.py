"""chu_nord: a university hospital's data warehouse export (French CSV, ICD-10 without dot, ATC, LOINC)."""

from __future__ import annotations

from massalia.health.synth.sites.layout import Column as C  # noqa: N817 (short alias keeps the tables readable)
from massalia.health.synth.sites.layout import FileLayout, SiteLayout

D = "dd/mm/yyyy"
DT = "dd/mm/yyyy HH:MM"
NUM = "decimal comma (12,5)"

LAYOUT = SiteLayout(
    name="chu_nord",
    description="University hospital (CHU): clinical data warehouse export, French headers.",
    file_format="csv",
    separator=";",
    encoding="utf-8-sig",
    date_format="%d/%m/%Y",
    datetime_format="%d/%m/%Y %H:%M",
    decimal=",",
    files=(
        FileLayout(
            "patients",
            "patients_part{part:04d}.csv",
            (
                C("ipp", "string", "9 digits, site patient id", True),
                C("sexe", "string", "M or F", True),
                C("date_naissance", "date", D, True),
                C("code_postal", "string", "5 digits"),
            ),
        ),
        FileLayout(
            "deaths",
            "deces_part{part:04d}.csv",
            (
                C("ipp", "string", "9 digits", True),
                C("date_deces", "date", D, True),
                C("source_deces", "string", "HOPITAL or INSEE"),
            ),
        ),
        FileLayout(
            "visits",
            "sejours_part{part:04d}.csv",
            (
                C("num_sejour", "string", "S + 11 digits", True),
                C("ipp", "string", "9 digits", True),
                C("type_sejour", "string", "CONSULT, HDJ (day hospital), HC (full hospitalization), URG", True),
                C("date_entree", "datetime", DT, True),
                C("date_sortie", "datetime", DT),
                C("uf", "string", "care unit code (ONCO-MED, CHIR-DIG, ...)"),
                C("mode_sortie", "string", "DOMICILE, TRANSFERT, DECES"),
            ),
        ),
        FileLayout(
            "diagnoses",
            "diagnostics_part{part:04d}.csv",
            (
                C("num_sejour", "string", "S + 11 digits", True),
                C("ipp", "string", "9 digits", True),
                C("date_diagnostic", "date", D, True),
                C("code_cim10", "string", "ICD-10 WITHOUT dot (C509, C61, E119)", True),
                C("type_diagnostic", "string", "DP (principal), DR (related), DAS (associated)"),
            ),
        ),
        FileLayout(
            "tumours",
            "tumeurs_part{part:04d}.csv",
            (
                C("id_tumeur", "string", "T + 9 digits", True),
                C("ipp", "string", "9 digits", True),
                C("date_diagnostic", "date", D, True),
                C("code_cim10", "string", "ICD-10 without dot", True),
                C("code_morphologie", "string", "ICD-O-3 morphology (8500/3)"),
                C("grade", "string", "1, 2, 3 or empty"),
                C("ct", "string", "clinical T (T1, T2, T3, T4, TX)"),
                C("cn", "string", "clinical N (N0..N3)"),
                C("cm", "string", "clinical M (M0, M1)"),
                C("pt", "string", "pathological T after surgery, else empty"),
                C("pn", "string", "pathological N after surgery, else empty"),
                C("stade", "string", "stage group I, II, III, IV"),
                C("lateralite", "string", "D, G or empty"),
                C("score_oms", "string", "WHO (ECOG) performance status at diagnosis, 0-4; empty if unknown"),
            ),
        ),
        FileLayout(
            "biomarkers",
            "biomarqueurs_part{part:04d}.csv",
            (
                C("id_tumeur", "string", "T + 9 digits", True),
                C("ipp", "string", "9 digits", True),
                C("date_prelevement", "date", D, True),
                C("code_loinc", "string", "LOINC, or the lab's local MOL-* code for molecular/IHC markers", True),
                C("libelle", "string", "French label"),
                C("resultat", "string", "positif, negatif, or a number as text"),
                C("valeur", "decimal", NUM),
                C("unite", "string", "UCUM (%, ng/mL) or empty"),
            ),
        ),
        FileLayout(
            "drugs",
            "administrations_part{part:04d}.csv",
            (
                C("num_sejour", "string", "S + 11 digits", True),
                C("ipp", "string", "9 digits", True),
                C("date_administration", "datetime", DT, True),
                C("code_atc", "string", "ATC 5th level (L01FD01)", True),
                C("libelle_medicament", "string", "French INN"),
                C("dose", "decimal", NUM),
                C("unite_dose", "string", "mg"),
                C("voie", "string", "IV, PO, SC"),
                C("ligne", "int", "treatment line (1, 2, ...), empty for supportive drugs"),
                C("cycle", "int", "cycle number within the line"),
            ),
        ),
        FileLayout(
            "procedures",
            "actes_part{part:04d}.csv",
            (
                C("num_sejour", "string", "S + 11 digits", True),
                C("ipp", "string", "9 digits", True),
                C("date_acte", "date", D, True),
                C("code_snomed", "string", "SNOMED CT procedure", True),
                C("libelle_acte", "string", "French label"),
            ),
        ),
        FileLayout(
            "labs",
            "biologie_part{part:04d}.csv",
            (
                C("ipp", "string", "9 digits", True),
                C("num_sejour", "string", "S + 11 digits or empty (outside lab)"),
                C("date_prelevement", "datetime", DT, True),
                C("code_loinc", "string", "LOINC", True),
                C("libelle", "string", "French label"),
                C("valeur", "decimal", NUM, True),
                C("unite", "string", "UCUM"),
                C("borne_inf", "decimal", NUM),
                C("borne_sup", "decimal", NUM),
            ),
        ),
        FileLayout(
            "documents",
            "documents_part{part:04d}.csv",
            (
                C("id_document", "string", "D + 10 digits", True),
                C("ipp", "string", "9 digits", True),
                C("num_sejour", "string", "S + 11 digits or empty"),
                C("date_document", "date", D, True),
                C("type_document", "string", "CR_ANAPATH, CR_RCP, LETTRE_CONSULT, CRH, CR_IMAGERIE", True),
                C("texte", "string", "French free text, multi-line, quoted", True),
            ),
        ),
    ),
)
