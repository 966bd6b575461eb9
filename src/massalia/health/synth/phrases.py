"""French wording for the clinical documents: synonyms, abbreviations, formulas, date styles, typos."""

from __future__ import annotations

import datetime as dt
import random

MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)

CANCER_NAMES: dict[str, tuple[str, ...]] = {
    "breast": ("cancer du sein", "carcinome mammaire", "néoplasie mammaire", "K du sein", "tumeur maligne du sein"),
    "prostate": ("cancer de la prostate", "adénocarcinome prostatique", "néoplasie prostatique", "K prostate"),
    "lung": ("cancer du poumon", "carcinome bronchique", "cancer bronchopulmonaire", "CBP", "néoplasie pulmonaire"),
    "colorectal": ("cancer colorectal", "adénocarcinome colique", "néoplasie colique", "CCR", "cancer du côlon"),
    "bladder": ("cancer de la vessie", "tumeur urothéliale", "carcinome vésical", "TVIM"),
    "kidney": ("cancer du rein", "carcinome rénal", "tumeur maligne du rein", "néoplasie rénale"),
    "melanoma": ("mélanome", "mélanome malin", "mélanome cutané"),
    "pancreas": ("cancer du pancréas", "adénocarcinome pancréatique", "néoplasie pancréatique"),
    "head_neck": ("cancer ORL", "carcinome des VADS", "cancer des voies aérodigestives supérieures"),
    "lymphoma": ("lymphome", "lymphome non hodgkinien", "LNH"),
    "ovary": ("cancer de l'ovaire", "carcinome ovarien", "néoplasie ovarienne"),
    "uterus": ("cancer de l'endomètre", "adénocarcinome endométrial", "cancer du corps utérin"),
}

RELATIVES = ("mère", "père", "sœur", "frère")
RELATIVE_VERBS = ("traitée pour", "traité pour", "traitée pour", "traité pour")
FAMILY_FORMULAS = ("{rel} {verb} un {cancer}", "{cancer} chez {det} {rel}", "{rel} décédé{e} d'un {cancer}")

COMORBIDITY_NAMES: dict[str, tuple[str, ...]] = {
    "diabetes": ("diabète de type 2", "DT2", "diabète non insulinodépendant"),
    "hypertension": ("HTA", "hypertension artérielle", "HTA traitée"),
    "ischemic_heart": ("cardiopathie ischémique", "coronaropathie", "antécédent d'infarctus"),
    "copd": ("BPCO", "bronchopneumopathie chronique obstructive"),
    "ckd": ("insuffisance rénale chronique", "IRC modérée"),
    "obesity": ("obésité", "obésité (IMC > 30)"),
    "atrial_fibrillation": ("fibrillation atriale", "ACFA", "FA paroxystique"),
}

METASTASIS_NAMES: dict[str, tuple[str, ...]] = {
    "lung": ("métastases pulmonaires", "nodules pulmonaires secondaires"),
    "pleura": ("métastases pleurales", "épanchement pleural métastatique"),
    "liver": ("métastases hépatiques", "lésions hépatiques secondaires"),
    "brain": ("métastases cérébrales", "lésions cérébrales secondaires"),
    "bone": ("métastases osseuses", "lésions osseuses secondaires"),
    "nodes": ("adénopathies métastatiques", "adénopathies suspectes"),
}
NEGATED_METASTASIS = (
    "pas de métastase",
    "absence de lésion secondaire",
    "pas de lésion à distance",
    "absence de localisation secondaire",
    "bilan d'extension négatif",
)
NEGATED_NODES = (
    "absence d'envahissement ganglionnaire",
    "pas d'adénopathie",
    "ganglions indemnes",
    "curage ganglionnaire négatif",
)
HYPOTHESIS_FORMULAS = ("suspicion de {x}", "{x} à confirmer", "possible {x}", "aspect évocateur de {x}", "{x} probable")

BIOMARKER_NAMES: dict[str, tuple[str, ...]] = {
    "er": ("RE", "récepteurs aux œstrogènes", "RO"),
    "pr": ("RP", "récepteurs à la progestérone"),
    "her2": ("HER2", "HER-2", "c-erbB2"),
    "ki67": ("Ki-67", "Ki67", "index de prolifération Ki-67"),
    "egfr": ("mutation EGFR", "EGFR"),
    "alk": ("réarrangement ALK", "ALK"),
    "kras": ("mutation KRAS", "KRAS"),
    "braf": ("mutation BRAF V600E", "BRAF"),
    "pdl1": ("PD-L1", "PDL1 (TPS)"),
    "msi": ("statut MSI", "MSI"),
    "brca": ("mutation BRCA", "BRCA1/2"),
}
POSITIVE = ("positif", "positifs", "+", "présente", "surexprimé")
NEGATIVE = ("négatif", "négatifs", "-", "absente", "non surexprimé")

DRUG_BRANDS: dict[str, str] = {
    "trastuzumab": "Herceptin",
    "pembrolizumab": "Keytruda",
    "nivolumab": "Opdivo",
    "osimertinib": "Tagrisso",
    "bevacizumab": "Avastin",
    "tamoxifen": "Nolvadex",
    "anastrozole": "Arimidex",
    "capecitabine": "Xeloda",
    "bicalutamide": "Casodex",
    "olaparib": "Lynparza",
    "rituximab": "Mabthera",
    "sunitinib": "Sutent",
}

ECOG_FORMULAS = ("ECOG {e}", "PS {e}", "OMS {e}", "performance status {e}")
ECOG_FIT_FORMULAS = ("état général conservé (PS {e})", "bon état général, ECOG {e}")
GREETINGS = ("Cher confrère,", "Chère consœur, cher confrère,", "Mon cher confrère,", "Cher ami,")
CLOSINGS = (
    "Bien confraternellement.",
    "Je vous tiens informé de la suite de la prise en charge.",
    "Confraternellement.",
    "Restant à votre disposition.",
)
ABBREVIATIONS = {
    "patient": "pt",
    "patiente": "pte",
    "traitement": "ttt",
    "diagnostic": "dg",
    "chimiothérapie": "chimio",
    "radiothérapie": "radiothérapie",
    "examen": "exam",
}


def french_date(day: int, rng: random.Random) -> str:
    """A date written one of the ways French clinicians write it.

    Examples
    --------
    >>> french_date(18689, random.Random(0)) in {"3 mars 2021", "03/03/21", "03/03/2021", "3/3/2021",
    ...     "03.03.2021", "3 mars 21"}
    True
    """
    d = dt.date(1970, 1, 1) + dt.timedelta(days=int(day))
    style = int(rng.randrange(0, 6))
    if style == 0:
        return f"{d.day} {MONTHS[d.month - 1]} {d.year}"
    if style == 1:
        return f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}"
    if style == 2:
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    if style == 3:
        return f"{d.day}/{d.month}/{d.year}"
    if style == 4:
        return f"{d.day:02d}.{d.month:02d}.{d.year}"
    return f"{d.day} {MONTHS[d.month - 1]} {d.year % 100:02d}"


def typo(word: str, rng: random.Random, rate: float = 0.04) -> str:
    """Sometimes swap two adjacent letters or drop an accent (as hurried typing does)."""
    if len(word) < 5 or rng.random() >= rate:
        return word
    if rng.random() < 0.5:
        i = int(rng.randrange(1, len(word) - 2))
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word.translate(str.maketrans("éèêàç", "eeeac"))


def ecog_text(ecog: int, rng: random.Random) -> str:
    """How a note states the performance status (``état général conservé`` only when ECOG ≤ 1)."""
    options = ECOG_FORMULAS + (ECOG_FIT_FORMULAS if ecog <= 1 else ())
    return pick(options, rng).format(e=ecog)


def pick(options: tuple[str, ...] | list[str], rng: random.Random) -> str:
    """One of ``options`` at random."""
    return options[int(rng.randrange(0, len(options)))]
