"""Writer of clcc_sud's extract: English headers, ``,`` CSV, ISO dates, LOCAL codes and local lab units."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from massalia.health.synth.catalogue import DRUGS, LABS, REGIMENS
from massalia.health.synth.cohort import MARKERS, N_CATS, T_CATS, Cohort
from massalia.health.synth.sites import neutral
from massalia.health.synth.sites.clcc_sud_codes import local_codes
from massalia.health.synth.sites.clcc_sud_layout import LAYOUT
from massalia.health.synth.sites.common import (
    SiteData,
    date_strings,
    datetime_strings,
    lookup,
    number_strings,
    prefixed,
    row_ids,
    string_array,
)
from massalia.health.synth.timeline import DIAG_KINDS, DRUG_KEYS, LAB_KEYS
from massalia.health.synth.treatment import PROCEDURE_KEYS, REGIMEN_KEYS

D, DT = LAYOUT.date_format, LAYOUT.datetime_format
VISIT_TYPES = ("OUTPATIENT", "DAY_CARE", "INPATIENT", "EMERGENCY")
DEPARTMENTS = ("MED_ONC", "SURGERY", "RADIOTHERAPY", "EMERGENCY", "INTERNAL_MED", "IMAGING")
NOTE_TYPES = ("PATHOLOGY", "TUMOR_BOARD", "CONSULTATION", "DISCHARGE", "IMAGING")
ROUTES = {"IV": "intravenous", "PO": "oral", "SC": "subcutaneous"}
STAGES = ("I", "II", "III", "IV")


def _pid(c: Cohort, pid: np.ndarray) -> pa.Array:
    return prefixed(c.index[pid], "CS", 7)


def _enc(data: SiteData, table: dict[str, np.ndarray]) -> pa.Array:
    ids = data.visit_ids(table)
    return prefixed(ids, "E", 11, valid=ids >= 0)


def _local(domain: str, keys: list[str], idx: np.ndarray, field: str = "local_code") -> pa.Array:
    codes = local_codes()
    return lookup([getattr(codes[(domain, k)], field) for k in keys], idx)


def build_tables(data: SiteData) -> dict[str, pa.Table]:
    """Every clcc_sud file of one chunk, as Arrow tables whose columns follow ``LAYOUT``."""
    c, t = data.cohort, data.timeline
    n = len(c)
    all_pid = np.arange(n)
    codes = local_codes()
    out: dict[str, pa.Table] = {}
    dday = neutral.death_day(c)
    end_day = c.dx_day + np.floor(c.end_years * 365.25).astype(np.int64)
    zips = pa.array(["13", "83", "84", "04", "06"]).take(pa.array(c.index % 5))
    out["patients"] = pa.table(
        {
            "patient_id": _pid(c, all_pid),
            "gender": pa.array(np.where(c.male, "male", "female")),
            "birth_date": date_strings(c.birth_day, D),
            "zip_code": pc.binary_join_element_wise(zips, prefixed(c.index * 4271 % 1000, "", 3), ""),
            "vital_status": pa.array(np.where(dday >= 0, "dead", "alive")),
            "death_date": date_strings(dday, D, valid=dday >= 0),
            "last_contact_date": date_strings(end_day, D),
        }
    )
    v = t.visits
    out["visits"] = pa.table(
        {
            "encounter_id": _enc(data, v),
            "patient_id": _pid(c, v["pid"]),
            "encounter_type": lookup(VISIT_TYPES, v["kind"]),
            "admit_datetime": datetime_strings(v["start"], DT),
            "discharge_datetime": datetime_strings(v["end"], DT),
            "department": lookup(DEPARTMENTS, v["unit"]),
        }
    )
    dg = t.diagnoses
    dx_codes = sorted({k[1] for k in codes if k[0] == "diagnosis"})
    dx_idx = np.searchsorted(np.array(dx_codes, dtype=object), dg["code"])
    out["diagnoses"] = pa.table(
        {
            "diagnosis_id": prefixed(row_ids(dg["pid"], c.index, 3), "X", 10),
            "patient_id": _pid(c, dg["pid"]),
            "encounter_id": _enc(data, dg),
            "diagnosis_date": date_strings(dg["day"], D),
            "local_code": _local("diagnosis", dx_codes, dx_idx),
            "description": _local("diagnosis", dx_codes, dx_idx, "local_label"),
            "category": lookup(DIAG_KINDS, dg["kind"]),
        }
    )
    tu = neutral.tumour_rows(c)
    tid = prefixed(c.index[tu["pid"]] * 10 + tu["rank"], "TU", 8)
    morphs = sorted({k[1] for k in codes if k[0] == "histology"})
    out["tumours"] = pa.table(
        {
            "tumor_id": tid,
            "patient_id": _pid(c, tu["pid"]),
            "diagnosis_date": date_strings(tu["day"], D),
            "local_code": _local("diagnosis", dx_codes, np.searchsorted(np.array(dx_codes, dtype=object), tu["icd10"])),
            "histology_code": _local(
                "histology", morphs, np.searchsorted(np.array(morphs, dtype=object), tu["morphology"])
            ),
            "grade": lookup(("", "G1", "G2", "G3"), np.maximum(tu["grade"], 0), tu["grade"] > 0),
            "ecog_ps": lookup(neutral.ECOG_SCORES, np.maximum(tu["ecog"], 0), tu["ecog"] >= 0),
        }
    )
    # Staging: one clinical row per staged tumour, one pathological row after surgery.
    staged = np.flatnonzero(tu["ct"] >= 0)
    path = np.flatnonzero(tu["pt"] >= 0)
    rows = np.r_[staged, path]
    is_p = np.r_[np.zeros(staged.size, bool), np.ones(path.size, bool)]
    op_day = c.dx_day + c.plan.surgery_day
    out["staging"] = pa.table(
        {
            "tumor_id": tid.take(pa.array(rows)),
            "patient_id": _pid(c, tu["pid"][rows]),
            "staging_date": date_strings(np.where(is_p, op_day[tu["pid"][rows]] + 10, tu["day"][rows]), D),
            "staging_type": pa.array(np.where(is_p, "pathological", "clinical")),
            "t": lookup(T_CATS, np.where(is_p, tu["pt"][rows], tu["ct"][rows])),
            "n": lookup(N_CATS, np.where(is_p, tu["pn"][rows], tu["cn"][rows])),
            "m": lookup(("M0", "M1"), tu["cm"][rows], ~is_p),
            "stage_group": lookup(STAGES, tu["stage"][rows], ~is_p),
        }
    )
    bm = neutral.biomarker_rows(c)
    num = bm["numeric"]
    out["biomarkers"] = pa.table(
        {
            "tumor_id": prefixed(c.index[bm["pid"]] * 10, "TU", 8),
            "patient_id": _pid(c, bm["pid"]),
            "test_date": date_strings(bm["day"], D),
            "marker_code": _local("biomarker", list(MARKERS), bm["marker"]),
            "result": lookup(("negative", "positive"), bm["status"], ~num),
            "value_numeric": number_strings(bm["value"], 0, comma=False, valid=num),
            "unit": pc.if_else(pa.array(num), pa.scalar("%"), None),
        }
    )
    dr = t.drugs
    drugs = [DRUGS[k] for k in DRUG_KEYS]
    dose = np.array([d.dose_mg for d in drugs])[dr["drug"]] * neutral.dose_factor(c)[dr["pid"]]
    out["drugs"] = pa.table(
        {
            "administration_id": prefixed(row_ids(dr["pid"], c.index, 4), "A", 11),
            "patient_id": _pid(c, dr["pid"]),
            "encounter_id": _enc(data, dr),
            "admin_datetime": datetime_strings(dr["t"], DT),
            "drug_code": _local("drug", list(DRUG_KEYS), dr["drug"]),
            "drug_name": lookup([d.inn_en for d in drugs], dr["drug"]),
            "dose_value": number_strings(dose, np.where(dose < 10, 2, 1), comma=False),
            "dose_unit": pa.array(["mg"] * dose.size),
            "route": lookup([ROUTES[d.route] for d in drugs], dr["drug"]),
            "regimen": lookup([REGIMENS[k].label for k in REGIMEN_KEYS], dr["regimen"]),
            "line": pc.if_else(pa.array(dr["line"] > 0), pa.array(dr["line"]).cast(pa.string()), None),
            "cycle": pc.if_else(pa.array(dr["cycle"] > 0), pa.array(dr["cycle"]).cast(pa.string()), None),
        }
    )
    pr = t.procedures
    out["procedures"] = pa.table(
        {
            "procedure_id": prefixed(row_ids(pr["pid"], c.index, 3), "P", 10),
            "patient_id": _pid(c, pr["pid"]),
            "encounter_id": _enc(data, pr),
            "procedure_date": date_strings(pr["day"], D),
            "procedure_code": _local("procedure", list(PROCEDURE_KEYS), pr["proc"]),
            "description": _local("procedure", list(PROCEDURE_KEYS), pr["proc"], "local_label"),
        }
    )
    lb = t.labs
    lab_codes = [codes[("lab", k)] for k in LAB_KEYS]
    factor = np.array([x.factor for x in lab_codes])[lb["lab"]]
    dec = np.array([LABS[k].decimals for k in LAB_KEYS])[lb["lab"]] + (factor > 1) + (factor > 10)
    dec = np.clip(dec - (factor < 1), 0, 3)
    out["labs"] = pa.table(
        {
            "result_id": prefixed(row_ids(lb["pid"], c.index, 4), "R", 11),
            "patient_id": _pid(c, lb["pid"]),
            "collected_at": datetime_strings(lb["t"], DT),
            "test_code": lookup([x.local_code for x in lab_codes], lb["lab"]),
            "test_name": lookup([x.local_label for x in lab_codes], lb["lab"]),
            "value": number_strings(lb["value"] / factor, dec, comma=False),
            "unit": lookup([x.local_unit for x in lab_codes], lb["lab"]),
            "ref_low": number_strings(np.array([LABS[k].low for k in LAB_KEYS])[lb["lab"]] / factor, dec, comma=False),
            "ref_high": number_strings(
                np.array([LABS[k].high for k in LAB_KEYS])[lb["lab"]] / factor, dec, comma=False
            ),
        }
    )
    docs = data.documents
    if docs is not None:
        out["documents"] = pa.table(
            {
                "note_id": prefixed(docs["note_id"], "N", 10),
                "patient_id": _pid(c, docs["pid"]),
                "encounter_id": _enc(data, docs),
                "note_date": date_strings(docs["day"], D),
                "note_type": lookup(NOTE_TYPES, docs["kind"]),
                "note_text": string_array(docs["text"]),
            }
        )
    return out
