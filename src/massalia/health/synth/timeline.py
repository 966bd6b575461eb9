"""Care pathways of a block of patients as site-neutral event tables (visits, drugs, labs...), vectorized.

Each table is a ``dict[str, np.ndarray]`` with one row per event; ``pid`` is the patient's row in the
``Cohort``; ``visit`` the event's stay (its rank among the patient's visits ordered by start, -1 none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from massalia.health.synth.catalogue import (
    ADVERSE_EVENTS,
    CANCERS,
    CBC,
    CHEMISTRY,
    COMORBIDITIES,
    DRUGS,
    IMAGING_BY_CANCER,
    LABS,
    METASTASES,
    METASTASIS_SITES_BY_CANCER,
    PREGNANCY,
    REGIMENS,
    SUPPORTIVE_DRUGS,
)
from massalia.health.synth.cohort import Cohort
from massalia.health.synth.labs import draw_lab_values
from massalia.health.synth.treatment import PROCEDURE_KEYS, REGIMEN_KEYS

Table = dict[str, np.ndarray]
VISIT_KINDS: tuple[str, ...] = ("consultation", "day_hospital", "inpatient", "emergency")
UNITS: tuple[str, ...] = ("ONCO-MED", "CHIR", "RADIOTHERAPIE", "URGENCES", "MED-INTERNE", "IMAGERIE")
DRUG_KEYS: tuple[str, ...] = tuple(DRUGS)
LAB_KEYS: tuple[str, ...] = tuple(LABS)
AE_KEYS: tuple[str, ...] = tuple(ADVERSE_EVENTS)
PREGNANCY_VISIT_DAY = 56
"""Days from the start of a pregnancy to the consultation that records it (8 weeks of amenorrhoea)."""
DIAG_KINDS: tuple[str, ...] = ("primary_cancer", "metastasis", "comorbidity", "adverse_event", "second_cancer")
MARKER_LAB = np.array([LAB_KEYS.index(c.marker_lab) if c.marker_lab else -1 for c in CANCERS])
DAY = 86_400


@dataclass
class Timeline:
    """Every event table of a block; ``doc_anchors`` are the days documents are written on."""

    visits: Table
    diagnoses: Table
    drugs: Table
    procedures: Table
    labs: Table
    anchors: dict[str, np.ndarray] = field(default_factory=dict)


class _Visits:
    """Accumulates visits; each ``add`` returns the rows it created (to link events to them)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.count = 0

    def add(
        self,
        pid: np.ndarray,
        kind: int,
        start_s: np.ndarray,
        hours: np.ndarray,
        unit: int | np.ndarray,
        exit_mode: np.ndarray | int = 0,
    ) -> np.ndarray:
        n = pid.shape[0]
        rows = np.arange(self.count, self.count + n)
        self.count += n
        unit_arr = np.broadcast_to(np.asarray(unit, dtype=np.int8), (n,))
        exit_arr = np.broadcast_to(np.asarray(exit_mode, dtype=np.int8), (n,))
        self.parts.append(
            (pid, np.full(n, kind, np.int8), start_s, start_s + (hours * 3600).astype(np.int64), unit_arr, exit_arr)
        )
        return rows


class _Events:
    """The event lists of a block under construction, with the helpers that append to them."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.v = _Visits()
        self.diag: list[Table] = []
        self.drugs: list[Table] = []
        self.procs: list[Table] = []
        self.draws: list[Table] = []  # lab draws: pid, t, visit, panel, on_chemo, nadir

    def secs(self, day: np.ndarray, hour_lo: int = 8, hour_hi: int = 17) -> np.ndarray:
        """Epoch seconds at a random minute between ``hour_lo`` and ``hour_hi`` on ``day``."""
        return day * DAY + self.rng.integers(hour_lo * 3600, hour_hi * 3600, size=day.shape[0]) // 60 * 60

    def add_diag(
        self, pid: np.ndarray, visit: np.ndarray, day: np.ndarray, kind: int, code: np.ndarray, rank: int
    ) -> None:
        """Diagnoses of ``kind`` (index into DIAG_KINDS); rank 0 principal, 1 associated."""
        self.diag.append(
            {
                "pid": pid,
                "visit": visit,
                "day": day,
                "kind": np.full(pid.shape[0], kind, np.int8),
                "code": code,
                "rank": np.full(pid.shape[0], rank, np.int8),
            }
        )

    def add_proc(self, pid: np.ndarray, visit: np.ndarray, day: np.ndarray, proc: np.ndarray | int) -> None:
        """Procedures (index into PROCEDURE_KEYS)."""
        self.procs.append(
            {
                "pid": pid,
                "visit": visit,
                "day": day,
                "proc": np.broadcast_to(np.asarray(proc, np.int16), (pid.shape[0],)).copy(),
            }
        )

    def add_draw(
        self,
        pid: np.ndarray,
        t: np.ndarray,
        visit: np.ndarray,
        panel: int,
        on_chemo: np.ndarray | int = 0,
        nadir: np.ndarray | int = 0,
    ) -> None:
        """Lab draws (expanded into analytes by ``labs.draw_lab_values``)."""
        m = pid.shape[0]
        self.draws.append(
            {
                "pid": pid,
                "t": t,
                "visit": visit,
                "panel": np.full(m, panel, np.int8),
                "on_chemo": np.broadcast_to(np.asarray(on_chemo, np.int16), (m,)).copy(),
                "nadir": np.broadcast_to(np.asarray(nadir, np.int8), (m,)).copy(),
            }
        )


def _series(start: np.ndarray, count: np.ndarray, step: np.ndarray | int) -> tuple[np.ndarray, np.ndarray]:
    """Expand per-row series ``start + k·step`` for k < count: returns (row index, k)."""
    count = np.maximum(count, 0).astype(np.int64)
    rows = np.repeat(np.arange(start.shape[0]), count)
    first = np.cumsum(count) - count
    k = np.arange(rows.shape[0]) - np.repeat(first, count)
    return rows, k


def _cat(parts: list[Table]) -> Table:
    keys = parts[0].keys()
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


def build_timeline(rng: np.random.Generator, c: Cohort) -> Timeline:
    """Draw every event of the block's patients.

    Parameters
    ----------
    rng
        The block's generator (continues after ``draw_cohort``).
    c
        The block's patients.

    Returns
    -------
    Timeline
        Site-neutral event tables.
    """
    n = len(c)
    pid_all = np.arange(n)
    dx = c.dx_day.astype(np.int64)
    end_day = dx + np.floor(c.end_years * 365.25).astype(np.int64)
    relapse_day = np.where(c.relapse_observed, dx + np.floor(c.relapse_years * 365.25), np.iinfo(np.int64).max // 4)
    relapse_day = relapse_day.astype(np.int64)
    death_day = np.where(c.death_observed, end_day, -1)
    ev = _Events(rng)
    days = _Days(n, pid_all, dx, end_day, relapse_day, death_day)
    first, rcp_day = _diagnosis(rng, c, ev, days)
    _surgery(rng, c, ev, days)
    line1_end, rel = _systemic_lines(rng, c, ev, days)
    _radiotherapy(rng, c, ev, days, line1_end)
    _hormone_therapy(rng, c, ev, days, line1_end)
    _follow_up(rng, c, ev, days)
    _relapse(rng, c, ev, days, rel)
    _unplanned_stays(rng, c, ev, days)
    _death(rng, c, ev, days)
    _second_cancer(c, ev, days)
    _pregnancy(c, ev)

    v, diag, drugs, procs = ev.v, ev.diag, ev.drugs, ev.procs
    visits, order = _finish_visits(v)
    remap = np.empty(order.shape[0] + 1, dtype=np.int64)
    remap[order] = visits.pop("seq_of_row")
    remap[-1] = -1
    tables = {"diagnoses": _cat(diag), "drugs": _cat(drugs), "procedures": _cat(procs)}
    for t in tables.values():
        t["visit"] = remap[t["visit"]]
    lab_draws = _cat(ev.draws)
    lab_draws["visit"] = remap[lab_draws["visit"]]
    labs = draw_lab_values(rng, c, lab_draws, relapse_day)
    anchors = {
        "first_consult": first,
        "rcp_day": rcp_day,
        "relapse_day": relapse_day,
        "end_day": end_day,
        "line1_end": line1_end,
    }
    return Timeline(
        visits=visits,
        diagnoses=tables["diagnoses"],
        drugs=tables["drugs"],
        procedures=tables["procedures"],
        labs=labs,
        anchors=anchors,
    )


@dataclass(frozen=True)
class _Days:
    """The block's patients and their key days, shared by the timeline steps."""

    n: int
    pid_all: np.ndarray  # 0..n-1
    dx: np.ndarray  # diagnosis day
    end_day: np.ndarray  # last day observed (death or end of follow-up)
    relapse_day: np.ndarray  # observed relapse day, or far in the future
    death_day: np.ndarray  # -1 when alive at the end


def _diagnosis(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days) -> tuple[np.ndarray, np.ndarray]:
    """Diagnosis: first consultation, diagnostic day hospital (biopsy, imaging, labs), tumour board."""
    n, pid_all, dx = days.n, days.pid_all, days.dx
    v, secs, add_diag, add_proc, add_draw = ev.v, ev.secs, ev.add_diag, ev.add_proc, ev.add_draw
    first = dx - rng.integers(5, 31, size=n)
    v.add(pid_all, 0, secs(first), np.full(n, 0.5), 0)
    dh = v.add(pid_all, 1, secs(dx, 8, 10), rng.uniform(4, 9, n), 5)
    add_proc(pid_all, dh, dx, PROCEDURE_KEYS.index("biopsy"))
    add_proc(pid_all, dh, dx, PROCEDURE_KEYS.index("ct_scan"))
    img = np.array([PROCEDURE_KEYS.index(IMAGING_BY_CANCER.get(k.key, "mri")) for k in CANCERS])[c.cancer]
    add_proc(pid_all, dh, dx, img)
    add_diag(pid_all, dh, dx, 0, c.icd10, 0)
    pc, kc = np.nonzero(c.comorb)
    comorb_codes = np.array([cond.icd10 for cond, _ in COMORBIDITIES.values()], dtype=object)
    add_diag(pc, dh[pc], dx[pc], 2, comorb_codes[kc], 1)
    add_draw(pid_all, dx * DAY + 8 * 3600 + rng.integers(0, 7200, n) // 60 * 60, dh, 1)
    rcp_day = dx + rng.integers(7, 15, size=n)
    v.add(pid_all, 0, secs(rcp_day), np.full(n, 0.5), 0)
    sm = np.flatnonzero(c.stage == 3)
    msite = np.array(
        [METASTASES[s].icd10 for k in CANCERS for s in METASTASIS_SITES_BY_CANCER[k.key][:1]], dtype=object
    )[c.cancer[sm]]
    add_diag(sm, dh[sm], dx[sm], 1, msite, 1)
    return first, rcp_day


def _surgery(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days) -> None:
    """Surgery: inpatient stay with the procedure and admission labs."""
    dx, end_day = days.dx, days.end_day
    v, secs, add_diag, add_proc, add_draw = ev.v, ev.secs, ev.add_diag, ev.add_proc, ev.add_draw
    op = np.flatnonzero((c.plan.surgery >= 0) & (dx + c.plan.surgery_day < end_day))
    op_day = dx[op] + c.plan.surgery_day[op]
    los = rng.integers(2, 11, size=op.shape[0])
    st = v.add(op, 2, secs(op_day - 1, 14, 18), los * 24.0, 1)
    add_proc(op, st, op_day, c.plan.surgery[op])
    add_diag(op, st, op_day, 0, c.icd10[op], 0)
    add_draw(op, (op_day - 1) * DAY + 15 * 3600, st, 0)


def _systemic_lines(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days) -> tuple[np.ndarray, np.ndarray]:
    """Systemic lines: line 1 from plan, line 2 at observed relapse; hormone therapy afterwards."""
    n, dx, end_day, relapse_day = days.n, days.dx, days.end_day, days.relapse_day
    line1_end = _systemic(ev, c, c.plan.line1, dx + c.plan.line1_day, np.minimum(end_day, relapse_day), 1)
    rel = np.flatnonzero(c.relapse_observed & (relapse_day < end_day))
    l2_start = np.full(n, np.iinfo(np.int64).max // 4)
    l2_start[rel] = relapse_day[rel] + rng.integers(14, 41, size=rel.shape[0])
    line2 = np.where(l2_start < end_day, c.plan.line2, -1)
    _systemic(ev, c, line2, l2_start, end_day, 2)
    return line1_end, rel


def _radiotherapy(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days, line1_end: np.ndarray) -> None:
    """Radiotherapy: daily sessions five days a week after surgery/line 1."""
    dx, end_day = days.dx, days.end_day
    v, secs, add_proc = ev.v, ev.secs, ev.add_proc
    rt = np.flatnonzero(c.plan.rt_fractions > 0)
    rt_start = np.maximum(line1_end[rt], dx[rt] + c.plan.surgery_day[rt]) + rng.integers(21, 42, size=rt.shape[0])
    r_rows, k = _series(rt_start, c.plan.rt_fractions[rt], 1)
    pid_rt = rt[r_rows]
    day_rt = rt_start[r_rows] + k + 2 * (k // 5)
    keep = day_rt < end_day[pid_rt]
    pid_rt, day_rt = pid_rt[keep], day_rt[keep]
    vrt = v.add(pid_rt, 1, secs(day_rt), np.full(pid_rt.shape[0], 1.0), 2)
    add_proc(pid_rt, vrt, day_rt, PROCEDURE_KEYS.index("radiotherapy"))


def _hormone_therapy(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days, line1_end: np.ndarray) -> None:
    """Hormone therapy / maintenance: a consultation with a prescription every 90 days."""
    dx, end_day, relapse_day = days.dx, days.end_day, days.relapse_day
    v, drugs, secs, add_draw = ev.v, ev.drugs, ev.secs, ev.add_draw
    ht = np.flatnonzero(c.plan.hormone >= 0)
    ht_start = np.maximum(line1_end[ht], dx[ht] + c.plan.surgery_day[ht]) + rng.integers(14, 60, size=ht.shape[0])
    reg_cycles = np.array([REGIMENS[k].cycles for k in REGIMEN_KEYS])
    rows, k = _series(ht_start, reg_cycles[c.plan.hormone[ht]], 90)
    pid_h, day_h = ht[rows], ht_start[rows] + 90 * k
    keep = day_h < np.minimum(end_day, relapse_day)[pid_h]
    pid_h, day_h, k = pid_h[keep], day_h[keep], k[keep]
    vh = v.add(pid_h, 0, secs(day_h), np.full(pid_h.shape[0], 0.5), 0)
    reg = c.plan.hormone[pid_h]
    first_drug = np.array([DRUG_KEYS.index(REGIMENS[r].drugs[0]) for r in REGIMEN_KEYS])
    drugs.append(
        {
            "pid": pid_h,
            "visit": vh,
            "t": secs(day_h),
            "drug": first_drug[reg].astype(np.int16),
            "regimen": reg.astype(np.int16),
            "line": np.zeros(pid_h.shape[0], np.int8),
            "cycle": (k + 1).astype(np.int16),
        }
    )
    add_draw(pid_h, (day_h - 2) * DAY + 8 * 3600, np.full(pid_h.shape[0], -1), 1)


def _follow_up(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days) -> None:
    """Follow-up consultations with labs and imaging: every 3 months for 3 years, then every 6 months."""
    dx, end_day = days.dx, days.end_day
    v, secs, add_proc, add_draw = ev.v, ev.secs, ev.add_proc, ev.add_draw
    fu_start = dx + 90
    n_fu = np.ceil(np.clip((end_day - fu_start) / 90.0, 0, 12)).astype(np.int64)
    n_fu += np.ceil(np.clip((end_day - fu_start - 1080) / 180.0, 0, None)).astype(np.int64)
    rows, k = _series(fu_start, n_fu, 1)
    day_f = fu_start[rows] + np.where(k < 12, 90 * k, 1080 + 180 * (k - 12)) + rng.integers(-10, 11, rows.shape[0])
    keep = day_f < end_day[rows]
    pid_f, day_f, kf = rows[keep], day_f[keep], k[keep]
    vf = v.add(pid_f, 0, secs(day_f), np.full(pid_f.shape[0], 0.5), 0)
    add_draw(pid_f, (day_f - 1) * DAY + 7 * 3600 + 1800, np.full(pid_f.shape[0], -1), 1)
    img_sel = kf % 2 == 1
    add_proc(pid_f[img_sel], vf[img_sel], day_f[img_sel], PROCEDURE_KEYS.index("ct_scan"))


def _relapse(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days, rel: np.ndarray) -> None:
    """Relapse/progression: consultation, imaging, metastasis diagnosis."""
    relapse_day = days.relapse_day
    v, secs, add_diag, add_proc, add_draw = ev.v, ev.secs, ev.add_diag, ev.add_proc, ev.add_draw
    vr = v.add(rel, 0, secs(relapse_day[rel]), np.full(rel.shape[0], 0.5), 0)
    add_proc(rel, vr, relapse_day[rel], PROCEDURE_KEYS.index("ct_scan"))
    add_proc(rel, vr, relapse_day[rel], PROCEDURE_KEYS.index("mri"))
    site_pick = rng.integers(0, 4, size=rel.shape[0])
    met_codes = np.array(
        [
            [METASTASES[s[i % len(s)]].icd10 for i in range(4)]
            for s in (METASTASIS_SITES_BY_CANCER[k.key] for k in CANCERS)
        ],
        dtype=object,
    )
    add_diag(rel, vr, relapse_day[rel], 1, met_codes[c.cancer[rel], site_pick], 0)
    add_draw(rel, relapse_day[rel] * DAY + 9 * 3600, vr, 1)


def _unplanned_stays(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days) -> None:
    """Unplanned hospitalizations (Poisson, rate from the hazard model): emergency visit then stay."""
    dx, end_day = days.dx, days.end_day
    v, drugs, secs, add_diag, add_proc, add_draw = ev.v, ev.drugs, ev.secs, ev.add_diag, ev.add_proc, ev.add_draw
    n_h = rng.poisson(c.hosp_rate * c.end_years)
    rows, _ = _series(dx, n_h, 0)
    day_u = dx[rows] + np.floor(rng.random(rows.shape[0]) * (end_day[rows] - dx[rows])).astype(np.int64)
    t_er = secs(day_u, 0, 16)
    v.add(rows, 3, t_er, np.full(rows.shape[0], 6.0), 3)
    los_u = rng.integers(2, 13, size=len(rows))
    uh = v.add(rows, 2, t_er + 6 * 3600, los_u * 24.0, 4)
    ae = _cause_of_stay(rng, c, rows, day_u, drugs)
    ae_codes = np.array([ADVERSE_EVENTS[k].icd10 for k in AE_KEYS], dtype=object)
    add_diag(rows, uh, day_u, 3, ae_codes[ae], 0)
    add_diag(rows, uh, day_u, 0, c.icd10[rows], 1)
    fever = ae == AE_KEYS.index("neutropenia")
    add_diag(
        rows[fever], uh[fever], day_u[fever], 3, np.full(int(fever.sum()), ADVERSE_EVENTS["fever"].icd10, object), 1
    )
    anaemia = ae == AE_KEYS.index("anaemia")
    add_proc(rows[anaemia], uh[anaemia], day_u[anaemia] + 1, PROCEDURE_KEYS.index("transfusion"))
    add_draw(rows, day_u * DAY + 10 * 3600, uh, 0, on_chemo=0, nadir=np.where(fever, 2, np.where(anaemia, 3, 4)))


def _death(rng: np.random.Generator, c: Cohort, ev: _Events, days: _Days) -> None:
    """Death: most patients who die are in a terminal stay at the hospital."""
    n, death_day = days.n, days.death_day
    v, secs = ev.v, ev.secs
    dd = np.flatnonzero(c.death_observed & (rng.random(n) < 0.6))
    los_d = rng.integers(3, 20, size=dd.shape[0])
    v.add(dd, 2, secs(death_day[dd] - los_d), los_d * 24.0 - 6, 4, exit_mode=2)


def _second_cancer(c: Cohort, ev: _Events, days: _Days) -> None:
    """Second primary cancer: a consultation with its diagnosis."""
    dx = days.dx
    v, secs, add_diag = ev.v, ev.secs, ev.add_diag
    sc = np.flatnonzero(c.second_cancer >= 0)
    sc_day = dx[sc] + np.floor(c.second_cancer_years[sc] * 365.25).astype(np.int64)
    vs = v.add(sc, 0, secs(sc_day), np.full(sc.shape[0], 0.5), 0)
    sc_codes = np.array([k.icd10[0][0] for k in CANCERS], dtype=object)[c.second_cancer[sc]]
    add_diag(sc, vs, sc_day, 4, sc_codes, 0)


def _pregnancy(c: Cohort, ev: _Events) -> None:
    """Pregnancy of a pregnancy-associated cancer: an obstetric consultation at 8 weeks recording it.

    No draw from the timeline's generator (the consultation is at 10:00): every other fact of a seed stays
    as it was before pregnancies were generated.
    """
    preg = np.flatnonzero(c.pregnancy_day >= 0)
    day = c.pregnancy_day[preg] + PREGNANCY_VISIT_DAY
    visit = ev.v.add(preg, 0, day * DAY + 10 * 3600, np.full(preg.shape[0], 0.5), 0)
    ev.add_diag(preg, visit, day, 2, np.full(preg.shape[0], PREGNANCY.icd10, dtype=object), 0)


def _systemic(
    ev: _Events, c: Cohort, regimen: np.ndarray, start_day: np.ndarray, limit_day: np.ndarray, line: int
) -> np.ndarray:
    """Cycles of a systemic line (day-hospital sessions with drugs, pre-cycle labs); returns end day per patient."""
    rng, v, drugs = ev.rng, ev.v, ev.drugs
    secs, add_diag, add_proc, add_draw = ev.secs, ev.add_diag, ev.add_proc, ev.add_draw
    sel = np.flatnonzero((regimen >= 0) & (start_day < limit_day))
    if sel.size == 0:
        return np.where(regimen >= 0, start_day, c.dx_day + c.plan.surgery_day)
    regs = [REGIMENS[k] for k in REGIMEN_KEYS]
    cycles = np.array([r.cycles for r in regs])[regimen[sel]]
    step = np.array([r.cycle_days for r in regs])[regimen[sel]]
    rows, k = _series(start_day[sel], cycles, 1)
    pid = sel[rows]
    day = start_day[pid] + k * step[rows] + rng.integers(0, 3, size=rows.shape[0]) * (k > 0)
    keep = day < limit_day[pid]
    pid, day, k = pid[keep], day[keep], k[keep]
    reg = regimen[pid]
    oral = np.array([r.cycle_days >= 90 for r in regs])[reg]
    myelo = np.array([r.myelotoxic for r in regs])[reg]
    iv = ~oral
    vid_iv = v.add(pid[iv], 1, secs(day[iv], 8, 11), rng.uniform(3, 7, int(iv.sum())), 0)
    vid_or = v.add(pid[oral], 0, secs(day[oral]), np.full(int(oral.sum()), 0.5), 0)
    vid = np.empty(pid.shape[0], dtype=np.int64)
    vid[iv], vid[oral] = vid_iv, vid_or
    t0 = day * DAY + 9 * 3600
    add_proc(pid[iv], vid[iv], day[iv], PROCEDURE_KEYS.index("chemotherapy"))
    add_draw(pid, t0 - 3600, vid, 0, on_chemo=np.where(myelo, k, 0), nadir=0)
    # A few cycles get a day-8 blood count at the nadir (outside lab, no visit).
    nad = myelo & (rng.random(pid.shape[0]) < 0.25)
    add_draw(pid[nad], t0[nad] + 7 * DAY, np.full(int(nad.sum()), -1), 2, on_chemo=k[nad] + 1, nadir=1)
    for slot in range(5):
        has = np.array([len(r.drugs) > slot for r in regs])[reg]
        ids = np.array([DRUG_KEYS.index(r.drugs[slot]) if len(r.drugs) > slot else 0 for r in regs])
        d = np.flatnonzero(has)
        drugs.append(
            {
                "pid": pid[d],
                "visit": vid[d],
                "t": t0[d] + 1800 * (slot + 1),
                "drug": ids[reg[d]].astype(np.int16),
                "regimen": reg[d].astype(np.int16),
                "line": np.full(d.shape[0], line, np.int8),
                "cycle": (k[d] + 1).astype(np.int16),
            }
        )
    sup = np.flatnonzero(myelo & iv)
    for j, name in enumerate(SUPPORTIVE_DRUGS):
        drugs.append(
            {
                "pid": pid[sup],
                "visit": vid[sup],
                "t": t0[sup] - 600 + 60 * j,
                "drug": np.full(sup.shape[0], DRUG_KEYS.index(name), np.int16),
                "regimen": np.full(sup.shape[0], -1, np.int16),
                "line": np.zeros(sup.shape[0], np.int8),
                "cycle": np.zeros(sup.shape[0], np.int16),
            }
        )
    # Adverse events noted at the session (neuropathy with platinum/taxanes, nausea, immune colitis...).
    u = rng.random(pid.shape[0])
    ae = np.where(u < 0.03, AE_KEYS.index("nausea"), np.where(u < 0.05, AE_KEYS.index("neuropathy"), -1))
    immuno = np.array([r.kind == "immuno" for r in regs])[reg]
    ae = np.where(immuno & (u > 0.98), AE_KEYS.index("colitis"), ae)
    has_ae = np.flatnonzero(ae >= 0)
    ae_codes = np.array([ADVERSE_EVENTS[k].icd10 for k in AE_KEYS], dtype=object)
    add_diag(pid[has_ae], vid[has_ae], day[has_ae], 3, ae_codes[ae[has_ae]], 1)
    last = np.full(c.dx_day.shape[0], -1, dtype=np.int64)
    np.maximum.at(last, pid, day + np.where(oral, 90, 21))
    return np.where(last >= 0, last, np.where(regimen >= 0, start_day, c.dx_day + c.plan.surgery_day))


def _cause_of_stay(
    rng: np.random.Generator, c: Cohort, pid: np.ndarray, day: np.ndarray, drugs: list[Table]
) -> np.ndarray:
    """Adverse-event cause of each unplanned stay: chemotherapy toxicity when a cycle was given 21 days before."""
    chemo_days = _cat(drugs) if drugs else {"pid": np.zeros(0, np.int64), "t": np.zeros(0, np.int64)}
    on_line = chemo_days["line"] > 0 if "line" in chemo_days else np.zeros(0, bool)
    key = chemo_days["pid"][on_line].astype(np.int64) * 10_000_000 + chemo_days["t"][on_line] // DAY
    key = np.unique(key)
    probe = pid.astype(np.int64) * 10_000_000 + day
    pos = np.searchsorted(key, probe, side="right") - 1
    prev = np.where(pos >= 0, key[np.maximum(pos, 0)], -1)
    recent = (prev // 10_000_000 == pid) & (probe - prev <= 21)
    u = rng.random(pid.shape[0])
    on_chemo = np.where(
        u < 0.45,
        AE_KEYS.index("neutropenia"),
        np.where(
            u < 0.6, AE_KEYS.index("anaemia"), np.where(u < 0.8, AE_KEYS.index("nausea"), AE_KEYS.index("colitis"))
        ),
    )
    off = np.where(
        u < 0.3,
        AE_KEYS.index("fever"),
        np.where(
            u < 0.55,
            AE_KEYS.index("anaemia"),
            np.where(u < 0.8, AE_KEYS.index("colitis"), AE_KEYS.index("pneumonitis")),
        ),
    )
    return np.where(recent, on_chemo, off)


def _finish_visits(v: _Visits) -> tuple[Table, np.ndarray]:
    """Concatenate visits, order them per patient by start time and number them (``seq``)."""
    pid, kind, start, end, unit, exit_mode = (np.concatenate([p[i] for p in v.parts]) for i in range(6))
    order = np.lexsort((np.arange(pid.shape[0]), start, pid))
    pid_s = pid[order]
    first = np.r_[0, np.flatnonzero(np.diff(pid_s)) + 1]
    counts = np.diff(np.r_[first, pid_s.shape[0]])
    seq = np.arange(pid_s.shape[0]) - np.repeat(first, counts)
    visits = {
        "pid": pid_s,
        "seq": seq,
        "kind": kind[order],
        "start": start[order],
        "end": end[order],
        "unit": unit[order],
        "exit": exit_mode[order],
        "seq_of_row": seq,
    }
    return visits, order


__all__ = ["CBC", "CHEMISTRY", "MARKER_LAB", "Timeline", "build_timeline"]
