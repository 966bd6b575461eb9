"""Writer of ch_est's extract: Parquet with YYYYMMDD ints and epoch seconds, ICD-10 with dot + ICD-O-3, NDJSON notes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from massalia.health.synth.catalogue import BIOMARKERS, DRUGS, LABS, PROCEDURES, icdo3_topography
from massalia.health.synth.cohort import MARKERS, N_CATS, T_CATS, Cohort
from massalia.health.synth.sites import neutral
from massalia.health.synth.sites.common import SiteData, lookup, number_strings, string_array, yyyymmdd
from massalia.health.synth.timeline import DRUG_KEYS, LAB_KEYS
from massalia.health.synth.treatment import PROCEDURE_KEYS

VISIT_TYPES = ("C", "HDJ", "HOSP", "URG")
DOC_TYPES = ("anapath", "rcp", "consultation", "crh", "imagerie")
STAGES = ("I", "II", "III", "IV")


def nip(index: np.ndarray) -> list[str]:
    """ch_est's patient id: 8 hex characters, a bijection of the global patient index.

    Examples
    --------
    >>> nip(np.array([0, 1]))
    ['00005A17', '9E37D3C8']
    """
    scrambled = (index.astype(np.uint64) * np.uint64(2654435761) + np.uint64(0x5A17)) % np.uint64(2**32)
    return [f"{int(x):08X}" for x in scrambled]


def _nip(c: Cohort, pid: np.ndarray, cache: dict[str, pa.Array]) -> pa.Array:
    if "nip" not in cache:
        cache["nip"] = pa.array(nip(c.index), type=pa.string())
    return cache["nip"].take(pa.array(pid, type=pa.int64()))


def _venue(data: SiteData, table: dict[str, np.ndarray]) -> pa.Array:
    ids = data.visit_ids(table)
    return pa.array(ids, type=pa.int64(), mask=ids < 0)


def _compact_tnm(prefix: str, t: np.ndarray, n: np.ndarray, m: np.ndarray | None) -> pa.Array:
    parts = [pa.scalar(prefix), lookup(T_CATS, t), lookup(N_CATS, n)]
    if m is not None:
        parts.append(lookup(("M0", "M1"), m))
    return pc.binary_join_element_wise(*parts, "")


def build_tables(data: SiteData) -> dict[str, pa.Table]:
    """Every ch_est file of one chunk, as Arrow tables whose columns follow ``LAYOUT``."""
    c, t = data.cohort, data.timeline
    cache: dict[str, pa.Array] = {}
    n = len(c)
    all_pid = np.arange(n)
    out: dict[str, pa.Table] = {}
    dep = pa.array(["57", "67", "68", "88", "54"]).take(pa.array(c.index % 5))
    commune = pc.utf8_lpad(pa.array(c.index * 613 % 1000 + 1).cast(pa.string()), 3, "0")
    out["patients"] = pa.table(
        {
            "nip": _nip(c, all_pid, cache),
            "sexe": pa.array(np.where(c.male, 1, 2).astype(np.int8)),
            "naissance": pa.array(yyyymmdd(c.birth_day)),
            "commune_insee": pc.binary_join_element_wise(dep, commune, ""),
        }
    )
    dday = neutral.death_day(c)
    dead = np.flatnonzero(dday >= 0)
    out["deaths"] = pa.table({"nip": _nip(c, dead, cache), "date_deces": pa.array(yyyymmdd(dday[dead]))})
    v = t.visits
    out["visits"] = pa.table(
        {
            "venue_id": _venue(data, v),
            "nip": _nip(c, v["pid"], cache),
            "nature": lookup(VISIT_TYPES, v["kind"]),
            "debut": pa.array(v["start"], type=pa.int64()),
            "fin": pa.array(v["end"], type=pa.int64()),
        }
    )
    dg = t.diagnoses
    out["diagnoses"] = pa.table(
        {
            "venue_id": _venue(data, dg),
            "nip": _nip(c, dg["pid"], cache),
            "date_diag": pa.array(yyyymmdd(dg["day"])),
            "cim10": string_array(dg["code"]),
            "rang": lookup(("principal", "associe"), dg["rank"]),
        }
    )
    tu = neutral.tumour_rows(c)
    has = tu["ct"] >= 0
    out["tumours"] = pa.table(
        {
            "tumeur_id": pa.array(c.index[tu["pid"]] * 10 + tu["rank"], type=pa.int64()),
            "nip": _nip(c, tu["pid"], cache),
            "date_diag": pa.array(yyyymmdd(tu["day"])),
            "topographie": string_array(np.array([icdo3_topography(str(x)) for x in tu["icd10"]], dtype=object)),
            "morphologie": string_array(tu["morphology"]),
            "tnm_clinique": pc.if_else(pa.array(has), _compact_tnm("c", tu["ct"], tu["cn"], tu["cm"]), None),
            "tnm_pathologique": _compact_tnm("p", tu["pt"], tu["pn"], None),
            "stade": lookup(STAGES, tu["stage"]),
            "ecog": pa.array(tu["ecog"], type=pa.int8(), mask=tu["ecog"] < 0),
        }
    )
    bm = neutral.biomarker_rows(c)
    num = bm["numeric"]
    markers = [BIOMARKERS[m] for m in MARKERS]
    out["biomarkers"] = pa.table(
        {
            "tumeur_id": pa.array(c.index[bm["pid"]] * 10, type=pa.int64()),
            "nip": _nip(c, bm["pid"], cache),
            "date_prelev": pa.array(yyyymmdd(bm["day"])),
            "loinc": lookup([m.loinc for m in markers], bm["marker"]),
            "resultat": pc.if_else(
                pa.array(num), number_strings(bm["value"], 0, comma=False), lookup(("NEG", "POS"), bm["status"])
            ),
            "unite": lookup([m.unit for m in markers], bm["marker"], num),
        }
    )
    dr = t.drugs
    drugs = [DRUGS[k] for k in DRUG_KEYS]
    dose = np.array([d.dose_mg for d in drugs])[dr["drug"]] * neutral.dose_factor(c)[dr["pid"]]
    out["drugs"] = pa.table(
        {
            "venue_id": _venue(data, dr),
            "nip": _nip(c, dr["pid"], cache),
            "administre_le": pa.array(dr["t"], type=pa.int64()),
            "atc": lookup([d.atc for d in drugs], dr["drug"]),
            "dose_mg": pa.array(np.round(dose, 1)),
            "voie": lookup([d.route for d in drugs], dr["drug"]),
        }
    )
    pr = t.procedures
    out["procedures"] = pa.table(
        {
            "venue_id": _venue(data, pr),
            "nip": _nip(c, pr["pid"], cache),
            "date_acte": pa.array(yyyymmdd(pr["day"])),
            "snomed": lookup([PROCEDURES[k].snomed for k in PROCEDURE_KEYS], pr["proc"]),
        }
    )
    lb = t.labs
    labs = [LABS[k] for k in LAB_KEYS]
    dec = np.array([x.decimals for x in labs])[lb["lab"]]
    low = np.array([x.low for x in labs])[lb["lab"]]
    value = number_strings(lb["value"], dec, comma=False)
    # Values under the detection limit of tumour markers are written "<x" as the lab system does.
    below = (low == 0.0) & (lb["value"] < 0.1)
    value = pc.if_else(pa.array(below), pa.scalar("<0.1"), value)
    out["labs"] = pa.table(
        {
            "nip": _nip(c, lb["pid"], cache),
            "venue_id": _venue(data, lb),
            "preleve_le": pa.array(lb["t"], pa.int64()),
            "loinc": lookup([x.loinc for x in labs], lb["lab"]),
            "valeur": value,
            "unite": lookup([x.unit for x in labs], lb["lab"]),
            "ref_min": pa.array(low),
            "ref_max": pa.array(np.array([x.high for x in labs])[lb["lab"]]),
        }
    )
    docs = data.documents
    if docs is not None:
        out["documents"] = pa.table(
            {
                "doc_id": pc.binary_join_element_wise(
                    pa.scalar("DOC"), pc.utf8_lpad(pa.array(docs["note_id"]).cast(pa.string()), 10, "0"), ""
                ),
                "nip": _nip(c, docs["pid"], cache),
                "venue_id": _venue(data, docs),
                "date": pa.array(yyyymmdd(docs["day"])).cast(pa.string()),
                "type": lookup(DOC_TYPES, docs["kind"]),
                "texte": string_array(docs["text"]),
            }
        )
    return out
