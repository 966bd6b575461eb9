"""Writer of chu_nord's extract: French headers, ``;`` CSV with BOM, dd/mm/yyyy, ICD-10 without dot, ATC, LOINC."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from massalia.health.synth.catalogue import BIOMARKERS, DRUGS, LABS, PROCEDURES
from massalia.health.synth.cohort import MARKERS, N_CATS, T_CATS
from massalia.health.synth.sites import neutral
from massalia.health.synth.sites.chu_nord_layout import LAYOUT
from massalia.health.synth.sites.common import (
    SiteData,
    date_strings,
    datetime_strings,
    lookup,
    number_strings,
    prefixed,
    string_array,
)
from massalia.health.synth.timeline import DRUG_KEYS, LAB_KEYS, UNITS
from massalia.health.synth.treatment import PROCEDURE_KEYS

D, DT = LAYOUT.date_format, LAYOUT.datetime_format
VISIT_TYPES = ("CONSULT", "HDJ", "HC", "URG")
DOC_TYPES = ("CR_ANAPATH", "CR_RCP", "LETTRE_CONSULT", "CRH", "CR_IMAGERIE")
STAGES = ("I", "II", "III", "IV")


def _ipp(data: SiteData, pid: np.ndarray) -> pa.Array:
    return pa.array((100_000_000 + data.cohort.index[pid]).astype(np.int64)).cast(pa.string())


def _no_dot(codes: np.ndarray) -> pa.Array:
    return pc.replace_substring(pa.array(codes, type=pa.string()), ".", "")


def _sejour(data: SiteData, table: dict[str, np.ndarray]) -> pa.Array:
    ids = data.visit_ids(table)
    return prefixed(ids, "S", 11, valid=ids >= 0)


def build_tables(data: SiteData) -> dict[str, pa.Table]:
    """Every chu_nord file of one chunk, as Arrow tables whose columns follow ``LAYOUT``.

    Examples
    --------
    >>> from massalia.health.synth.sites.chu_nord_layout import LAYOUT
    >>> LAYOUT.file("labs").column_names[:3]
    ['ipp', 'num_sejour', 'date_prelevement']
    """
    c, t = data.cohort, data.timeline
    n = len(c)
    all_pid = np.arange(n)
    out: dict[str, pa.Table] = {}
    postal = pa.array(["59", "62", "80", "02", "60"]).take(pa.array(c.index % 5))
    out["patients"] = pa.table(
        {
            "ipp": _ipp(data, all_pid),
            "sexe": pa.array(np.where(c.male, "M", "F")),
            "date_naissance": date_strings(c.birth_day, D),
            "code_postal": pc.binary_join_element_wise(postal, prefixed(c.index * 7919 % 1000, "", 3), ""),
        }
    )
    dday = neutral.death_day(c)
    dead = np.flatnonzero(dday >= 0)
    out["deaths"] = pa.table(
        {
            "ipp": _ipp(data, dead),
            "date_deces": date_strings(dday[dead], D),
            "source_deces": pa.array(np.where(neutral.in_hospital_death(c, t)[dead], "HOPITAL", "INSEE")),
        }
    )
    v = t.visits
    inpatient = v["kind"] == 2
    out["visits"] = pa.table(
        {
            "num_sejour": _sejour(data, v),
            "ipp": _ipp(data, v["pid"]),
            "type_sejour": lookup(VISIT_TYPES, v["kind"]),
            "date_entree": datetime_strings(v["start"], DT),
            "date_sortie": datetime_strings(v["end"], DT),
            "uf": lookup(UNITS, v["unit"]),
            "mode_sortie": lookup(
                ("DOMICILE", "TRANSFERT", "DECES"), np.where(inpatient | (v["exit"] > 0), v["exit"], 0)
            ),
        }
    )
    dg = t.diagnoses
    out["diagnoses"] = pa.table(
        {
            "num_sejour": _sejour(data, dg),
            "ipp": _ipp(data, dg["pid"]),
            "date_diagnostic": date_strings(dg["day"], D),
            "code_cim10": _no_dot(dg["code"]),
            "type_diagnostic": lookup(("DP", "DAS"), dg["rank"]),
        }
    )
    tu = neutral.tumour_rows(c)
    has = tu["ct"] >= 0
    out["tumours"] = pa.table(
        {
            "id_tumeur": prefixed(c.index[tu["pid"]] * 10 + tu["rank"], "T", 9),
            "ipp": _ipp(data, tu["pid"]),
            "date_diagnostic": date_strings(tu["day"], D),
            "code_cim10": _no_dot(tu["icd10"]),
            "code_morphologie": string_array(tu["morphology"]),
            "grade": pc.if_else(pa.array(tu["grade"] > 0), pa.array(tu["grade"]).cast(pa.string()), None),
            "ct": lookup(T_CATS, tu["ct"], has),
            "cn": lookup(N_CATS, tu["cn"], has),
            "cm": lookup(("M0", "M1"), tu["cm"], has),
            "pt": lookup(T_CATS, tu["pt"]),
            "pn": lookup(N_CATS, tu["pn"]),
            "stade": lookup(STAGES, tu["stage"]),
            "lateralite": lookup(("", "D", "G"), tu["laterality"], tu["laterality"] > 0),
            "score_oms": lookup(neutral.ECOG_SCORES, np.maximum(tu["ecog"], 0), tu["ecog"] >= 0),
        }
    )
    bm = neutral.biomarker_rows(c)
    markers = [BIOMARKERS[m] for m in MARKERS]
    num = bm["numeric"]
    out["biomarkers"] = pa.table(
        {
            "id_tumeur": prefixed(c.index[bm["pid"]] * 10, "T", 9),
            "ipp": _ipp(data, bm["pid"]),
            "date_prelevement": date_strings(bm["day"], D),
            "code_loinc": lookup([m.loinc for m in markers], bm["marker"]),
            "libelle": lookup([m.label_fr for m in markers], bm["marker"]),
            "resultat": pc.if_else(
                pa.array(num), number_strings(bm["value"], 0, comma=True), lookup(("negatif", "positif"), bm["status"])
            ),
            "valeur": number_strings(bm["value"], 0, comma=True, valid=num),
            "unite": lookup([m.unit for m in markers], bm["marker"], num),
        }
    )
    dr = t.drugs
    drugs = [DRUGS[k] for k in DRUG_KEYS]
    dose = np.array([d.dose_mg for d in drugs])[dr["drug"]] * neutral.dose_factor(c)[dr["pid"]]
    out["drugs"] = pa.table(
        {
            "num_sejour": _sejour(data, dr),
            "ipp": _ipp(data, dr["pid"]),
            "date_administration": datetime_strings(dr["t"], DT),
            "code_atc": lookup([d.atc for d in drugs], dr["drug"]),
            "libelle_medicament": lookup([d.inn_fr for d in drugs], dr["drug"]),
            "dose": number_strings(dose, np.where(dose < 10, 1, 0), comma=True),
            "unite_dose": pa.array(["mg"] * dose.size),
            "voie": lookup([d.route for d in drugs], dr["drug"]),
            "ligne": pc.if_else(pa.array(dr["line"] > 0), pa.array(dr["line"]).cast(pa.string()), None),
            "cycle": pc.if_else(pa.array(dr["cycle"] > 0), pa.array(dr["cycle"]).cast(pa.string()), None),
        }
    )
    pr = t.procedures
    procs = [PROCEDURES[k] for k in PROCEDURE_KEYS]
    out["procedures"] = pa.table(
        {
            "num_sejour": _sejour(data, pr),
            "ipp": _ipp(data, pr["pid"]),
            "date_acte": date_strings(pr["day"], D),
            "code_snomed": lookup([p.snomed for p in procs], pr["proc"]),
            "libelle_acte": lookup([p.label_fr for p in procs], pr["proc"]),
        }
    )
    lb = t.labs
    labs = [LABS[k] for k in LAB_KEYS]
    dec = np.array([x.decimals for x in labs])[lb["lab"]]
    out["labs"] = pa.table(
        {
            "ipp": _ipp(data, lb["pid"]),
            "num_sejour": _sejour(data, lb),
            "date_prelevement": datetime_strings(lb["t"], DT),
            "code_loinc": lookup([x.loinc for x in labs], lb["lab"]),
            "libelle": lookup([x.label_fr for x in labs], lb["lab"]),
            "valeur": number_strings(lb["value"], dec, comma=True),
            "unite": lookup([x.unit for x in labs], lb["lab"]),
            "borne_inf": number_strings(np.array([x.low for x in labs])[lb["lab"]], dec, comma=True),
            "borne_sup": number_strings(np.array([x.high for x in labs])[lb["lab"]], dec, comma=True),
        }
    )
    docs = data.documents
    if docs is not None:
        out["documents"] = pa.table(
            {
                "id_document": prefixed(docs["note_id"], "D", 10),
                "ipp": _ipp(data, docs["pid"]),
                "num_sejour": _sejour(data, docs),
                "date_document": date_strings(docs["day"], D),
                "type_document": lookup(DOC_TYPES, docs["kind"]),
                "texte": string_array(docs["text"]),
            }
        )
    return out
