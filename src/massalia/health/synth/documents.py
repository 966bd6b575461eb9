"""French clinical documents consistent with the structured data, with ground-truth span annotations.

Each document is built segment by segment, so every annotated span's character offsets are exact.
Labels: cancer, histology, tnm, stage, biomarker, drug, date, metastasis, comorbidity, procedure,
adverse_event, ecog, progression; qualifiers: negated, hypothesis, family, history. Direct identifiers (headers,
signatures, the patient named in letters) are planted by ``identifiers`` and listed apart (``identifiers``).

The wording is made hard on purpose, so that an NLP evaluation against these annotations means something:
synonyms and abbreviations, typos inside entities too (``ENTITY_TYPO_RATE``; the annotated text is the typed
one), bulleted lists, biomarker tables, negations spanning a coordination ("pas de métastase hépatique ni de
lésion osseuse secondaire"), hypotheses before and after the entity, family histories, planned procedures
(hypothetical) and progression / relapse statements.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from massalia.health.synth import identifiers as idg
from massalia.health.synth import phrases as ph
from massalia.health.synth.catalogue import (
    ADVERSE_EVENTS,
    BIOMARKERS,
    CANCERS,
    COMORBIDITIES,
    DRUGS,
    METASTASES,
    METASTASIS_SITES_BY_CANCER,
    PROCEDURES,
    REGIMENS,
)
from massalia.health.synth.cohort import COMORBIDITY_KEYS, MARKERS, N_CATS, T_CATS, Cohort
from massalia.health.synth.sites.ids import source_ids
from massalia.health.synth.timeline import AE_KEYS, Timeline
from massalia.health.synth.treatment import PROCEDURE_KEYS, REGIMEN_KEYS

DOC_KINDS: tuple[str, ...] = ("pathology", "tumour_board", "consultation", "discharge", "imaging")
LABELS: tuple[str, ...] = (
    "cancer",
    "histology",
    "tnm",
    "stage",
    "biomarker",
    "drug",
    "date",
    "metastasis",
    "comorbidity",
    "procedure",
    "adverse_event",
    "ecog",
    "progression",
)
ENTITY_TYPO_RATE = 0.03
"""Share of multi-letter entity mentions typed with one typo (swapped letters or a lost accent)."""
_TYPO_LABELS = frozenset({"cancer", "histology", "comorbidity", "metastasis", "procedure", "adverse_event"})
STAGES = ("I", "II", "III", "IV")
_MET_ICD = {k: m.icd10 for k, m in METASTASES.items()}
_MET_BY_ICD = {m.icd10: k for k, m in METASTASES.items()}


class _Note:
    """A document under construction: text segments and the spans annotated on them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[dict[str, Any]] = []
        self.identifiers: list[dict[str, Any]] = []
        self.patient: idg.Identity | None = None
        self.ident_rng = rng

    def raw(self, s: str) -> None:
        self.parts.append(s)
        self.length += len(s)

    def ident(self, s: str, kind: str, *, cue: bool = True, value: str | None = None) -> None:
        span = {"start": self.length, "end": self.length + len(s), "type": kind, "text": s, "cue": cue}
        self.identifiers.append(span)
        if kind == "date" and value is not None:  # a date of the header is a date for the NLP truth too
            self.spans.append({"start": span["start"], "end": span["end"], "label": "date", "text": s, "value": value,
                               "negated": False, "hypothesis": False, "family": False, "history": False})  # fmt: skip
        self.raw(s)

    def mention(self, fallback: str) -> None:
        """The patient named in a sentence (planted identifiers, see ``identifiers``), else ``fallback``."""
        if self.patient is None:
            self.raw(fallback)
        else:
            idg.write_patient_mention(self, self.patient, self.ident_rng)

    def text(self, s: str) -> None:
        if self.rng.random() < 0.2:
            words = s.split(" ")
            i = int(self.rng.randrange(0, len(words)))
            words[i] = ph.typo(words[i], self.rng, rate=1.0)
            s = " ".join(words)
        self.parts.append(s)
        self.length += len(s)

    def ent(
        self,
        s: str,
        label: str,
        value: object,
        *,
        negated: bool = False,
        hypothesis: bool = False,
        family: bool = False,
        history: bool = False,
    ) -> None:
        if label in _TYPO_LABELS and self.rng.random() < ENTITY_TYPO_RATE:
            words = s.split(" ")
            i = int(self.rng.randrange(0, len(words)))
            words[i] = ph.typo(words[i], self.rng, rate=1.0)
            s = " ".join(words)
        start = self.length
        self.parts.append(s)
        self.length += len(s)
        self.spans.append(
            {
                "start": start,
                "end": self.length,
                "label": label,
                "text": s,
                "value": value,
                "negated": negated,
                "hypothesis": hypothesis,
                "family": family,
                "history": history,
            }
        )

    def date(self, day: int) -> None:
        iso = (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()
        self.ent(ph.french_date(day, self.rng), "date", iso)

    def body(self) -> str:
        return "".join(self.parts)


class _Patient:
    """Plain-Python view of one patient's facts (read once from the arrays)."""

    def __init__(self, c: Cohort, i: int) -> None:
        self.cancer = CANCERS[int(c.cancer[i])]
        self.icd10 = str(c.icd10[i])
        self.morph = str(c.morphology[i])
        self.histology = next(h[1] for h in self.cancer.histologies if h[0] == self.morph)
        self.male = bool(c.male[i])
        self.age = int(c.age[i])
        self.stage = int(c.stage[i])
        self.tnm = (int(c.ct[i]), int(c.cn[i]), int(c.cm[i]))
        self.ptnm = (int(c.pt[i]), int(c.pn[i]))
        self.ecog = int(c.ecog[i])
        self.grade = int(c.grade[i])
        self.comorb = [k for j, k in enumerate(COMORBIDITY_KEYS) if c.comorb[i, j]]
        self.markers = [
            (m, int(c.marker[i, j]), float(c.marker_value[i, j])) for j, m in enumerate(MARKERS) if c.marker[i, j] >= 0
        ]
        self.family = int(c.family_history[i])
        self.relative = int(c.family_relative[i])
        self.surgery = int(c.plan.surgery[i])
        self.line1 = int(c.plan.line1[i])
        self.line2 = int(c.plan.line2[i])
        self.hormone = int(c.plan.hormone[i])
        self.rt = int(c.plan.rt_fractions[i])


def _cancer(n: _Note, p: _Patient, **q: bool) -> None:
    n.ent(ph.pick(ph.CANCER_NAMES[p.cancer.key], n.rng), "cancer", p.icd10, **q)


def _tnm(n: _Note, p: _Patient) -> None:
    t, nn, m = p.tnm
    style = int(n.rng.randrange(0, 3))
    s = (
        f"c{T_CATS[t]}N{N_CATS[nn][1:]}M{m}"
        if style == 0
        else f"c{T_CATS[t]} c{N_CATS[nn]} cM{m}"
        if style == 1
        else f"{T_CATS[t]}{N_CATS[nn]}M{m}"
    )
    n.ent(s, "tnm", f"c{T_CATS[t]} c{N_CATS[nn]} cM{m}")


def _markers(n: _Note, p: _Patient) -> None:
    table = n.rng.random() < 0.25
    if table:
        n.text("\nMarqueur\t| Résultat")
    for j, (m, status, value) in enumerate(p.markers):
        if table:
            _marker_row(n, m, status, value)
            continue
        n.text(", " if j else "")
        name = ph.pick(ph.BIOMARKER_NAMES[m], n.rng)
        if BIOMARKERS[m].numeric:
            n.ent(f"{name} {int(value)} %", "biomarker", f"{m}:{int(value)}")
        else:
            word = ph.pick(ph.POSITIVE if status else ph.NEGATIVE, n.rng)
            n.ent(f"{name} {word}", "biomarker", f"{m}:{'positive' if status else 'negative'}")


def _marker_row(n: _Note, m: str, status: int, value: float) -> None:
    """One row of a biomarker table: the name, a tab and a bar, the result."""
    n.text("\n")
    name = ph.pick(ph.BIOMARKER_NAMES[m], n.rng)
    if BIOMARKERS[m].numeric:
        n.ent(f"{name}\t| {int(value)} %", "biomarker", f"{m}:{int(value)}")
    else:
        word = ph.pick(ph.POSITIVE if status else ph.NEGATIVE, n.rng)
        n.ent(f"{name}\t| {word}", "biomarker", f"{m}:{'positive' if status else 'negative'}")


def _regimen(n: _Note, key_idx: int) -> None:
    reg = REGIMENS[REGIMEN_KEYS[key_idx]]
    for j, d in enumerate(reg.drugs):
        n.text(" + " if j else "")
        drug = DRUGS[d]
        name = ph.DRUG_BRANDS.get(d) if d in ph.DRUG_BRANDS and n.rng.random() < 0.3 else drug.inn_fr
        dose = f" {drug.dose_mg:g} mg" if n.rng.random() < 0.5 else ""
        n.ent(f"{name}{dose}", "drug", drug.atc)


def _antecedents(n: _Note, p: _Patient) -> None:
    if p.comorb:
        bulleted = n.rng.random() < 0.3
        n.text(ph.pick(("\nAntécédents : ", "\nATCD : ", "\nAntécédents médicaux : "), n.rng))
        for j, k in enumerate(p.comorb):
            n.text(("\n- " if bulleted else ", ") if j or bulleted else "")
            n.ent(ph.pick(ph.COMORBIDITY_NAMES[k], n.rng), "comorbidity", COMORBIDITIES[k][0].icd10, history=True)
        n.text("" if bulleted else ".")
    if p.family >= 0:
        fam = CANCERS[p.family]
        n.text(ph.pick(("\nAntécédents familiaux : ", "\nATCD familiaux : ", "\nDans la famille : "), n.rng))
        rel = ph.RELATIVES[p.relative]
        female = p.relative in (0, 2)
        formula = int(n.rng.randrange(0, 3))
        if formula == 0:
            n.text(f"{rel} {'traitée' if female else 'traité'} pour un ")
        elif formula == 2:
            n.text(f"{rel} {'décédée' if female else 'décédé'} d'un ")
        n.ent(ph.pick(ph.CANCER_NAMES[fam.key], n.rng), "cancer", fam.icd10[0][0], family=True)
        if formula == 1:
            n.text(f" chez {'sa' if female else 'son'} {rel}")
        n.text(".")


def _consultation(n: _Note, p: _Patient, day: int) -> None:
    n.text(ph.pick(ph.GREETINGS, n.rng) + "\n")
    n.text(ph.pick(("J'ai vu en consultation le ", "Je reçois ce jour, le ", "Consultation du "), n.rng))
    n.date(day)
    who = "M." if p.male else "Mme"
    n.raw(", ")
    n.mention(f"{who} X")
    n.text(f", {p.age} ans, adressé{'' if p.male else 'e'} ")
    n.text(ph.pick(("pour bilan. Motif : ", "pour avis. Motif : ", "par son médecin traitant. Motif : "), n.rng))
    fmt = ph.pick(ph.HYPOTHESIS_FORMULAS, n.rng)
    before, after = fmt.split("{x}")
    n.text(before)
    _cancer(n, p, hypothesis=True)
    n.text(after + ".")
    _antecedents(n, p)
    n.text("\nExamen : ")
    n.ent(ph.ecog_text(p.ecog, n.rng), "ecog", p.ecog)
    n.text(". ")
    plan = int(n.rng.randrange(0, 3))
    if plan == 0:
        n.text("Je programme une ")
        n.ent("biopsie", "procedure", PROCEDURES["biopsy"].snomed, hypothesis=True)
        n.text(" et un bilan d'extension.")
    elif plan == 1:
        n.text("Un ")
        n.ent("scanner", "procedure", PROCEDURES["ct_scan"].snomed, hypothesis=True)
        n.text(" TAP et une ")
        n.ent("biopsie", "procedure", PROCEDURES["biopsy"].snomed, hypothesis=True)
        n.text(" sont à prévoir.")
    else:
        n.text("Bilan en cours.")
    n.text("\n" + ph.pick(ph.CLOSINGS, n.rng))


def _imaging(n: _Note, p: _Patient, day: int, relapse_met: str | None) -> None:
    header = int(n.rng.randrange(0, 3))
    if header == 0:
        n.ent("SCANNER", "procedure", PROCEDURES["ct_scan"].snomed)
        n.text(" THORACO-ABDOMINO-PELVIEN")
    elif header == 1:
        n.ent("TDM", "procedure", PROCEDURES["ct_scan"].snomed)
        n.text(" TAP injectée")
    else:
        n.text("Compte rendu d'imagerie")
    n.text(" du ")
    n.date(day)
    if header == 2 and n.rng.random() < 0.5:
        n.text(" - ")
        n.ent("scanner", "procedure", PROCEDURES["ct_scan"].snomed)
    if relapse_met:
        n.text("\nIndication : suivi, recherche de ")
        n.ent("récidive", "progression", "relapse", hypothesis=True)
        n.text(".\n")
    else:
        n.text("\nIndication : bilan d'extension.\n")
    n.text("Résultat : ")
    if relapse_met:
        key = _MET_BY_ICD.get(relapse_met, "liver")
        n.text("apparition de ")
        n.ent(ph.pick(ph.METASTASIS_NAMES[key], n.rng), "metastasis", relapse_met)
        n.text(", en faveur d'une ")
        n.ent("progression", "progression", "progression")
        n.text(".")
    elif p.tnm[2] == 1:
        key = _first_met(p)
        n.ent(ph.pick(ph.METASTASIS_NAMES[key], n.rng), "metastasis", _MET_ICD[key])
        n.text(" multiples. ")
        if n.rng.random() < 0.5:
            other = "bone" if key != "bone" else "liver"
            fmt = ph.pick(ph.HYPOTHESIS_FORMULAS, n.rng)
            before, after = fmt.split("{x}")
            n.text(before)
            n.ent(ph.pick(ph.METASTASIS_NAMES[other], n.rng), "metastasis", _MET_ICD[other], hypothesis=True)
            n.text(after + ".")
    else:
        n.text("lésion primitive de " + f"{10 + 10 * p.tnm[0]} mm. ")
        if n.rng.random() < 0.3:
            # One negation governing two entities across a coordination.
            n.text(ph.pick(("Pas de ", "Absence de ", "Aucune "), n.rng))
            n.ent(ph.pick(("métastase hépatique", "lésion hépatique secondaire"), n.rng), "metastasis",
                  _MET_ICD["liver"], negated=True)  # fmt: skip
            n.text(ph.pick((" ni de ", ", ni ", " ou "), n.rng))
            n.ent(ph.pick(("métastase osseuse", "lésion osseuse secondaire"), n.rng), "metastasis", _MET_ICD["bone"],
                  negated=True)  # fmt: skip
        else:
            neg = ph.pick(ph.NEGATED_METASTASIS, n.rng)
            n.ent(neg, "metastasis", "C79.9", negated=True)
        n.text(".")
    n.text("\n" + ph.pick(("Conclusion : cf. ci-dessus.", "Avis RCP souhaitable.", ""), n.rng))


def _first_met(p: _Patient) -> str:
    return METASTASIS_SITES_BY_CANCER[p.cancer.key][0]


def _pathology(n: _Note, p: _Patient, day: int, surgical: bool) -> None:
    n.text(ph.pick(("COMPTE RENDU ANATOMOPATHOLOGIQUE", "Anatomie pathologique", "CR ANAPATH"), n.rng))
    n.text("\nPrélèvement du ")
    n.date(day)
    if surgical:
        n.text(" : pièce opératoire (")
        n.ent(
            PROCEDURES[PROCEDURE_KEYS[p.surgery]].label_fr.lower(),
            "procedure",
            PROCEDURES[PROCEDURE_KEYS[p.surgery]].snomed,
        )
        n.text(").\n")
    else:
        n.text(" : ")
        n.ent("biopsie", "procedure", PROCEDURES["biopsy"].snomed)
        n.text(".\n")
    n.text("Diagnostic : ")
    n.ent(p.histology, "histology", p.morph)
    n.text(ph.pick((", ", " - ", " ; "), n.rng) + f"grade {p.grade}.\n")
    if surgical:
        n.text("Stade pathologique : ")
        pt, pn = p.ptnm
        n.ent(
            f"p{T_CATS[pt]} p{N_CATS[pn]}" if n.rng.random() < 0.5 else f"p{T_CATS[pt]}{N_CATS[pn]}",
            "tnm",
            f"p{T_CATS[pt]} p{N_CATS[pn]}",
        )
        n.text(". ")
        if pn == 0:
            n.ent(ph.pick(ph.NEGATED_NODES, n.rng), "metastasis", "C77.9", negated=True)
            n.text(".")
        n.text(ph.pick((" Marges saines.", " Exérèse complète (R0).", " Limites d'exérèse saines."), n.rng))
    elif p.markers:
        n.text("Immunohistochimie / biologie moléculaire : ")
        _markers(n, p)
        n.text(".")


def _tumour_board(n: _Note, p: _Patient, day: int, relapse: bool) -> None:
    n.text(ph.pick(("RÉUNION DE CONCERTATION PLURIDISCIPLINAIRE", "RCP d'oncologie", "Fiche RCP"), n.rng))
    n.text(" du ")
    n.date(day)
    n.text("\nMotif : ")
    if relapse:
        word = ph.pick(("rechute", "récidive", "progression"), n.rng)
        n.ent(word, "progression", "progression" if word == "progression" else "relapse")
    else:
        n.text("dossier initial")
    n.text(" - ")
    _cancer(n, p)
    n.text(", ")
    n.ent(p.histology, "histology", p.morph)
    n.text(".\nStade : ")
    _tnm(n, p)
    n.text(" (")
    n.ent(f"stade {STAGES[p.stage]}", "stage", STAGES[p.stage])
    n.text("). ")
    n.ent(ph.ecog_text(p.ecog, n.rng), "ecog", p.ecog)
    n.text(".")
    if p.markers and n.rng.random() < 0.7:
        n.text("\nBiomarqueurs : ")
        _markers(n, p)
        n.text(".")
    _antecedents(n, p)
    n.text("\nProposition : ")
    if relapse:
        if p.line2 >= 0:
            n.text("traitement de deuxième ligne par ")
            _regimen(n, p.line2)
        else:
            n.text("soins de support exclusifs")
    else:
        steps = []
        if p.surgery >= 0:
            steps.append("surgery")
        if p.line1 >= 0:
            steps.append("line1")
        if p.rt > 0:
            steps.append("rt")
        if p.hormone >= 0:
            steps.append("hormone")
        if not steps:
            n.text("surveillance")
        for j, s in enumerate(steps):
            n.text(" puis " if j else "")
            if s == "surgery":
                proc = PROCEDURES[PROCEDURE_KEYS[p.surgery]]
                n.ent(proc.label_fr.lower(), "procedure", proc.snomed)
            elif s == "line1":
                n.text("traitement systémique par ")
                _regimen(n, p.line1)
            elif s == "rt":
                n.ent(f"radiothérapie ({p.rt} fractions)", "procedure", PROCEDURES["radiotherapy"].snomed)
            else:
                kind = REGIMENS[REGIMEN_KEYS[p.hormone]].kind
                n.text("hormonothérapie par " if kind == "hormone" else "maintenance par ")
                _regimen(n, p.hormone)
    n.text(".")


def _discharge(n: _Note, p: _Patient, start: int, end: int, ae: int | None) -> None:
    n.text(ph.pick(("COMPTE RENDU D'HOSPITALISATION", "CRH", "Lettre de sortie"), n.rng))
    n.text("\nHospitalisation du ")
    n.date(start)
    n.text(" au ")
    n.date(end)
    n.text(".\nMotif : ")
    if ae is None:
        proc = PROCEDURES[PROCEDURE_KEYS[p.surgery]]
        n.ent(proc.label_fr.lower(), "procedure", proc.snomed)
        n.text(" pour ")
        _cancer(n, p)
        n.text(
            ".\nSuites opératoires "
            + ph.pick(("simples", "sans particularité", "marquées par une douleur contrôlée"), n.rng)
            + ". "
        )
        n.ent(
            ph.pick(("pas de complication", "absence de complication", "aucune complication"), n.rng),
            "adverse_event",
            "complication",
            negated=True,
        )
        n.text(".")
    else:
        cond = ADVERSE_EVENTS[AE_KEYS[ae]]
        n.ent(cond.label_fr, "adverse_event", cond.icd10)
        n.text(
            " chez un"
            + ("" if p.male else "e")
            + " patient"
            + ("" if p.male else "e")
            + " suivi"
            + ("" if p.male else "e")
            + " pour "
        )
        _cancer(n, p)
        n.text(".")
        if p.line1 >= 0:
            n.text(" Dernière cure : ")
            _regimen(n, p.line1)
            n.text(".")
    n.text("\n" + ph.pick(("Retour à domicile.", "Sortie à domicile.", "Sortie le jour prévu."), n.rng))


def note_id_string(site: str, note_id: int) -> str:
    """The document id as the site writes it.

    Examples
    --------
    >>> note_id_string("chu_nord", 1200)
    'D0000001200'
    """
    prefix = {"chu_nord": "D", "clcc_sud": "N", "ch_est": "DOC"}[site]
    return f"{prefix}{note_id:010d}"


def build_documents(
    rng: np.random.Generator, c: Cohort, t: Timeline, site: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Documents of a site's patients and their annotation lines (JSON, one per document).

    Returns
    -------
    tuple
        ``({pid, visit, day, kind, text, note_id}, [json lines])``.
    """
    # Python's generator (seeded from the block's) is much cheaper per draw than numpy's scalar calls.
    text_rng = random.Random(int(rng.integers(0, 2**63)))
    pids, visits, days, kinds, texts, ids = [], [], [], [], [], []
    annotations: list[str] = []
    anchors = {k: v.tolist() for k, v in t.anchors.items()}
    sids = source_ids(site, c.index)
    surg = _first_visit(t, (t.visits["kind"] == 2) & (t.visits["unit"] == 1), len(c))
    unpl = _first_visit(t, (t.visits["kind"] == 2) & (t.visits["unit"] == 4), len(c))
    ae_first = _stay_ae(t, unpl)
    dx = c.dx_day.tolist()
    v_start = (t.visits["start"] // 86_400).tolist()
    v_end = (t.visits["end"] // 86_400).tolist()
    v_seq = t.visits["seq"].tolist()
    rel_met = _relapse_met(t, len(c))
    births = c.birth_day.tolist()
    for i in range(len(c)):
        p = _Patient(c, i)
        identity = idg.patient_identity(site, int(c.index[i]), not p.male, births[i], sids[i])
        plan: list[tuple[int, int, int, Any]] = [
            (2, anchors["first_consult"][i], -1, None),
            (4, dx[i], -1, None),
            (0, dx[i] + 4 + int(c.index[i]) % 9, -1, False),
            (1, anchors["rcp_day"][i], -1, False),
        ]
        if surg[i] >= 0:
            plan.append((3, v_end[surg[i]], v_seq[surg[i]], (v_start[surg[i]], v_end[surg[i]], None)))
            plan.append((0, v_start[surg[i]] + 10, -1, True))
        if unpl[i] >= 0:
            plan.append((3, v_end[unpl[i]], v_seq[unpl[i]], (v_start[unpl[i]], v_end[unpl[i]], ae_first[i])))
        if rel_met[i] is not None:
            plan.append((4, anchors["relapse_day"][i], -1, rel_met[i]))
            plan.append((1, anchors["relapse_day"][i] + 7, -1, True))
        for k, (kind, day, visit, arg) in enumerate(plan):
            if day >= anchors["end_day"][i] + 1 and kind != 3:
                continue
            note_id = int(c.index[i]) * 100 + k
            n = _Note(text_rng)
            # identifiers come from a generator of their own: the clinical text is drawn as without them
            n.patient, n.ident_rng = identity, random.Random(f"massalia-note/{site}/{note_id}")
            doctor = idg.write_header(n, site, identity, note_id, n.ident_rng)
            if kind == 0:
                _pathology(n, p, day, bool(arg))
            elif kind == 1:
                _tumour_board(n, p, day, bool(arg))
            elif kind == 2:
                _consultation(n, p, day)
            elif kind == 3:
                _discharge(n, p, arg[0], arg[1], arg[2])
            else:
                _imaging(n, p, day, arg)
            idg.write_signature(n, site, doctor, n.ident_rng, identity)
            text = n.body()
            pids.append(i)
            visits.append(visit)
            days.append(day)
            kinds.append(kind)
            texts.append(text)
            ids.append(note_id)
            annotations.append(
                json.dumps(
                    {
                        "note_id": note_id_string(site, note_id),
                        "site": site,
                        "patient_id": sids[i],
                        "note_type": DOC_KINDS[kind],
                        "note_date": (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat(),
                        "spans": n.spans,
                        "identifiers": idg.identifier_spans(n.identifiers, n.spans),
                    },
                    ensure_ascii=False,
                )
            )
    table = {
        "pid": np.array(pids, dtype=np.int64),
        "visit": np.array(visits, dtype=np.int64),
        "day": np.array(days, dtype=np.int64),
        "kind": np.array(kinds, dtype=np.int64),
        "text": np.array(texts, dtype=object),
        "note_id": np.array(ids, dtype=np.int64),
    }
    return table, annotations


def _first_visit(t: Timeline, mask: np.ndarray, n: int) -> list[int]:
    """Row of the first visit matching ``mask`` per patient (-1 if none)."""
    out = np.full(n, -1, dtype=np.int64)
    rows = np.flatnonzero(mask)[::-1]  # visits are sorted; reversed assignment keeps the first
    out[t.visits["pid"][rows]] = rows
    return out.tolist()


def _stay_ae(t: Timeline, stay_rows: list[int]) -> list[int | None]:
    """Adverse event (index into AE_KEYS) that caused each patient's stay (principal diagnosis)."""
    dg = t.diagnoses
    codes = {ADVERSE_EVENTS[k].icd10: j for j, k in enumerate(AE_KEYS)}
    sel = np.flatnonzero((dg["kind"] == 3) & (dg["rank"] == 0))
    by_stay = {(int(dg["pid"][r]), int(dg["visit"][r])): codes[str(dg["code"][r])] for r in sel.tolist()}
    pid, seq = t.visits["pid"], t.visits["seq"]
    return [None if r < 0 else by_stay.get((int(pid[r]), int(seq[r]))) for r in stay_rows]


def _relapse_met(t: Timeline, n: int) -> list[str | None]:
    dg = t.diagnoses
    sel = np.flatnonzero((dg["kind"] == 1) & (dg["rank"] == 0))
    out: list[str | None] = [None] * n
    for r in sel.tolist():
        out[int(dg["pid"][r])] = str(dg["code"][r])
    return out


def write_ndjson(table: pa.Table, path: Path) -> None:
    """Write a document table as NDJSON (one JSON object per line, UTF-8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for row in table.to_pylist():
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
