"""Rule-based de-identification of French clinical text: find direct identifiers, replace them.

Offline and deterministic (regular expressions with validation, no model). What it finds:

==========  =================================================================================  ==============
type        how                                                                                replaced by
==========  =================================================================================  ==============
``email``   ``local@domain.tld``                                                               ``[MAIL]``
``nir``     13 digits + key, spaced or not, Corsica ``2A``/``2B``; the key must check (97 -     ``[NIR]``
            n mod 97), or a label (``NIR``, ``N° SS``, ``INS``, ``sécurité sociale``) precede
``phone``   French numbers: ``0X XX XX XX XX`` with spaces, dots, dashes or none, ``+33 X ...``  ``[TEL]``
``ipp``     after ``IPP``/``NIP``/``N° patient``/``N° dossier``; site formats without a label    ``[IPP]``
            (``CS0000012``, 8 hexadecimal characters); any other run of 8+ digits
``nda``     after ``NDA``/``N° séjour``/``Venue``; ``SEJ-0001200``                              ``[NDA]``
``address`` number (``bis``/``ter``) + street type (rue, avenue, bd, chemin...) + name          ``[ADRESSE]``
``city``    5-digit postcode + town (``13008 Marseille``, ``13090 Aix en Provence``)            ``[VILLE]``
``date``    ``3 mars 2021``, ``03/03/21``, ``03/03/2021``, ``3/3/2021``, ``03.03.2021``,         shifted, same
            ``3 mars 21`` (day and month validated)                                            format, or
                                                                                               ``[DATE]``
``name``    by context: titles (M., Mme, Madame, Dr, Pr, Professeur...), labels (``Patient :``,   ``[NOM]``
            ``Nom :``, ``Prénom :``, ``Copie à :``, ``Rédigé par``...), relatives (``sa fille
            Claire``), a lowercase patient banner, the signature line, ``SURNAME Firstname``
            pairs; then every other occurrence in the text (any case) of a name so
            found, and of the ``known_names`` given (a person's names when the caller has them)
==========  =================================================================================  ==============

Dates are moved by ``shift_days`` (the person's project shift, the one the structured data got), so a
note's dates agree with the person's shifted records; without a shift they are replaced. Overlapping
findings are merged (the longer wins). The text is bounded (:data:`MAX_TEXT_CHARS`) and never logged.

Examples
--------
>>> out = deidentify_note("Patiente : Mme Rose BLANC, née le 03/04/1950. Tél. 06 12 34 56 78.", shift_days=10)
>>> out.text
'Patiente : Mme [NOM] [NOM], née le 13/04/1950. Tél. [TEL].'
>>> [span.type for span in out.spans]
['name', 'name', 'date', 'phone']
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

MAX_TEXT_CHARS = 200_000
"""Longest note accepted (characters): a clinical document is a few thousand."""

MAX_KNOWN_NAMES = 50
"""Most known names of a person accepted by :func:`deidentify_note`."""

REPLACEMENTS: dict[str, str] = {
    "name": "[NOM]",
    "address": "[ADRESSE]",
    "city": "[VILLE]",
    "phone": "[TEL]",
    "email": "[MAIL]",
    "nir": "[NIR]",
    "ipp": "[IPP]",
    "nda": "[NDA]",
    "date": "[DATE]",
}
"""What replaces each type of identifier (dates: when no shift is given)."""

IDENTIFIER_TYPES: tuple[str, ...] = tuple(REPLACEMENTS)

# Longer, more specific findings win an overlap; among equal lengths, the earlier type in this order.
_PRIORITY = {kind: rank for rank, kind in enumerate(("email", "nir", "phone", "ipp", "nda", "address", "city",
                                                     "date", "name"))}  # fmt: skip

_UP = "A-ZÀ-ÖØ-Þ"
_LOW = "a-zß-öø-ÿœ"
_CAP_WORD = rf"[{_UP}][{_LOW}]+(?:-[{_UP}][{_LOW}]+)*"
_UPPER_WORD = rf"[{_UP}]{{2,}}(?:-[{_UP}]{{2,}})*"
_INITIAL = rf"[{_UP}]\.(?:-[{_UP}]\.)?"
_PARTICLE = r"(?:de la|de|du|des|le|la|da|di|van|von|De la|De|Du|Des|Le|La|Da|Di|Van|DE LA|DE|DU|DES|LE|LA|DA)"
_NAME_TOKEN = rf"(?:{_PARTICLE} )?(?:{_CAP_WORD}|{_UPPER_WORD})"
_NAME = rf"(?:{_INITIAL} )?{_NAME_TOKEN}(?: {_NAME_TOKEN}){{0,2}}"
_TITLE = (
    r"(?:M\.|Mr\.?|MM\.|Mme|MME|Mmes|Mlle|Madame|MADAME|Monsieur|MONSIEUR|Dr\.?|DR\.?|Docteur|DOCTEUR|Pr\.?|PR\.?"
    r"|Professeur|PROFESSEUR|Me|Maître|M(?= (?:(?:de|du|de la|le|la|da) )?[A-ZÀ-Þ]))"
)
_LABEL = (
    r"(?:Patient|Patiente|PATIENT|PATIENTE|Nom du patient|Nom de naissance|Nom d'usage|Nom|NOM|Prénom|PRÉNOM|PRENOM"
    r"|Prénoms|Concerne|Objet|Réf\.|Copie à|Copie|CC|Médecin référent|Médecin traitant|Demandeur|Rédigé par"
    r"|Signé par|Validé par|Dicté par|Interne|Correspondant)"
)
# Words that look like names by their case but are headings or medical abbreviations.
_NOT_NAMES_TEXT = """
    RCP TDM IRM TEP TAP CRH CR HTA BPCO OMS PS ECOG HER2 EGFR ALK KRAS BRAF MSI BRCA PDL1 ER PR RE RP SCANNER
    COMPTE RENDU ANATOMOPATHOLOGIQUE ANAPATH HOSPITALISATION RÉUNION REUNION CONCERTATION PLURIDISCIPLINAIRE
    THORACO ABDOMINO PELVIEN IMAGERIE LETTRE SORTIE SERVICE CHU CH CLCC NDA IPP NIR INS SS DDN TNM AJCC UICC
    Patient Patiente Madame Monsieur Docteur Professeur Service Secrétariat Tél Tel Téléphone Portable Adresse
    Domicile Mail Nom Prénom Objet Concerne Copie Oncologue Radiothérapeute Chirurgien Anatomopathologiste
    Radiologue Pneumologue Praticien Interne Médecin Motif Diagnostic Conclusion Examen Résultat Indication
    Proposition Stade Antécédents Biomarqueurs Hospitalisation Prélèvement Cher Chère Mon Bien Je Nous Le La Les
    Un Une Il Elle Dans Sur Pour Avec Sans Suite Bilan Sortie Retour Consultation Immunohistochimie Dernière
    Institut Centre Nord Sud Est Ouest CEDEX Cedex M Mr MM Mme MME Mmes Mlle MADAME MONSIEUR Dr DR Pr DOCTEUR
    PROFESSEUR Me Maître"""
_NOT_NAMES = frozenset(_NOT_NAMES_TEXT.split())
_STREET = (
    r"(?:rue|avenue|av\.|boulevard|bd|bld|chemin|impasse|allée|allee|place|traverse|cours|quai|route|square"
    r"|montée|lotissement|résidence|cité|passage|voie|Rue|Avenue|Boulevard|Bd|Chemin|Impasse|Allée|Place"
    r"|Traverse|Cours|Quai|Route|Square|RUE|AVENUE|BOULEVARD|BD|CHEMIN|IMPASSE|ALLÉE|PLACE|TRAVERSE|COURS)"
)
_MONTHS = {
    "janvier": 1, "janv": 1, "février": 2, "fevrier": 2, "févr": 2, "fevr": 2, "fév": 2, "mars": 3, "avril": 4,
    "avr": 4, "mai": 5, "juin": 6, "juillet": 7, "juil": 7, "août": 8, "aout": 8, "septembre": 9, "sept": 9,
    "octobre": 10, "oct": 10, "novembre": 11, "nov": 11, "décembre": 12, "decembre": 12, "déc": 12, "dec": 12,
}  # fmt: skip
_MONTH_NAMES = ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
                "novembre", "décembre")  # fmt: skip

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63})+")
_NIR = re.compile(
    r"(?<![\w])([12])[ .]?(\d{2})[ .]?(\d{2})[ .]?(\d{2}|2[AB])[ .]?(\d{3})[ .]?(\d{3})[ .]?(\d{2})(?!\w)"
)
_NIR_LABEL = re.compile(r"(?:NIR|N°\s?SS|N°\s?sécu|INS|[Ss]écurité sociale|NSS)\s*:?\s*$")
_PHONE = re.compile(r"(?<![\w+])(?:\+33[ .]?\(?0?\)?[ .]?[1-9]|0[1-9])(?:[ .-]?\d{2}){4}(?![\w])")
_IPP = re.compile(
    r"(?:IPP|NIP|N°\s?patient|N°\s?dossier|[Nn]uméro de dossier|ID patient)\s*:?\s*([A-Z]{0,4}-?[0-9A-F]{5,15})\b"
)
_NDA = re.compile(r"(?:NDA|N°\s?séjour|N°\s?venue|Venue|Séjour n°)\s*:?\s*([A-Z]{0,4}-?\d{5,15})\b")
_SITE_IDS = (
    ("ipp", re.compile(r"\bCS\d{7}\b")),
    ("nda", re.compile(r"\bSEJ-\d{7}\b")),
    ("ipp", re.compile(r"\b(?=[0-9A-F]*\d)(?=[0-9A-F]*[A-F])[0-9A-F]{8}\b")),
    ("ipp", re.compile(r"(?<![\w.,/-])\d{8,}(?![\w.,/-])")),
)
_ADDRESS = re.compile(
    rf"(?<![\w/.,])\d{{1,4}}(?: ?(?:bis|ter|B|T))?,? {_STREET} [^\n,;()]{{1,60}}?(?=\s*(?:[,;()\n]| - |$))"
)
_CITY = re.compile(
    rf"(?<![\w/.])(?:0[1-9]|[1-8]\d|9[0-8]|2[AB])\d{{3}} (?:{_CAP_WORD}|{_UPPER_WORD})"
    rf"(?:[ -](?:(?:en|sur|lès|les|de|la|du|le|EN|SUR|LES|DE|LA|DU|LE)[ -])?(?:{_CAP_WORD}|{_UPPER_WORD}))*"
    r"(?: CEDEX| Cedex)?(?: \d{1,2})?"
)
_DATE_NUM = re.compile(r"(?<![\w/.,])(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?![\w/]|[.,]\d)")
_DATE_TEXT = re.compile(
    r"(?<!\w)(1er|\d{1,2}) (" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.? (\d{4}|\d{2})(?!\w)",
    re.IGNORECASE,
)
_TITLED = re.compile(rf"(?<!\w){_TITLE}[ \n]({_NAME})")
_LABELLED = re.compile(rf"(?m)(?<!\w){_LABEL}(?!\w) ?:? ?(?:{_TITLE} )?({_NAME})(?=[ ,.;)]|$)")
_RELATIVE = re.compile(
    r"(?<!\w)(?:sa|son|leur|votre) (?:fille|fils|épouse|époux|mari|femme|sœur|soeur|frère|nièce|neveu|mère|père"
    r"|compagnon|compagne|conjoint|conjointe|petite-fille|petit-fils|belle-fille|gendre|tante|oncle|cousin|cousine"
    rf"|amie?|voisine?|aidant|aidante),? ({_NAME})(?=[ ,.;)\n]|$)"
)
_LOWER_LINE = re.compile(
    r"(?m)^(?:Patient|Patiente|PATIENT|PATIENTE|Nom du patient|Nom|NOM|Prénom|PRÉNOM|Personne de confiance)"
    rf" ?: ?((?:[{_LOW}'-]+)(?: [{_LOW}'-]+){{0,3}}) ?$"
)
_UPPER_FIRST = re.compile(rf"(?<![\w-])({_UPPER_WORD}(?: {_UPPER_WORD})?) ({_CAP_WORD})(?![\w-])")
_FIRST_UPPER = re.compile(rf"(?<![\w-])({_CAP_WORD}) ({_UPPER_WORD}(?: {_UPPER_WORD})?)(?![\w-])")
_WORD = re.compile(r"(?<![\w-])[^\W\d_]+(?:[-'’][^\W\d_]+)*(?![\w-])")
_TOKEN = re.compile(rf"{_PARTICLE} (?:{_CAP_WORD}|{_UPPER_WORD})|{_CAP_WORD}|{_UPPER_WORD}|{_INITIAL}")


@dataclass(frozen=True)
class Span:
    """An identifier found: ``text[start:end]`` of the original text, its type and what replaced it."""

    start: int
    end: int
    type: str
    replacement: str


@dataclass(frozen=True)
class Deidentified:
    """A de-identified text and the identifiers found in the original (offsets into the original)."""

    text: str
    spans: tuple[Span, ...]


Finder = Callable[[str], Iterable[tuple[int, int, str]]]


def _find_emails(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end(), "email"


def nir_is_valid(nir: str) -> bool:
    """Whether a 15-character NIR (spaces removed) has a correct key.

    Examples
    --------
    >>> nir_is_valid("184057512345625"), nir_is_valid("184057512345626"), nir_is_valid("2840520123456xx")
    (True, False, False)
    """
    digits = nir.replace(" ", "").replace(".", "").upper()
    if len(digits) != 15 or not digits[13:].isdigit():
        return False
    body = digits[:13].replace("2A", "19").replace("2B", "18")
    return body.isdigit() and 97 - int(body) % 97 == int(digits[13:])


def _find_nirs(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _NIR.finditer(text):
        labelled = _NIR_LABEL.search(text, max(0, m.start() - 40), m.start()) is not None
        if labelled or nir_is_valid("".join(m.groups())):
            yield m.start(), m.end(), "nir"


def _find_phones(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _PHONE.finditer(text):
        yield m.start(), m.end(), "phone"


def _find_hospital_ids(text: str) -> Iterable[tuple[int, int, str]]:
    labelled = [(m.start(1), m.end(1), kind) for kind, pattern in (("ipp", _IPP), ("nda", _NDA))
                for m in pattern.finditer(text)]  # fmt: skip
    yield from labelled
    starts = {start for start, _, _ in labelled}
    for kind, pattern in _SITE_IDS:  # a label says more than a format: keep its type
        for m in pattern.finditer(text):
            if m.start() not in starts:
                yield m.start(), m.end(), kind


def _find_addresses(text: str) -> Iterable[tuple[int, int, str]]:
    for m in _ADDRESS.finditer(text):
        yield m.start(), m.end(), "address"
    for m in _CITY.finditer(text):
        yield m.start(), m.end(), "city"


def _year(text: str) -> int:
    if len(text) == 4:
        return int(text)
    # Two-digit years: a clinical note does not speak of dates more than a few years ahead.
    value = int(text)
    return 2000 + value if value <= (dt.date.today().year % 100) + 5 else 1900 + value


def _parse_date(m: re.Match[str], textual: bool) -> dt.date | None:
    try:
        if textual:
            day = 1 if m.group(1).lower() == "1er" else int(m.group(1))
            return dt.date(_year(m.group(3)), _MONTHS[m.group(2).lower()], day)
        return dt.date(_year(m.group(4)), int(m.group(3)), int(m.group(1)))
    except ValueError:
        return None


def _find_dates(text: str) -> Iterable[tuple[int, int, str]]:
    for pattern, textual in ((_DATE_NUM, False), (_DATE_TEXT, True)):
        for m in pattern.finditer(text):
            if _parse_date(m, textual) is not None:
                yield m.start(), m.end(), "date"


def _name_tokens(text: str, start: int, end: int) -> Iterable[tuple[int, int, str]]:
    """The words of a name found between ``start`` and ``end`` (headings and abbreviations left out)."""
    for m in _TOKEN.finditer(text, start, end):
        word = m.group()
        # An initial ("J. Martin") is kept even when it could be a title ("Patient : M. Martin"): a
        # replaced title costs precision, a kept initial would be a leak.
        if not word.endswith(".") and word.split(" ")[-1] in _NOT_NAMES:
            continue
        yield m.start(), m.end(), "name"


def _signature_line(text: str) -> Iterable[tuple[int, int, str]]:
    """The first line of the last block (after the last blank line) when it is only name words."""
    cut = text.rstrip().rfind("\n\n")
    if cut < 0:
        return
    start = cut + 2
    line_end = text.find("\n", start)
    line_end = len(text) if line_end < 0 else line_end
    line = text[start:line_end]
    words = line.split()
    if 1 <= len(words) <= 5 and re.fullmatch(rf"(?:{_TITLE} )?{_NAME}", line.strip()):
        yield from _name_tokens(text, start, line_end)


def _find_names(text: str) -> Iterable[tuple[int, int, str]]:
    for pattern in (_TITLED, _LABELLED):
        for m in pattern.finditer(text):
            yield from _name_tokens(text, m.start(1), m.end(1))
    for m in _RELATIVE.finditer(text):
        yield from _name_tokens(text, m.start(1), m.end(1))
    for m in _LOWER_LINE.finditer(text):  # a banner typed in lowercase: every word of it
        for word in re.finditer(r"\S+", text[m.start(1) : m.end(1)]):
            yield m.start(1) + word.start(), m.start(1) + word.end(), "name"
    for m in _LABELLED.finditer(text):
        # "Patiente : M. Martin": the "M." may be Marie's initial, not a title; replaced either way.
        if text[m.start(1) - 3 : m.start(1)] == "M. ":
            yield m.start(1) - 3, m.start(1) - 1, "name"
    for pattern in (_UPPER_FIRST, _FIRST_UPPER):
        for m in pattern.finditer(text):
            words = m.group().replace("-", " ").split()
            if not any(w in _NOT_NAMES for w in words):
                yield from _name_tokens(text, m.start(), m.end())
    yield from _signature_line(text)


FINDERS: tuple[Finder, ...] = (
    _find_emails,
    _find_nirs,
    _find_phones,
    _find_hospital_ids,
    _find_addresses,
    _find_dates,
    _find_names,
)
"""The detectors, each a small function yielding ``(start, end, type)``; their findings are merged."""


def _variants(word: str) -> set[str]:
    """How a name found once may be written elsewhere: as found, in capitals, capitalized (``Le Goff``)."""
    capitalized = re.sub(r"[^\W\d_]+", lambda m: m.group().capitalize(), word.lower())
    return {word, word.upper(), capitalized}


def _occurrences(text: str, names: Iterable[str]) -> Iterable[tuple[int, int, str]]:
    """Every other whole-word occurrence of names already known or found.

    Capitalized or in capitals, not in lower case: ``Rose`` found with a title is replaced in
    ``ROSE`` but not in ``la rose``. A name found in lower case (a banner typed so) is matched in any case.
    One pass over the words of the text (no pattern compiled per note).
    """
    words = {w for w in names if len(w) >= 3 and not w.endswith(".") and w not in _NOT_NAMES}
    exact = {v for w in words if not w.islower() for v in _variants(w)}
    anycase = {w for w in words if w.islower()}
    if not words:
        return
    for m in _WORD.finditer(text):
        word = m.group()
        if word in exact or word.lower() in anycase:
            yield m.start(), m.end(), "name"


def _merge(found: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping findings merged into one; the longest (then the most specific type) names it."""
    ordered = sorted(found, key=lambda f: (f[0], -(f[1] - f[0]), _PRIORITY[f[2]]))
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in ordered:
        if merged and start < merged[-1][1]:
            last_start, last_end, last_kind = merged[-1]
            if end > last_end:
                better = kind if end - start > last_end - last_start else last_kind
                merged[-1] = (last_start, end, better)
            continue
        merged.append((start, end, kind))
    return merged


def _shifted(original: str, days: int) -> str | None:
    """The date written in ``original`` moved by ``days``, in the same format (``None``: not a date)."""
    m = _DATE_NUM.fullmatch(original)
    if m is not None:
        date = _parse_date(m, False)
        if date is None:
            return None
        moved = date + dt.timedelta(days=days)
        day, sep, month, year = m.group(1), m.group(2), m.group(3), m.group(4)
        d = f"{moved.day:02d}" if len(day) == 2 else str(moved.day)
        mo = f"{moved.month:02d}" if len(month) == 2 else str(moved.month)
        y = str(moved.year) if len(year) == 4 else f"{moved.year % 100:02d}"
        return f"{d}{sep}{mo}{sep}{y}"
    m = _DATE_TEXT.fullmatch(original)
    if m is not None:
        date = _parse_date(m, True)
        if date is None:
            return None
        moved = date + dt.timedelta(days=days)
        y = str(moved.year) if len(m.group(3)) == 4 else f"{moved.year % 100:02d}"
        day = "1er" if moved.day == 1 and m.group(1).lower() == "1er" else str(moved.day)
        return f"{day} {_MONTH_NAMES[moved.month - 1]} {y}"
    return None


def detect_identifiers(text: str, *, known_names: Sequence[str] = ()) -> list[tuple[int, int, str]]:
    """The identifiers of ``text`` as merged ``(start, end, type)``, in text order.

    Examples
    --------
    >>> detect_identifiers("Dr J. Martin, tél. 04 91 00 00 00")
    [(3, 5, 'name'), (6, 12, 'name'), (19, 33, 'phone')]
    """
    _check_text(text)
    if len(known_names) > MAX_KNOWN_NAMES:
        raise ValueError(f"at most {MAX_KNOWN_NAMES} known names, got {len(known_names)}")
    found = [f for finder in FINDERS for f in finder(text)]
    names = [text[s:e].split(" ")[-1] for s, e, k in found if k == "name"]
    found.extend(_occurrences(text, [*names, *(w for n in known_names for w in n.split())]))
    return _merge(found)


def _check_text(text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"a note's text must be a str, got {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"the note is {len(text)} characters long; at most {MAX_TEXT_CHARS} are de-identified")


def deidentify_note(text: str, *, shift_days: int | None, known_names: Sequence[str] = ()) -> Deidentified:
    """``text`` with its direct identifiers replaced (see the module docstring for what and how).

    Parameters
    ----------
    text
        The note (at most :data:`MAX_TEXT_CHARS` characters).
    shift_days
        The person's date shift: dates move by it and keep their format; ``None`` replaces them by ``[DATE]``.
    known_names
        Names of the person, when the caller has them: every occurrence is replaced too.

    Examples
    --------
    >>> deidentify_note("Vu M. DUPONT le 3 mars 2021.", shift_days=-2).text
    'Vu M. [NOM] le 1 mars 2021.'
    """
    found = detect_identifiers(text, known_names=known_names)
    pieces: list[str] = []
    spans: list[Span] = []
    position = 0
    for start, end, kind in found:
        replacement = REPLACEMENTS[kind]
        if kind == "date" and shift_days is not None:
            replacement = _shifted(text[start:end], shift_days) or replacement
        pieces.append(text[position:start])
        pieces.append(replacement)
        spans.append(Span(start, end, kind, replacement))
        position = end
    pieces.append(text[position:])
    return Deidentified("".join(pieces), tuple(spans))
