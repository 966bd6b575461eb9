"""Clinical content of the generator: cancers, histologies, biomarkers, drugs, labs, procedures, keyed by code.

Every code is a real SOURCE code of a standard system (ICD-10 WHO, ICD-O-3, ATC, LOINC, SNOMED CT),
as hospitals write them. Local codes of sites are derived from these in ``sites/clcc_sud_codes.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cancer:
    """One cancer type with its epidemiology and baseline hazards.

    ``incidence_m``/``incidence_f`` are relative French incidences per sex (thousands of new cases a
    year, orders of magnitude from national estimates); ``stage_probs`` the stage I–IV distribution at
    diagnosis; ``surv5_ref``/``rfs5_ref`` the 5-year overall and relapse-free survival of the
    reference patient (stage I, ECOG 0, 65 years, no comorbidity, untreated effects) from which the
    Weibull scales are derived.
    """

    key: str
    label_fr: str
    icd10: tuple[tuple[str, float], ...]
    histologies: tuple[tuple[str, str, float], ...]
    incidence_m: float
    incidence_f: float
    age_mean: float
    age_sd: float
    stage_probs: tuple[float, float, float, float]
    surv5_ref: float
    rfs5_ref: float
    surgery: str | None
    marker_lab: str | None
    lateral: bool = False


CANCERS: tuple[Cancer, ...] = (
    Cancer(
        "breast",
        "cancer du sein",
        (("C50.9", 0.5), ("C50.4", 0.3), ("C50.2", 0.2)),
        (
            ("8500/3", "carcinome canalaire infiltrant", 0.78),
            ("8520/3", "carcinome lobulaire infiltrant", 0.15),
            ("8480/3", "adénocarcinome mucineux", 0.07),
        ),
        0.5,
        61.0,
        62,
        13,
        (0.45, 0.35, 0.13, 0.07),
        0.97,
        0.93,
        "mastectomy",
        "ca15_3",
        lateral=True,
    ),
    Cancer(
        "prostate",
        "cancer de la prostate",
        (("C61", 1.0),),
        (("8140/3", "adénocarcinome acinaire", 1.0),),
        60.0,
        0.0,
        69,
        8,
        (0.35, 0.40, 0.15, 0.10),
        0.97,
        0.90,
        "prostatectomy",
        "psa",
    ),
    Cancer(
        "lung",
        "cancer du poumon",
        (("C34.1", 0.55), ("C34.3", 0.30), ("C34.9", 0.15)),
        (
            ("8140/3", "adénocarcinome", 0.50),
            ("8070/3", "carcinome épidermoïde", 0.28),
            ("8041/3", "carcinome à petites cellules", 0.14),
            ("8046/3", "carcinome non à petites cellules", 0.08),
        ),
        33.0,
        19.0,
        67,
        10,
        (0.20, 0.10, 0.25, 0.45),
        0.70,
        0.70,
        "lobectomy",
        "cea",
        lateral=True,
    ),
    Cancer(
        "colorectal",
        "cancer colorectal",
        (("C18.7", 0.35), ("C18.0", 0.2), ("C20", 0.3), ("C18.2", 0.15)),
        (("8140/3", "adénocarcinome lieberkühnien", 0.9), ("8480/3", "adénocarcinome mucineux", 0.1)),
        26.0,
        21.0,
        70,
        11,
        (0.20, 0.30, 0.28, 0.22),
        0.92,
        0.90,
        "colectomy",
        "cea",
    ),
    Cancer(
        "bladder",
        "cancer de la vessie",
        (("C67.9", 1.0),),
        (("8120/3", "carcinome urothélial", 1.0),),
        11.0,
        2.5,
        72,
        10,
        (0.50, 0.20, 0.15, 0.15),
        0.85,
        0.60,
        "cystectomy",
        None,
    ),
    Cancer(
        "kidney",
        "cancer du rein",
        (("C64", 1.0),),
        (("8312/3", "carcinome à cellules claires", 0.8), ("8260/3", "carcinome papillaire", 0.2)),
        11.0,
        5.0,
        66,
        12,
        (0.55, 0.12, 0.18, 0.15),
        0.92,
        0.88,
        "nephrectomy",
        None,
        lateral=True,
    ),
    Cancer(
        "melanoma",
        "mélanome",
        (("C43.5", 0.5), ("C43.7", 0.3), ("C43.6", 0.2)),
        (("8720/3", "mélanome malin", 0.7), ("8721/3", "mélanome nodulaire", 0.3)),
        9.0,
        9.0,
        60,
        15,
        (0.55, 0.20, 0.17, 0.08),
        0.97,
        0.90,
        "skin_excision",
        "ldh",
    ),
    Cancer(
        "pancreas",
        "cancer du pancréas",
        (("C25.0", 0.65), ("C25.9", 0.35)),
        (("8500/3", "adénocarcinome canalaire", 1.0),),
        8.0,
        8.0,
        71,
        10,
        (0.10, 0.15, 0.25, 0.50),
        0.40,
        0.50,
        "pancreatectomy",
        "ca19_9",
    ),
    Cancer(
        "head_neck",
        "cancer des voies aérodigestives supérieures",
        (("C32.9", 0.3), ("C10.9", 0.3), ("C09.9", 0.25), ("C01", 0.15)),
        (("8070/3", "carcinome épidermoïde", 1.0),),
        12.0,
        4.0,
        63,
        10,
        (0.15, 0.15, 0.25, 0.45),
        0.80,
        0.80,
        "neck_dissection",
        None,
    ),
    Cancer(
        "lymphoma",
        "lymphome",
        (("C83.3", 0.6), ("C82.9", 0.4)),
        (("9680/3", "lymphome B diffus à grandes cellules", 0.6), ("9690/3", "lymphome folliculaire", 0.4)),
        10.0,
        8.5,
        66,
        14,
        (0.20, 0.25, 0.25, 0.30),
        0.80,
        0.75,
        None,
        "ldh",
    ),
    Cancer(
        "ovary",
        "cancer de l'ovaire",
        (("C56", 1.0),),
        (("8461/3", "carcinome séreux de haut grade", 0.8), ("8380/3", "carcinome endométrioïde", 0.2)),
        0.0,
        5.3,
        65,
        12,
        (0.20, 0.08, 0.50, 0.22),
        0.88,
        0.70,
        "hysterectomy",
        "ca125",
        lateral=True,
    ),
    Cancer(
        "uterus",
        "cancer de l'endomètre",
        (("C54.1", 1.0),),
        (("8380/3", "adénocarcinome endométrioïde", 0.85), ("8441/3", "carcinome séreux", 0.15)),
        0.0,
        8.2,
        68,
        10,
        (0.70, 0.10, 0.13, 0.07),
        0.93,
        0.88,
        "hysterectomy",
        None,
    ),
)

CANCER_BY_KEY: dict[str, Cancer] = {c.key: c for c in CANCERS}

STAGES: tuple[str, ...] = ("I", "II", "III", "IV")
"""Stage groups, index 0..3."""

# TNM categories consistent with each stage group: (T choices, N choices) for M0 stages; stage IV is M1.
STAGE_TN: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    0: (("T1",), ("N0",)),
    1: (("T2", "T3"), ("N0", "N1")),
    2: (("T3", "T4"), ("N1", "N2")),
    3: (("T2", "T3", "T4"), ("N0", "N1", "N2", "N3")),
}


@dataclass(frozen=True)
class Biomarker:
    """A tumour biomarker reported by pathology or molecular biology.

    ``code`` is a LOINC code for immunohistochemistry results coded in LOINC by the labs, else the
    molecular pathology platform's LOCAL code (``MOL-*``, mapped in ``source_code_map.csv``).
    ``numeric`` markers carry a value (``unit``); others are positive/negative.
    """

    key: str
    code: str
    label_fr: str
    numeric: bool = False
    unit: str = ""

    @property
    def system(self) -> str:
        """``LOINC`` or ``LOCAL``."""
        return "LOCAL" if self.code.startswith("MOL-") else "LOINC"

    @property
    def loinc(self) -> str:
        """The code written in the sites' LOINC columns (a LOCAL ``MOL-*`` code when not LOINC-coded)."""
        return self.code


BIOMARKERS: dict[str, Biomarker] = {
    b.key: b
    for b in (
        Biomarker("er", "85337-4", "récepteurs aux oestrogènes"),
        Biomarker("pr", "85339-0", "récepteurs à la progestérone"),
        Biomarker("her2", "85319-2", "HER2"),
        Biomarker("ki67", "MOL-KI67", "Ki-67", numeric=True, unit="%"),
        Biomarker("egfr", "MOL-EGFR", "mutation EGFR"),
        Biomarker("alk", "MOL-ALK", "réarrangement ALK"),
        Biomarker("kras", "MOL-KRAS", "mutation KRAS"),
        Biomarker("braf", "MOL-BRAF", "mutation BRAF V600"),
        Biomarker("pdl1", "MOL-PDL1", "PD-L1 (TPS)", numeric=True, unit="%"),
        Biomarker("msi", "81695-9", "instabilité microsatellitaire"),
        Biomarker("brca", "MOL-BRCA", "mutation BRCA1/2"),
    )
}

# Which biomarkers each cancer's pathology reports, with the probability of a positive result.
# Numeric markers get their value drawn in ``cohort.py``.
MARKERS: tuple[str, ...] = ("er", "pr", "her2", "ki67", "egfr", "alk", "kras", "braf", "pdl1", "msi", "brca")
"""Biomarker columns of a generated cohort, in order (the treatment plan reads them as the cohort does)."""

CANCER_BIOMARKERS: dict[str, dict[str, float]] = {
    "breast": {"er": 0.78, "pr": 0.65, "her2": 0.15, "ki67": 0.0, "brca": 0.05},
    "lung": {"egfr": 0.12, "alk": 0.04, "kras": 0.25, "pdl1": 0.0},
    "colorectal": {"kras": 0.42, "braf": 0.09, "msi": 0.13},
    "melanoma": {"braf": 0.45},
    "ovary": {"brca": 0.18},
}


@dataclass(frozen=True)
class Drug:
    """A drug with its ATC code, French and English INN, usual dose per administration and route.

    ``rxnorm`` is the RxNorm code of its ingredient (the standard concept the ATC code maps to), empty
    when the demo vocabulary lacks it.
    """

    key: str
    atc: str
    inn_fr: str
    inn_en: str
    dose_mg: float
    route: str
    rxnorm: str = ""


DRUGS: dict[str, Drug] = {
    d.key: d
    for d in (
        Drug("fluorouracil", "L01BC02", "fluorouracile", "fluorouracil", 720.0, "IV", "4492"),
        Drug("capecitabine", "L01BC06", "capécitabine", "capecitabine", 1800.0, "PO", "194000"),
        Drug("oxaliplatin", "L01XA03", "oxaliplatine", "oxaliplatin", 153.0, "IV", "32592"),
        Drug("irinotecan", "L01CE02", "irinotécan", "irinotecan", 324.0, "IV", "51499"),
        Drug("cisplatin", "L01XA01", "cisplatine", "cisplatin", 135.0, "IV", "2555"),
        Drug("carboplatin", "L01XA02", "carboplatine", "carboplatin", 450.0, "IV", "40048"),
        Drug("paclitaxel", "L01CD01", "paclitaxel", "paclitaxel", 144.0, "IV", "56946"),
        Drug("docetaxel", "L01CD02", "docétaxel", "docetaxel", 135.0, "IV", "72962"),
        Drug("epirubicin", "L01DB03", "épirubicine", "epirubicin", 180.0, "IV", "3995"),
        Drug("doxorubicin", "L01DB01", "doxorubicine", "doxorubicin", 90.0, "IV", "3639"),
        Drug("cyclophosphamide", "L01AA01", "cyclophosphamide", "cyclophosphamide", 900.0, "IV", "3002"),
        Drug("pemetrexed", "L01BA04", "pémétrexed", "pemetrexed", 900.0, "IV", "68446"),
        Drug("gemcitabine", "L01BC05", "gemcitabine", "gemcitabine", 1800.0, "IV", "12574"),
        Drug("etoposide", "L01CB01", "étoposide", "etoposide", 180.0, "IV", "4179"),
        Drug("vincristine", "L01CA02", "vincristine", "vincristine", 2.0, "IV", "11202"),
        Drug("trastuzumab", "L01FD01", "trastuzumab", "trastuzumab", 420.0, "IV", "224905"),
        Drug("pertuzumab", "L01FD02", "pertuzumab", "pertuzumab", 420.0, "IV", "1298944"),
        Drug("bevacizumab", "L01FG01", "bévacizumab", "bevacizumab", 500.0, "IV", "253337"),
        Drug("cetuximab", "L01FE01", "cétuximab", "cetuximab", 450.0, "IV", "318341"),
        Drug("rituximab", "L01FA01", "rituximab", "rituximab", 675.0, "IV", "121191"),
        Drug("pembrolizumab", "L01FF02", "pembrolizumab", "pembrolizumab", 200.0, "IV", "1547545"),
        Drug("nivolumab", "L01FF01", "nivolumab", "nivolumab", 240.0, "IV", "1597876"),
        Drug("osimertinib", "L01EB04", "osimertinib", "osimertinib", 80.0, "PO", "1721560"),
        Drug("alectinib", "L01ED03", "alectinib", "alectinib", 1200.0, "PO", "1727455"),
        Drug("dabrafenib", "L01EC02", "dabrafénib", "dabrafenib", 300.0, "PO", "1424911"),
        Drug("trametinib", "L01EE01", "tramétinib", "trametinib", 2.0, "PO", "1425099"),
        Drug("olaparib", "L01XK01", "olaparib", "olaparib", 600.0, "PO"),
        Drug("sunitinib", "L01EX01", "sunitinib", "sunitinib", 50.0, "PO", "357977"),
        Drug("tamoxifen", "L02BA01", "tamoxifène", "tamoxifen", 20.0, "PO", "10324"),
        Drug("anastrozole", "L02BG03", "anastrozole", "anastrozole", 1.0, "PO", "84857"),
        Drug("leuprorelin", "L02AE02", "leuproréline", "leuprorelin", 22.5, "SC", "42375"),
        Drug("bicalutamide", "L02BB03", "bicalutamide", "bicalutamide", 50.0, "PO", "83008"),
        Drug("prednisone", "H02AB07", "prednisone", "prednisone", 100.0, "PO", "8640"),
        Drug("dexamethasone", "H02AB02", "dexaméthasone", "dexamethasone", 8.0, "IV", "3264"),
        Drug("folinic_acid", "V03AF03", "acide folinique", "calcium folinate", 360.0, "IV", "6313"),
    )
}


@dataclass(frozen=True)
class Regimen:
    """A treatment regimen: drugs given on each cycle, cycle length, number of cycles and class.

    ``kind`` is one of ``chemo``, ``targeted``, ``immuno``, ``hormone``; oral/hormone regimens are
    recorded once per follow-up prescription rather than per cycle (``cycle_days`` is then the
    prescription interval).
    """

    key: str
    label: str
    drugs: tuple[str, ...]
    cycle_days: int
    cycles: int
    kind: str
    myelotoxic: bool = True


REGIMENS: dict[str, Regimen] = {
    r.key: r
    for r in (
        Regimen("ec_paclitaxel", "EC-paclitaxel", ("epirubicin", "cyclophosphamide"), 21, 4, "chemo"),
        Regimen(
            "ec_docetaxel_trastuzumab", "EC puis docétaxel-trastuzumab", ("docetaxel", "trastuzumab"), 21, 6, "targeted"
        ),
        Regimen(
            "tch_pertuzumab",
            "docétaxel-trastuzumab-pertuzumab",
            ("docetaxel", "trastuzumab", "pertuzumab"),
            21,
            6,
            "targeted",
        ),
        Regimen("tamoxifen", "tamoxifène", ("tamoxifen",), 90, 20, "hormone", myelotoxic=False),
        Regimen("anastrozole", "anastrozole", ("anastrozole",), 90, 20, "hormone", myelotoxic=False),
        Regimen("adt", "hormonothérapie par agoniste LH-RH", ("leuprorelin",), 90, 12, "hormone", myelotoxic=False),
        Regimen("bicalutamide", "bicalutamide", ("bicalutamide",), 90, 8, "hormone", myelotoxic=False),
        Regimen("docetaxel", "docétaxel", ("docetaxel", "prednisone"), 21, 6, "chemo"),
        Regimen("carbo_pemetrexed", "carboplatine-pémétrexed", ("carboplatin", "pemetrexed"), 21, 4, "chemo"),
        Regimen("carbo_paclitaxel", "carboplatine-paclitaxel", ("carboplatin", "paclitaxel"), 21, 4, "chemo"),
        Regimen("cis_vinorelbine_like", "cisplatine-étoposide", ("cisplatin", "etoposide"), 21, 4, "chemo"),
        Regimen("pembrolizumab", "pembrolizumab", ("pembrolizumab",), 21, 12, "immuno", myelotoxic=False),
        Regimen("osimertinib", "osimertinib", ("osimertinib",), 90, 8, "targeted", myelotoxic=False),
        Regimen("alectinib", "alectinib", ("alectinib",), 90, 8, "targeted", myelotoxic=False),
        Regimen("folfox", "FOLFOX", ("oxaliplatin", "folinic_acid", "fluorouracil"), 14, 12, "chemo"),
        Regimen(
            "folfiri_bev",
            "FOLFIRI-bévacizumab",
            ("irinotecan", "folinic_acid", "fluorouracil", "bevacizumab"),
            14,
            12,
            "chemo",
        ),
        Regimen(
            "folfox_cetuximab",
            "FOLFOX-cétuximab",
            ("oxaliplatin", "folinic_acid", "fluorouracil", "cetuximab"),
            14,
            12,
            "targeted",
        ),
        Regimen("capecitabine", "capécitabine", ("capecitabine",), 21, 8, "chemo", myelotoxic=False),
        Regimen("gem_cis", "gemcitabine-cisplatine", ("gemcitabine", "cisplatin"), 21, 4, "chemo"),
        Regimen("sunitinib", "sunitinib", ("sunitinib",), 90, 6, "targeted", myelotoxic=False),
        Regimen("nivolumab", "nivolumab", ("nivolumab",), 14, 12, "immuno", myelotoxic=False),
        Regimen(
            "dabrafenib_trametinib",
            "dabrafénib-tramétinib",
            ("dabrafenib", "trametinib"),
            90,
            8,
            "targeted",
            myelotoxic=False,
        ),
        Regimen(
            "folfirinox", "FOLFIRINOX", ("oxaliplatin", "irinotecan", "folinic_acid", "fluorouracil"), 14, 12, "chemo"
        ),
        Regimen("gemcitabine", "gemcitabine", ("gemcitabine",), 28, 6, "chemo"),
        Regimen("cisplatin_rt", "cisplatine concomitant", ("cisplatin",), 21, 3, "chemo"),
        Regimen(
            "r_chop",
            "R-CHOP",
            ("rituximab", "cyclophosphamide", "doxorubicin", "vincristine", "prednisone"),
            21,
            6,
            "chemo",
        ),
        Regimen("carbo_paclitaxel_ov", "carboplatine-paclitaxel", ("carboplatin", "paclitaxel"), 21, 6, "chemo"),
        Regimen("olaparib", "olaparib", ("olaparib",), 90, 8, "targeted", myelotoxic=False),
    )
}

SUPPORTIVE_DRUGS: tuple[str, ...] = ("dexamethasone",)
"""Drugs added to every IV myelotoxic cycle (anti-emetic premedication). Ondansetron is left out: the
demo vocabulary has no concept for it yet."""


@dataclass(frozen=True)
class Lab:
    """A laboratory test: LOINC code, UCUM unit, reference range and the population distribution.

    Values are log-normal around ``mean`` with coefficient of variation ``cv``.
    """

    key: str
    loinc: str
    label_fr: str
    unit: str
    low: float
    high: float
    mean: float
    cv: float
    decimals: int


UCUM_CODES: dict[str, str] = {"U/L": "[U]/L", "U/mL": "[U]/mL"}
"""Units as laboratories print them → their UCUM code (the OMOP UCUM concept_code), where the two differ."""


def ucum_code(unit: str) -> str:
    """The UCUM code of a printed unit.

    Examples
    --------
    >>> ucum_code("U/L"), ucum_code("mmol/L")
    ('[U]/L', 'mmol/L')
    """
    return UCUM_CODES.get(unit, unit)


LABS: dict[str, Lab] = {
    lab.key: lab
    for lab in (
        Lab("hemoglobin", "718-7", "Hémoglobine", "g/dL", 12.0, 16.0, 13.4, 0.09, 1),
        Lab("leukocytes", "6690-2", "Leucocytes", "10*9/L", 4.0, 10.0, 6.8, 0.25, 2),
        Lab("neutrophils", "751-8", "Polynucléaires neutrophiles", "10*9/L", 1.8, 7.5, 4.2, 0.3, 2),
        Lab("lymphocytes", "731-0", "Lymphocytes", "10*9/L", 1.0, 4.0, 1.9, 0.3, 2),
        Lab("platelets", "777-3", "Plaquettes", "10*9/L", 150.0, 400.0, 250.0, 0.22, 0),
        Lab("mcv", "787-2", "VGM", "fL", 80.0, 100.0, 90.0, 0.05, 0),
        Lab("creatinine", "2160-0", "Créatinine", "umol/L", 45.0, 104.0, 78.0, 0.2, 0),
        Lab("alt", "1742-6", "ALAT", "U/L", 7.0, 40.0, 24.0, 0.35, 0),
        Lab("ast", "1920-8", "ASAT", "U/L", 10.0, 40.0, 25.0, 0.3, 0),
        Lab("bilirubin", "1975-2", "Bilirubine totale", "umol/L", 3.0, 21.0, 10.0, 0.35, 0),
        Lab("albumin", "1751-7", "Albumine", "g/L", 35.0, 50.0, 40.0, 0.09, 1),
        Lab("sodium", "2951-2", "Sodium", "mmol/L", 136.0, 145.0, 140.0, 0.02, 0),
        Lab("potassium", "2823-3", "Potassium", "mmol/L", 3.5, 5.1, 4.2, 0.07, 1),
        Lab("crp", "1988-5", "CRP", "mg/L", 0.0, 5.0, 4.0, 0.9, 1),
        Lab("alp", "6768-6", "Phosphatases alcalines", "U/L", 40.0, 130.0, 80.0, 0.3, 0),
        Lab("glucose", "2345-7", "Glycémie", "mmol/L", 3.9, 6.1, 5.3, 0.12, 1),
        Lab("chloride", "2075-0", "Chlore", "mmol/L", 98.0, 107.0, 102.0, 0.02, 0),
        Lab("psa", "2857-1", "PSA total", "ng/mL", 0.0, 4.0, 1.2, 0.6, 2),
        Lab("cea", "2039-6", "ACE", "ng/mL", 0.0, 5.0, 2.0, 0.5, 1),
        Lab("ca15_3", "6875-9", "CA 15-3", "U/mL", 0.0, 30.0, 15.0, 0.4, 1),
        Lab("ca19_9", "24108-3", "CA 19-9", "U/mL", 0.0, 37.0, 15.0, 0.6, 1),
        Lab("ca125", "10334-1", "CA 125", "U/mL", 0.0, 35.0, 15.0, 0.5, 1),
        Lab("ldh", "2532-0", "LDH", "U/L", 120.0, 246.0, 180.0, 0.2, 0),
    )
}

CBC: tuple[str, ...] = ("hemoglobin", "leukocytes", "neutrophils", "lymphocytes", "platelets", "mcv")
"""Blood count, in this order (leukocytes are computed from the two analytes after them)."""
CHEMISTRY: tuple[str, ...] = (
    "creatinine",
    "alt",
    "ast",
    "bilirubin",
    "albumin",
    "sodium",
    "potassium",
    "crp",
    "alp",
    "glucose",
    "chloride",
)


@dataclass(frozen=True)
class Procedure:
    """A procedure with its SNOMED CT code and French label."""

    key: str
    snomed: str
    label_fr: str


PROCEDURES: dict[str, Procedure] = {
    p.key: p
    for p in (
        Procedure("biopsy", "86273004", "Biopsie"),
        Procedure("ct_scan", "418891003", "Scanner thoraco-abdominal"),
        Procedure("mri", "113091000", "IRM"),
        Procedure("mammography", "71651007", "Mammographie"),
        Procedure("colonoscopy", "73761001", "Coloscopie"),
        Procedure("bronchoscopy", "173160006", "Bronchoscopie souple diagnostique"),
        Procedure("mastectomy", "69031006", "Mastectomie"),
        Procedure("lumpectomy", "392021009", "Tumorectomie mammaire"),
        Procedure("prostatectomy", "26294005", "Prostatectomie radicale"),
        Procedure("lobectomy", "287430001", "Exérèse pulmonaire (lobectomie)"),
        Procedure("colectomy", "84604002", "Colectomie segmentaire"),
        # No specific concept in the demo vocabulary: written as the generic "Surgical procedure" with a
        # specific French label (see docs/synthetic-data.md, vocabulary gaps).
        Procedure("cystectomy", "387713003", "Cystectomie"),
        Procedure("nephrectomy", "387713003", "Néphrectomie"),
        Procedure("skin_excision", "387713003", "Exérèse cutanée élargie"),
        Procedure("pancreatectomy", "387713003", "Duodénopancréatectomie céphalique"),
        Procedure("neck_dissection", "387713003", "Curage ganglionnaire cervical"),
        Procedure("hysterectomy", "387713003", "Hystérectomie"),
        Procedure("radiotherapy", "33195004", "Séance de radiothérapie externe"),
        Procedure("chemotherapy", "367336001", "Séance de chimiothérapie"),
        Procedure("transfusion", "5447007", "Transfusion sanguine"),
    )
}

IMAGING_BY_CANCER: dict[str, str] = {
    "breast": "mammography",
    "colorectal": "colonoscopy",
    "lung": "bronchoscopy",
    "lymphoma": "mri",
}


@dataclass(frozen=True)
class Condition:
    """A non-primary condition (comorbidity, adverse event, metastasis) with its ICD-10 code."""

    key: str
    icd10: str
    label_fr: str


COMORBIDITIES: dict[str, tuple[Condition, float]] = {
    c.key: (c, p)
    for c, p in (
        (Condition("diabetes", "E11.9", "diabète de type 2"), 0.14),
        (Condition("hypertension", "I10", "hypertension artérielle"), 0.35),
        (Condition("ischemic_heart", "I25.9", "cardiopathie ischémique"), 0.08),
        (Condition("copd", "J44.9", "BPCO"), 0.07),
        (Condition("ckd", "N18.3", "insuffisance rénale chronique"), 0.05),
        (Condition("obesity", "E66.9", "obésité"), 0.15),
        (Condition("atrial_fibrillation", "I48.9", "fibrillation atriale"), 0.06),
    )
}
"""Comorbidities with their prevalence at 65 years (prevalence grows with age, see ``cohort.py``)."""

PREGNANCY = Condition("pregnancy", "Z33", "grossesse")
"""The pregnancy of a pregnancy-associated breast cancer (ICD-10 Z33 "Pregnant state"), recorded at an obstetric
consultation (``timeline.py``)."""

ADVERSE_EVENTS: dict[str, Condition] = {
    c.key: c
    for c in (
        Condition("neutropenia", "D70", "neutropénie fébrile"),
        Condition("anaemia", "D64.9", "anémie"),
        Condition("nausea", "R11", "nausées et vomissements"),
        Condition("neuropathy", "G62.0", "neuropathie périphérique médicamenteuse"),
        Condition("colitis", "K52.1", "colite toxique"),
        Condition("pneumonitis", "J70.4", "pneumopathie médicamenteuse"),
        Condition("fever", "R50.9", "fièvre"),
    )
}

METASTASES: dict[str, Condition] = {
    c.key: c
    for c in (
        Condition("lung", "C78.0", "métastases pulmonaires"),
        Condition("pleura", "C78.2", "métastases pleurales"),
        Condition("liver", "C78.7", "métastases hépatiques"),
        Condition("brain", "C79.3", "métastases cérébrales"),
        Condition("bone", "C79.5", "métastases osseuses"),
        Condition("nodes", "C77.9", "adénopathies métastatiques"),
    )
}

METASTASIS_SITES_BY_CANCER: dict[str, tuple[str, ...]] = {
    "breast": ("bone", "liver", "lung", "brain"),
    "prostate": ("bone", "nodes"),
    "lung": ("brain", "bone", "liver", "pleura"),
    "colorectal": ("liver", "lung"),
    "bladder": ("bone", "lung", "nodes"),
    "kidney": ("lung", "bone"),
    "melanoma": ("lung", "brain", "liver"),
    "pancreas": ("liver",),
    "head_neck": ("lung", "nodes"),
    "lymphoma": ("nodes",),
    "ovary": ("liver", "pleura"),
    "uterus": ("lung", "nodes"),
}


def source_codes() -> dict[str, set[str]]:
    """Every standard source code the generator can emit, by vocabulary id (OMOP spelling).

    Examples
    --------
    >>> "C50.9" in source_codes()["ICD10"]
    True
    """
    icd10 = {code for c in CANCERS for code, _ in c.icd10}
    icd10 |= {c.icd10 for c, _ in COMORBIDITIES.values()}
    icd10 |= {c.icd10 for c in ADVERSE_EVENTS.values()} | {c.icd10 for c in METASTASES.values()}
    icd10.add(PREGNANCY.icd10)
    return {
        "ICD10": icd10,
        "ICDO3": {h for c in CANCERS for h, _, _ in c.histologies},
        "ATC": {d.atc for d in DRUGS.values()},
        "LOINC": {lab.loinc for lab in LABS.values()} | {b.loinc for b in BIOMARKERS.values()},
        "SNOMED": {p.snomed for p in PROCEDURES.values()},
    }


def icdo3_topography(icd10: str) -> str:
    """ICD-O-3 topography of a primary cancer's ICD-10 code.

    Four characters always (``C61`` → ``C61.9``); lymphomas are nodal (``C77.9``); melanomas sit in
    the skin chapter (``C43.5`` → ``C44.5``).

    Examples
    --------
    >>> [icdo3_topography(c) for c in ("C50.9", "C61", "C83.3", "C43.7")]
    ['C50.9', 'C61.9', 'C77.9', 'C44.7']
    """
    if icd10.startswith(("C81", "C82", "C83", "C84", "C85")):
        return "C77.9"
    if icd10.startswith("C43"):
        return "C44" + icd10[3:]
    return icd10 if "." in icd10 else icd10 + ".9"
