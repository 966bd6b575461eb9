"""Massalia's French oncology patterns: what the rule pipes look for and the code each finding means.

Written from French clinical usage (pathology, RCP, imaging, letters), not from the generator's phrase lists,
so that the evaluation against the generator's ground truth measures something. Patterns are regular
expressions over *folded* text (lower case, accents removed, one character for one, see :func:`fold`), so
offsets found in the folded text are offsets in the note.

Each term names the code a finding means in a source vocabulary (``ICD10``, ``ICDO3``, ``LOINC``, ``SNOMED``,
``ATC``, or the molecular platform's ``LOCAL`` codes): the standard concept is looked up in the warehouse's
vocabulary exactly as the ETL maps the same codes (:mod:`massalia.health.nlp.concepts`), never invented here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One pattern: its label, the value it stands for, and the source code it maps through.

    ``value`` is what the evaluation compares with the ground truth (an ICD-10 category, an ICD-O-3
    morphology, an ATC code, a biomarker key...); ``vocabulary`` + ``code`` is the source code.
    """

    label: str
    value: str
    pattern: str
    vocabulary: str = ""
    code: str = ""


def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFD", char)
    base = decomposed[0] if decomposed else char
    return base.lower() if len(base.lower()) == 1 else base


_FOLD_TABLE = {code: _fold_char(chr(code)) for code in range(0x80, 0x250)}
_FOLD_TABLE |= {ord("œ"): "o", ord("Œ"): "o", ord("æ"): "a", ord("Æ"): "a", ord("’"): "'", ord("\u00a0"): " "}


def fold(text: str) -> str:
    """Lower-case ``text`` and remove accents, one character for one (offsets are kept).

    Examples
    --------
    >>> fold("Récepteurs aux Œstrogènes")
    'recepteurs aux ostrogenes'
    >>> len(fold("élévation")) == len("élévation")
    True
    """
    return text.translate(_FOLD_TABLE).lower()


# -- cancers (ICD-10 category as value; the category's usual code as source code) -------------------
_NEO = r"(?:cancers?|carcinomes?|adenocarcinomes?|neoplasies?|neoplasmes?|tumeurs? malignes?|k|neo)"
CANCERS: tuple[tuple[str, str, str], ...] = (
    # (ICD-10 category, source code, site words after a neoplasm word or alone)
    ("C50", "C50.9", r"(?:du |des )?seins?|mammaires?"),
    ("C61", "C61", r"(?:de la |du )?prostat(?:e|ique)"),
    ("C34", "C34.9", r"(?:du |des )?poumons?|bronch(?:ique|o-?pulmonaire)s?|pulmonaires?"),
    ("C18", "C18.7", r"colo-?rectal|coli(?:que|c)|(?:du |de )?colon|(?:du )?rectum"),
    ("C67", "C67.9", r"(?:de la )?vessie|vesica(?:l|ux)|urothelial(?:e)?"),
    ("C64", "C64", r"(?:du |des )?reins?|renale?s?"),
    ("C25", "C25.9", r"(?:du )?pancreas|pancreatiques?"),
    ("C32", "C32.9", r"orl|des vads|des voies aero-?digestives superieures"),
    ("C56", "C56", r"(?:de l'|des )?ovaires?|ovariens?|ovariennes?"),
    ("C54", "C54.1", r"(?:de l')?endometre|endometri(?:al|ale)|du corps uterin"),
)
_STANDALONE_CANCERS: tuple[tuple[str, str, str], ...] = (
    ("C43", "C43.5", r"melanomes?(?: malins?| cutanes?)?"),
    ("C83", "C83.3", r"lymphomes?(?: non hodgkiniens?| b diffus)?|lnh"),
    ("C34", "C34.9", r"cbp|cbnpc"),
    ("C18", "C18.7", r"ccr"),
    ("C67", "C67.9", r"tvim|tumeurs? urothelial(?:e|es)?"),
    ("C61", "C61", r"k prostate"),
)

# -- histology (ICD-O-3 morphology) ---------------------------------------------------------------
HISTOLOGIES: tuple[tuple[str, str], ...] = (
    ("8500/3", r"carcinome canalaire infiltrant|carcinome canalaire|adenocarcinome canalaire|cci"),
    ("8520/3", r"carcinome lobulaire infiltrant|carcinome lobulaire|cli"),
    ("8480/3", r"adenocarcinome mucineux|carcinome mucineux|carcinome colloide"),
    ("8070/3", r"carcinome epidermoide|carcinome malpighien"),
    ("8041/3", r"carcinome (?:neuroendocrine )?a petites cellules|cpc"),
    ("8046/3", r"carcinome non a petites cellules"),
    ("8120/3", r"carcinome urothelial"),
    ("8312/3", r"carcinome (?:renal )?a cellules claires"),
    ("8260/3", r"carcinome papillaire"),
    ("8720/3", r"melanome malin"),
    ("8721/3", r"melanome nodulaire"),
    ("9680/3", r"lymphome b diffus a grandes cellules|lbdgc"),
    ("9690/3", r"lymphome folliculaire"),
    ("8461/3", r"carcinome sereux de haut grade"),
    ("8441/3", r"carcinome sereux"),
    ("8380/3", r"(?:adeno)?carcinome endometrioide"),
    # The generic word last: within a label the first alternative that matches wins.
    ("8140/3", r"adenocarcinome(?: acinaire| lieberkuhnien| invasif)?"),
)

# -- metastases (ICD-10 of the secondary site) -------------------------------------------------------
_SECONDARY = r"(?:metastases?|metastatiques?|secondaires?|localisations? secondaires?)"
METASTASES: tuple[tuple[str, str], ...] = (
    ("C78.0", r"(?:metastases?|nodules?|lesions?|localisations?) pulmonaires?(?: secondaires?)?|"
     r"nodules? pulmonaires? secondaires?"),
    ("C78.2", r"metastases? pleurales?|epanchement pleural metastatique|carcinose pleurale"),
    ("C78.7", r"(?:metastases?|lesions?|localisations?) hepatiques?(?: secondaires?)?"),
    ("C79.3", r"(?:metastases?|lesions?|localisations?) cerebrales?(?: secondaires?)?"),
    ("C79.5", r"(?:metastases?|lesions?|localisations?) osseuses?(?: secondaires?)?"),
    ("C77.9", r"adenopathies? (?:metastatiques?|suspectes?)|envahissement ganglionnaire|adenopathies?|"
     r"ganglions? (?:envahis|indemnes|metastatiques)|curage ganglionnaire"),
    ("C79.9", r"metastases?|lesions? (?:a distance|secondaires?)|localisations? secondaires?|"
     r"bilan d'extension negatif"),
)  # fmt: skip

# -- biomarkers (key, source vocabulary and code as the labs write them) -------------------------------
BIOMARKERS: tuple[tuple[str, str, str, str], ...] = (
    ("er", "LOINC", "85337-4", r"re|ro|recepteurs? (?:aux |a l')?(?:o?estrogenes|oestrogenes|ostrogenes)"),
    ("pr", "LOINC", "85339-0", r"rp|recepteurs? (?:a la )?progesterone"),
    ("her2", "LOINC", "85319-2", r"her-?2(?:/neu)?|c-?erbb-?2|erbb2"),
    ("ki67", "LOCAL", "MOL-KI67", r"(?:index de proliferation )?ki-?67|mib-?1"),
    ("egfr", "LOCAL", "MOL-EGFR", r"(?:mutation (?:de l')?)?egfr"),
    ("alk", "LOCAL", "MOL-ALK", r"(?:rearrangement |translocation )?alk"),
    ("kras", "LOCAL", "MOL-KRAS", r"(?:mutation )?kras"),
    ("braf", "LOCAL", "MOL-BRAF", r"(?:mutation )?braf(?: v600e?)?"),
    ("pdl1", "LOCAL", "MOL-PDL1", r"pd-?l1(?: \(tps\))?"),
    ("msi", "LOINC", "81695-9", r"(?:statut )?msi|instabilite microsatellitaire|dmmr|pmmr"),
    ("brca", "LOCAL", "MOL-BRCA", r"(?:mutation )?brca ?(?:1/2|1|2)?"),
)
POSITIVE = r"positifs?|positives?|\+|presente?s?|surexprimee?s?|mute(?:e|s)?|amplifiee?s?|msi-h"
NEGATIVE = r"negatifs?|negatives?|-|absente?s?|non surexprimee?s?|non mutee?s?|sauvage|wild[- ]type|0|mss|pmmr"
NUMERIC_BIOMARKERS = ("ki67", "pdl1")

# -- drugs (ATC; French INN and brands) --------------------------------------------------------------
DRUGS: tuple[tuple[str, str], ...] = (
    ("L01BC02", r"fluorouracile|5-?fu"), ("L01BC06", r"capecitabine|xeloda"), ("L01XA03", r"oxaliplatine"),
    ("L01CE02", r"irinotecan"), ("L01XA01", r"cisplatine"), ("L01XA02", r"carboplatine"),
    ("L01CD01", r"paclitaxel|taxol"), ("L01CD02", r"docetaxel|taxotere"), ("L01DB03", r"epirubicine"),
    ("L01DB01", r"doxorubicine|adriamycine"), ("L01AA01", r"cyclophosphamide|endoxan"),
    ("L01BA04", r"pemetrexed|alimta"), ("L01BC05", r"gemcitabine|gemzar"), ("L01CB01", r"etoposide|vepeside"),
    ("L01CA02", r"vincristine|oncovin"), ("L01FD01", r"trastuzumab|herceptin"),
    ("L01FD02", r"pertuzumab|perjeta"), ("L01FG01", r"bevacizumab|avastin"), ("L01FE01", r"cetuximab|erbitux"),
    ("L01FA01", r"rituximab|mabthera"), ("L01FF02", r"pembrolizumab|keytruda"), ("L01FF01", r"nivolumab|opdivo"),
    ("L01EB04", r"osimertinib|tagrisso"), ("L01ED03", r"alectinib|alecensa"), ("L01EC02", r"dabrafenib|tafinlar"),
    ("L01EE01", r"trametinib|mekinist"), ("L01XK01", r"olaparib|lynparza"), ("L01EX01", r"sunitinib|sutent"),
    ("L02BA01", r"tamoxifene|nolvadex"), ("L02BG03", r"anastrozole|arimidex"),
    ("L02AE02", r"leuproreline|eligard|enantone"), ("L02BB03", r"bicalutamide|casodex"),
    ("H02AB07", r"prednisone|cortancyl"), ("H02AB02", r"dexamethasone"),
    ("V03AF03", r"acide folinique|leucovorine"),
)  # fmt: skip

# -- comorbidities (ICD-10) --------------------------------------------------------------------------
COMORBIDITIES: tuple[tuple[str, str], ...] = (
    ("E11.9", r"diabete(?: de type 2| non insulino-?dependant)?|dt2|dnid"),
    ("I10", r"hta(?: traitee)?|hypertension arterielle"),
    ("I25.9", r"cardiopathie ischemique|coronaropathie|(?:antecedent d')?infarctus(?: du myocarde)?|idm"),
    ("J44.9", r"bpco|bronchopneumopathie chronique obstructive"),
    ("N18.3", r"insuffisance renale chronique|irc(?: moderee)?"),
    ("E66.9", r"obesite(?: \(imc > 30\))?"),
    ("I48.9", r"fibrillation (?:atriale|auriculaire)|acfa|fa paroxystique"),
)

# -- procedures (SNOMED CT) --------------------------------------------------------------------------
PROCEDURES: tuple[tuple[str, str], ...] = (
    ("86273004", r"biopsies?"), ("418891003", r"scanner(?: thoraco-abdominal)?|tdm"), ("113091000", r"irm"),
    ("71651007", r"mammographie"), ("73761001", r"coloscopie"), ("173160006", r"bronchoscopie(?: souple)?"),
    ("69031006", r"mastectomie"), ("392021009", r"tumorectomie(?: mammaire)?"),
    ("26294005", r"prostatectomie(?: radicale)?"), ("287430001", r"(?:exerese pulmonaire \()?lobectomie\)?"),
    ("84604002", r"colectomie(?: segmentaire)?|hemicolectomie"),
    ("387713003", r"cystectomie|nephrectomie|exerese cutanee elargie|duodenopancreatectomie cephalique|"
     r"curage ganglionnaire cervical|hysterectomie"),
    ("33195004", r"radiotherapie(?: externe)?(?: \(\d+ fractions\))?"),
    ("367336001", r"chimiotherapie"), ("5447007", r"transfusion(?: sanguine)?"),
)  # fmt: skip

# -- adverse events (ICD-10) -------------------------------------------------------------------------
ADVERSE_EVENTS: tuple[tuple[str, str], ...] = (
    ("D70", r"neutropenie febrile|aplasie febrile"), ("D64.9", r"anemie"),
    ("R11", r"nausees(?: et vomissements)?|vomissements"),
    ("G62.0", r"neuropathie(?: peripherique)?(?: medicamenteuse)?"),
    ("K52.1", r"colite(?: toxique)?"), ("J70.4", r"pneumopathie(?: medicamenteuse| interstitielle)?"),
    ("R50.9", r"fievre"), ("complication", r"complications?"),
)  # fmt: skip

PROGRESSION = (
    ("progression", r"progression(?: tumorale| de la maladie)?|evolution tumorale|maladie progressive"),
    ("relapse", r"rechute|recidive(?: locale| a distance)?|recurrence"),
)

HYPOTHESIS_BEFORE = re.compile(
    r"(?:suspicion d[e']|evocat(?:eur|rice) d[e']|hypothese d[e']|doute sur|possibles?|probables?|"
    r"eventuel(?:le)?s?|recherche d[e']|suspect(?:e|es|s)? d[e']|a eliminer|eliminer)\s*(?:une? |la |le |l'|des )?$"
)
"""Cues before an entity, in its clause, that make it hypothetical (EDS-NLP's list misses several)."""
HYPOTHESIS_AFTER = re.compile(
    r"^\s*(?:[a-z]+ )?(?:a confirmer|probables?|possibles?|suspecte?s?|a eliminer|non exclue?s?)\b"
)
"""Cues right after an entity (one word may sit between: "cancer du rein probable", "K du sein à confirmer")."""
PLANNED = re.compile(r"\b(?:je programme|a prevoir|a programmer|sont demandee?s|est demandee?|a realiser|prevue?s?)\b")
"""A clause planning an act: its procedures are not done yet (hypothetical)."""
NEGATED_WITHIN = re.compile(r"\b(?:negatifs?|negatives?|indemnes?|sains?|normaux|normal(?:e|es)?)$")
"""A metastasis or node mention that carries its own negation at its end ("ganglions indemnes")."""
TEST_NOT_DONE = re.compile(
    r"(?:pas de|absence de|sans)\s+(?:recherche|analyse|test|dosage)\s+(?:d[e']\s*)?(?:la |l')?$"
)
"""Before a biomarker: the test was not done (the only negation of a biomarker mention)."""
HISTORY_HEADING = re.compile(r"^\s*[-*•]?\s*(?:antecedents?|atcds?|atcd)(?: medicaux| personnels| chirurgicaux)?\s*:")
FAMILY_HEADING = re.compile(
    r"^\s*[-*•]?\s*(?:(?:antecedents?|atcds?) familiaux|dans la famille|histoire familiale)\s*:"
)
ECOG = r"(?:ecog|ps|oms|performance status|indice de karnofsky)\s*(?::|=|a|de)?\s*([0-4])\b"
STAGE = r"stade\s+(iv|iii|ii|i|[1-4])(?:[abc])?\b"
TNM = r"\b([cpy]{0,2})(t(?:is|x|[0-4][a-d]?))\s*(?:[cpy]?(n(?:x|[0-3][a-c]?)))?\s*(?:[cpy]?(m(?:x|[01][a-c]?)))?\b"


WORD_START = r"(?<![\w-])"
"""The look-behind every term opens with: no word character or hyphen right before."""


def _words(pattern: str) -> str:
    """A pattern bounded by non-word characters (``re`` word boundaries miss ``+``, ``-`` and ``)``)."""
    return rf"{WORD_START}(?:{pattern})(?![\w])"


def terms() -> list[Term]:
    """Every term of the lexicon, longest patterns first within a label (so the specific wins over the generic).

    Examples
    --------
    >>> any(t.label == "cancer" and t.value == "C50" for t in terms())
    True
    """
    out: list[Term] = []
    for category, code, site in CANCERS:
        out.append(Term("cancer", category, _words(rf"{_NEO}(?: (?:de la |du |des |de l'))?\s*(?:{site})"),
                        "ICD10", code))  # fmt: skip
    out += [Term("cancer", cat, _words(p), "ICD10", code) for cat, code, p in _STANDALONE_CANCERS]
    out += [Term("histology", m, _words(p), "ICDO3", m) for m, p in HISTOLOGIES]
    out += [Term("metastasis", icd, _words(p), "ICD10", icd) for icd, p in METASTASES]
    out += [Term("drug", atc, _words(p), "ATC", atc) for atc, p in DRUGS]
    out += [Term("comorbidity", icd, _words(p), "ICD10", icd) for icd, p in COMORBIDITIES]
    out += [Term("procedure", code, _words(p), "SNOMED", code) for code, p in PROCEDURES]
    out += [
        Term("adverse_event", icd, _words(p), "ICD10" if icd[0].isupper() else "", icd) for icd, p in ADVERSE_EVENTS
    ]
    out += [Term("progression", key, _words(p)) for key, p in PROGRESSION]
    return out


_SEP = r"\s*(?::|=|\|)?\s*"


def biomarker_pattern(pattern: str, key: str) -> str:
    """A biomarker name followed by its result (a status, or a percentage for numeric markers)."""
    if key in NUMERIC_BIOMARKERS:
        return rf"(?<![\w-])(?:{pattern}){_SEP}(?:a |de |<\s*|>\s*)?(\d{{1,3}})\s*%"
    return rf"(?<![\w-])(?:{pattern}){_SEP}(?:\(?(?:[0-3]\+?)\)?\s*)?({POSITIVE}|{NEGATIVE})(?![\w])"


STATUS_POSITIVE = re.compile(rf"^(?:{POSITIVE})$")
