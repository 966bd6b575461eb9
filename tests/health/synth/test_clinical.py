from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow.parquet as pq
from synth_helpers import read_site_file

from massalia.health.synth.cohort import N_CATS, T_CATS, draw_cohort, stage_from_tnm

STAGE = {"I": 0, "II": 1, "III": 2, "IV": 3}


def _truth(out):
    return pq.read_table(out / "truth" / "patients_part0000.parquet").to_pylist()


def test_stage_group_is_consistent_with_clinical_tnm(small_run):
    out, _ = small_run
    for t in _truth(out):
        expected = stage_from_tnm(
            np.array([T_CATS.index(t["ct"])]), np.array([N_CATS.index(t["cn"])]), np.array([int(t["cm"][1])])
        )[0]
        assert STAGE[t["stage"]] == expected, t
    tumours = read_site_file(out / "ch_est" / "tumeur_part0000.parquet", "ch_est").to_pylist()
    for row in tumours:
        if row["tnm_clinique"]:
            tnm = row["tnm_clinique"]  # e.g. cT2N1M0
            t, n, m = T_CATS.index(tnm[1:3]), N_CATS.index(tnm[3:5]), int(tnm[6])
            assert STAGE[row["stade"]] == stage_from_tnm(np.array([t]), np.array([n]), np.array([m]))[0]


def test_french_proportions_sexes_and_ages():
    c = draw_cohort(np.random.default_rng(5), np.arange(20_000), np.array([1.0]))
    counts = Counter(c.cancer.tolist())
    top4 = {k for k, _ in counts.most_common(4)}
    assert top4 == {0, 1, 2, 3}  # breast, prostate, lung, colorectal
    assert not c.male[c.cancer == 0].any() or c.male[c.cancer == 0].mean() < 0.02
    assert c.male[c.cancer == 1].all() and not c.male[c.cancer == 10].any()
    assert 60 < c.age.mean() < 72


def test_guidelines_her2_gets_trastuzumab_and_egfr_gets_osimertinib(small_run):
    out, _ = small_run
    truth = {(t["site"], t["source_patient_id"]): t for t in _truth(out)}
    drugs = read_site_file(out / "chu_nord" / "administrations_part0000.csv", "chu_nord").to_pylist()
    atc_by_patient: dict[str, set[str]] = {}
    for d in drugs:
        atc_by_patient.setdefault(d["ipp"], set()).add(d["code_atc"])
    checked = 0
    for (site, pid), t in truth.items():
        if site != "chu_nord" or pid not in atc_by_patient:
            continue
        if t["cancer"] == "breast" and t["marker_her2"] == 1 and t["matched_targeted"]:
            assert "L01FD01" in atc_by_patient[pid]
            checked += 1
        if t["cancer"] == "breast" and t["marker_her2"] == 0:
            assert "L01FD01" not in atc_by_patient[pid]
    assert checked >= 1


def test_febrile_neutropenia_stays_show_low_neutrophils(small_run):
    out, _ = small_run
    diags = read_site_file(out / "chu_nord" / "diagnostics_part0000.csv", "chu_nord").to_pylist()
    stays = {d["num_sejour"] for d in diags if d["code_cim10"] == "D70"}
    labs = read_site_file(out / "chu_nord" / "biologie_part0000.csv", "chu_nord").to_pylist()
    neutrophils = [r for r in labs if r["code_loinc"] == "751-8"]
    anc = [float(r["valeur"].replace(",", ".")) for r in neutrophils if r["num_sejour"] in stays]
    other = [float(r["valeur"].replace(",", ".")) for r in neutrophils]
    assert stays and anc
    assert np.median(anc) < 1.0 < np.median(other)


def test_events_stay_within_follow_up(small_run):
    out, _ = small_run
    truth = {t["source_patient_id"]: t for t in _truth(out) if t["site"] == "clcc_sud"}
    patients = read_site_file(out / "clcc_sud" / "patients_part0000.csv", "clcc_sud").to_pylist()
    for p in patients:
        t = truth[p["patient_id"]]
        assert (p["vital_status"] == "dead") == t["death_observed"]
        assert p["birth_date"] < str(t["diagnosis_date"])
    enc = read_site_file(out / "clcc_sud" / "encounters_part0000.csv", "clcc_sud").to_pylist()
    assert max(e["admit_datetime"] for e in enc) <= "2025-12-31T23:59:59"
