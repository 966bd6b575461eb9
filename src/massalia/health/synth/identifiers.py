"""Direct identifiers planted in the generated clinical documents, with their ground truth.

Every document gets a header and a signature written the way French hospital software and doctors write
them (patient banner, hospital ids, addresses, phone numbers, e-mails, social security number, letters
to and copies for colleagues), and the consultation letter names its patient inside a sentence. The
identifiers are **fictitious**: names come from short lists of common French first names and surnames
(everyday words, several of them also common nouns: Rose, Blanc, Martin, Petit, Boulanger) or are built
from syllables; streets, phones, e-mails and NIR are drawn from a seeded generator. They are hard on
purpose: uppercase blocks, particles (``Le Goff``, ``de la Fontaine``), hyphenated names, initials,
names inside sentences, names split over lines (``Nom :`` / ``Prénom :``), NIR with and without spaces.

Each planted identifier is recorded as a span ``{"start", "end", "type", "text", "cue"}`` in the document's
``identifiers`` list (offsets into the final text). Types are :data:`IDENTIFIER_TYPES`. ``cue`` is false for
the few names planted with nothing around them that says they are names (``Thierry rappellera le
secrétariat.``, a relative named once): the limit of any rule-based de-identification, measured apart. Dates of the body
(the existing ``date`` annotations) are identifiers too; :func:`identifier_spans` merges them in.

A patient's identity is drawn from a generator seeded by its site and global index, so every document of a
patient names the same person; a document's choices (layout, doctor, formats) come from another generator
seeded by the document id, so planting identifiers draws nothing from the generator of the clinical text.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any, Protocol

IDENTIFIER_TYPES: tuple[str, ...] = ("name", "address", "city", "phone", "email", "nir", "ipp", "nda", "date")
"""Kinds of planted identifiers (``city``: postcode and town, ``address``: number, street type and name)."""

FIRST_NAMES_F: tuple[str, ...] = (
    "Rose", "Marie", "Claire", "Jeanne", "Louise", "Camille", "Lucie", "Margaux", "Françoise", "Hélène",
    "Océane", "Capucine", "Violette", "Blanche", "Aurore", "Marine", "Solène", "Agathe", "Léa", "Anne-Sophie",
    "Constance", "Mathilde", "Odile", "Colette", "Pascale", "Mireille", "Bérénice", "Inès", "Yvonne", "Paule",
)  # fmt: skip
"""Common French women's first names (several are also common nouns or adjectives)."""

FIRST_NAMES_M: tuple[str, ...] = (
    "Jean", "Pierre", "Michel", "André", "Louis", "Paul", "Jacques", "Olivier", "Martin", "Vincent",
    "Jean-Pierre", "Marc", "Bernard", "François", "Julien", "Hugo", "Gilles", "Lucien", "Marcel", "Thierry",
    "Aimé", "Fernand", "Sylvain", "Baptiste", "Clément", "Noël", "Florent", "Victor", "Honoré", "Léon",
)  # fmt: skip
"""Common French men's first names (Martin, Clément, Noël, Aimé... are words too)."""

SURNAMES: tuple[str, ...] = (
    "Martin", "Bernard", "Dubois", "Durand", "Petit", "Blanc", "Leroy", "Moreau", "Roux", "Fontaine",
    "Rousseau", "Mercier", "Boulanger", "Meunier", "Chevalier", "Berger", "Marchand", "Lefebvre", "Garnier",
    "Fournier", "Girard", "Bonnet", "Faure", "Lemoine", "Masson", "Le Goff", "Le Gall", "Le Bihan", "Perrin",
    "Morel", "Brun", "Noir", "Roche", "Lacroix", "Dupont", "Dupuis", "Carpentier", "Bouvier", "Vidal",
    "Barbier", "Lebrun", "Renard", "Collin", "Poirier", "Vasseur", "Guerin", "Lambert", "Robin", "Caron",
)  # fmt: skip
"""Common French surnames (many are also words: petit, blanc, roux, fontaine, boulanger, berger, noir...)."""

_SYLLABLES = ("ba", "ber", "lo", "mar", "ti", "gue", "ran", "dou", "vi", "ler", "sa", "cor", "nel", "pi", "thou")
_PARTICLES = ("de ", "de la ", "du ", "Le ", "Da ")
_STREET_TYPES = ("rue", "avenue", "boulevard", "bd", "chemin", "impasse", "allée", "place", "traverse", "cours")
_STREET_NAMES = (
    "des Lilas", "de la République", "Paradis", "du Prado", "Saint-Ferréol", "des Acacias", "de Rome",
    "Jean Jaurès", "des Oliviers", "du Port", "de la Corniche", "Victor Hugo", "des Mimosas", "de la Gare",
    "Rose", "Blanche", "du Moulin", "des Écoles", "Pasteur", "de Lodi",
)  # fmt: skip
_CITIES = (
    ("13008", "Marseille"), ("13001", "MARSEILLE"), ("13100", "Aix-en-Provence"), ("13600", "La Ciotat"),
    ("83000", "Toulon"), ("84000", "Avignon"), ("13400", "Aubagne"), ("13500", "Martigues"),
    ("04000", "Digne-les-Bains"), ("20090", "Ajaccio"), ("06000", "Nice"), ("13090", "Aix en Provence"),
)  # fmt: skip
_MAIL_DOMAINS = ("laposte.net", "orange.fr", "free.fr", "gmail.com", "wanadoo.fr", "sfr.fr")
_SITE_NAMES = {
    "chu_nord": ("CHU Nord", "chu-nord.fr"),
    "clcc_sud": ("Institut de cancérologie Sud", "ic-sud.fr"),
    "ch_est": ("Centre hospitalier de l'Est", "ch-est.fr"),
}
_SERVICES = ("Service d'oncologie", "Oncologie médicale", "Pôle de cancérologie", "Hôpital de jour d'oncologie",
             "Département de radiothérapie", "Service de pneumologie", "Chirurgie digestive")  # fmt: skip
_SPECIALTIES = ("Oncologue médical", "Radiothérapeute", "Chirurgien viscéral", "Anatomopathologiste",
                "Radiologue", "Pneumologue", "Praticien hospitalier")  # fmt: skip


class IdentifierWriter(Protocol):
    """What a document under construction offers: verbatim text and identifier spans at the current offset."""

    def raw(self, s: str) -> None:
        """Append text as is (no typo, no draw from the text generator)."""

    def ident(self, s: str, kind: str, *, cue: bool = True, value: str | None = None) -> None:
        """Append an identifier of ``kind`` and record its span (``cue``: its context tells what it is).

        A date given its ISO ``value`` is also a ``date`` annotation of the clinical ground truth.
        """


@dataclass(frozen=True)
class Person:
    """A fictitious person: first name, surname, sex."""

    first: str
    last: str
    female: bool


@dataclass(frozen=True)
class Identity:
    """A patient's direct identifiers, the same in all their documents."""

    person: Person
    birth: dt.date
    street: str
    city: tuple[str, str]
    phone: str
    email: str
    nir: str
    ipp: str


def _syllable_name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def _surname(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.25:
        return _syllable_name(rng)
    if roll < 0.33:
        return rng.choice(_PARTICLES) + rng.choice([s for s in SURNAMES if " " not in s])
    if roll < 0.40:
        return "-".join(rng.choice([s for s in SURNAMES if " " not in s]) for _ in range(2))
    return rng.choice(SURNAMES)


def _person(rng: random.Random, female: bool) -> Person:
    first = rng.choice(FIRST_NAMES_F if female else FIRST_NAMES_M)
    if rng.random() < 0.15:
        first = _syllable_name(rng) + ("ine" if female else "")
    return Person(first, _surname(rng), female)


def nir_key(digits13: str) -> int:
    """The NIR control key: 97 minus the 13 digits modulo 97 (Corsica's 2A/2B read as 19/18).

    Examples
    --------
    >>> nir_key("1840575123456")
    25
    """
    number = int(digits13.replace("2A", "19").replace("2B", "18"))
    return 97 - number % 97


def _nir(rng: random.Random, female: bool, birth: dt.date, postcode: str) -> str:
    dept = postcode[:2]
    if dept == "20":
        dept = rng.choice(("2A", "2B"))
    body = f"{2 if female else 1}{birth.year % 100:02d}{birth.month:02d}{dept}{rng.randint(1, 999):03d}"
    body += f"{rng.randint(1, 999):03d}"
    return f"{body}{nir_key(body):02d}"


def _phone(rng: random.Random, mobile: bool) -> str:
    digits = f"0{rng.choice('67') if mobile else rng.choice('449')}" + "".join(str(rng.randint(0, 9)) for _ in range(8))
    pairs = [digits[i : i + 2] for i in range(0, 10, 2)]
    style = rng.randrange(0, 5)
    if style == 0:
        return " ".join(pairs)
    if style == 1:
        return ".".join(pairs)
    if style == 2:
        return "+33 " + digits[1] + " " + " ".join(pairs[1:])
    if style == 3:
        return digits
    return "-".join(pairs)


def _ascii(s: str) -> str:
    table = str.maketrans("éèêëàâäîïôöûüçœÉÈ", "eeeeaaaiioouucoEE")
    return s.translate(table).replace("œ", "oe").replace(" ", "").replace("'", "").lower()


def patient_identity(site: str, index: int, female: bool, birth_day: int, source_id: str) -> Identity:
    """The fictitious identity of patient ``index`` of ``site`` (the same on every call).

    Examples
    --------
    >>> a = patient_identity("chu_nord", 7, True, 0, "100000007")
    >>> a == patient_identity("chu_nord", 7, True, 0, "100000007"), a.birth.isoformat(), a.ipp
    (True, '1970-01-01', '100000007')
    """
    rng = random.Random(f"massalia-identity/{site}/{index}")
    person = _person(rng, female)
    birth = dt.date(1970, 1, 1) + dt.timedelta(days=int(birth_day))
    city = rng.choice(_CITIES)
    street = f"{rng.randint(1, 240)}{rng.choice(('', '', '', ' bis', ' ter'))} {rng.choice(_STREET_TYPES)} "
    street += rng.choice(_STREET_NAMES)
    email = f"{_ascii(person.first)}{rng.choice(('.', '_', ''))}{_ascii(person.last)}"
    email += f"{rng.randint(1, 99) if rng.random() < 0.4 else ''}@{rng.choice(_MAIL_DOMAINS)}"
    return Identity(person, birth, street, city, _phone(rng, rng.random() < 0.6), email,
                    _nir(rng, female, birth, city[0]), source_id)  # fmt: skip


def _doctors(site: str) -> list[Person]:
    rng = random.Random(f"massalia-doctors/{site}")
    return [_person(rng, rng.random() < 0.5) for _ in range(12)]


def nda(site: str, note_id: int, rng: random.Random) -> str:
    """A stay number (NDA) in the site's own format.

    Examples
    --------
    >>> nda("clcc_sud", 1200, random.Random(0))
    'SEJ-0001200'
    """
    if site == "chu_nord":
        return f"{rng.choice((21, 22, 23, 24))}{note_id:08d}"
    if site == "clcc_sud":
        return f"SEJ-{note_id:07d}"
    return f"V{note_id % 10**8:08d}"


def _name_forms(p: Person, rng: random.Random) -> list[tuple[str, str]]:
    """One way of writing a person's name: pieces of text (``""`` kind) and name pieces (``"name"``)."""
    first, last = p.first, p.last
    style = rng.randrange(0, 7)
    if style == 0:
        return [(last.upper(), "name"), (" ", ""), (first, "name")]
    if style == 1:
        return [(first, "name"), (" ", ""), (last.upper(), "name")]
    if style == 2:
        return [(first, "name"), (" ", ""), (last, "name")]
    if style == 3:
        return [(f"{first[0]}.", "name"), (" ", ""), (last, "name")]
    if style == 4:
        return [(last, "name")]
    if style == 5:
        return [(last.upper(), "name")]
    return [(last.upper(), "name"), (" ", ""), (first.upper(), "name")]


def _write_name(w: IdentifierWriter, p: Person, rng: random.Random, *, title: str | None) -> None:
    if title:
        w.raw(title + " ")
    for piece, kind in _name_forms(p, rng):
        if kind:
            w.ident(piece, kind)
        else:
            w.raw(piece)


def _patient_title(p: Person, rng: random.Random) -> str | None:
    choices = ("Mme", "Madame", "MME") if p.female else ("M.", "Monsieur", "M", "Mr")
    return rng.choice((*choices, None)) if rng.random() < 0.8 else None


def _doctor_title(rng: random.Random) -> str:
    return rng.choice(("Dr", "Dr.", "Docteur", "Pr", "Professeur", "DR"))


def _date(d: dt.date, rng: random.Random) -> str:
    style = rng.randrange(0, 3)
    return d.strftime("%d/%m/%Y") if style == 0 else d.strftime("%d.%m.%Y") if style == 1 else d.strftime("%d/%m/%y")


def write_header(w: IdentifierWriter, site: str, ident: Identity, note_id: int, rng: random.Random) -> Person:
    """The document's header (hospital, service, patient banner); returns the doctor who signs it."""
    doctor = rng.choice(_doctors(site))
    hospital, domain = _SITE_NAMES[site]
    service = rng.choice(_SERVICES)
    w.raw(rng.choice((f"{hospital} - {service}\n", f"{hospital.upper()}\n{service}\n", f"{service} ({hospital})\n")))
    if rng.random() < 0.5:
        w.raw("Secrétariat : ")
        w.ident(_phone(rng, False), "phone")
        w.raw(" - ")
        w.ident(f"secretariat.onco@{domain}", "email")
        w.raw("\n")
    _write_banner(w, ident, rng)
    _write_contact(w, site, ident, note_id, rng)
    if rng.random() < 0.5:
        w.raw(rng.choice(("Médecin référent : ", "Demandeur : ", "Rédigé par ")))
        _write_name(w, doctor, rng, title=_doctor_title(rng))
        w.raw("\n")
    w.raw("\n")
    return doctor


def _write_banner(w: IdentifierWriter, ident: Identity, rng: random.Random) -> None:
    """The patient's name (one line, two lines, or an object line) and birth date."""
    p = ident.person
    layout = rng.randrange(0, 3)
    if layout == 0:
        w.raw(rng.choice(("Patient : ", "Patiente : ", "PATIENT : ", "Nom du patient : ")))
        if rng.random() < 0.08:  # typed in a hurry: all lowercase
            w.ident(p.last.lower(), "name")
            w.raw(" ")
            w.ident(p.first.lower(), "name")
        else:
            _write_name(w, p, rng, title=_patient_title(p, rng))
        w.raw("\n")
    elif layout == 1:
        w.raw("Nom : ")
        w.ident(p.last.upper() if rng.random() < 0.7 else p.last, "name")
        w.raw("\nPrénom : ")
        w.ident(p.first, "name")
        w.raw("\n")
    else:
        w.raw(rng.choice(("Concerne : ", "Objet : ", "Réf. : ")))
        _write_name(w, p, rng, title=_patient_title(p, rng) or ("Mme" if p.female else "M."))
        w.raw(", ")
    born = ("née le ", "Née le ") if p.female else ("né le ", "Né le ")
    w.raw(rng.choice((*born, "DDN : ", "date de naissance : ")))
    w.ident(_date(ident.birth, rng), "date", value=ident.birth.isoformat())
    w.raw("\n")


def _write_contact(w: IdentifierWriter, site: str, ident: Identity, note_id: int, rng: random.Random) -> None:
    """Hospital ids, and sometimes the address, phone, e-mail and social security number."""
    ids = rng.randrange(0, 3)
    if ids != 1:
        w.raw(rng.choice(("IPP : ", "IPP ", "N° patient : ", "NIP : ")))
        w.ident(ident.ipp, "ipp")
        w.raw(" ")
    if ids != 2:
        w.raw(rng.choice(("NDA : ", "N° séjour : ", "Venue ")))
        w.ident(nda(site, note_id, rng), "nda")
    w.raw("\n")
    if rng.random() < 0.5:
        w.raw(rng.choice(("Adresse : ", "Domicile : ", "")))
        w.ident(ident.street, "address")
        w.raw(rng.choice((", ", "\n", " - ")))
        w.ident(f"{ident.city[0]} {ident.city[1]}", "city")
        w.raw("\n")
    if rng.random() < 0.5:
        w.raw(rng.choice(("Tél. : ", "Tel ", "Téléphone : ", "Portable : ")))
        w.ident(ident.phone, "phone")
        if rng.random() < 0.5:
            w.raw(rng.choice((" - Mail : ", " / courriel : ", " ")))
            w.ident(ident.email, "email")
        w.raw("\n")
    if rng.random() < 0.4:
        nir = ident.nir
        spaced = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
        w.raw(rng.choice(("N° SS : ", "NIR : ", "Sécurité sociale : ", "INS : ")))
        w.ident(spaced if rng.random() < 0.5 else nir, "nir")
        w.raw("\n")


def write_patient_mention(w: IdentifierWriter, ident: Identity, rng: random.Random) -> None:
    """The patient named inside a sentence (``..., Mme Rose BLANC, 67 ans``)."""
    p = ident.person
    title = ("Mme" if p.female else "M.") if rng.random() < 0.7 else ("Madame" if p.female else "Monsieur")
    _write_name(w, p, rng, title=title)


_RELATIVES = (("sa fille", True), ("son fils", False), ("son épouse", True), ("son mari", False),
              ("sa sœur", True), ("son frère", False), ("sa nièce", True), ("son compagnon", False))  # fmt: skip


def _write_relative(w: IdentifierWriter, ident: Identity, rng: random.Random) -> None:
    """A relative named in a sentence, by first name alone or with a surname (the patient's or another)."""
    relation, female = rng.choice(_RELATIVES)
    relative = _person(rng, female)
    style = rng.randrange(0, 3)
    if style == 0:
        w.raw(f"Personne de confiance : {relation}, ")
        w.ident(relative.first, "name")
        w.raw(" ")
        w.ident(ident.person.last.upper() if rng.random() < 0.5 else relative.last, "name")
        w.raw(", joignable au ")
        w.ident(_phone(rng, True), "phone")
        w.raw(".\n")
        if rng.random() < 0.3:  # named again further on, with no cue at all
            w.ident(relative.first, "name")
            w.raw(" rappellera le secrétariat.\n")
    elif rng.random() < 0.06:
        # A name with no cue that rules could use: what a rule-based system misses (kept rare, as in notes).
        w.ident(relative.first, "name", cue=False)
        w.raw(rng.choice((" rappellera le secrétariat.\n", " passera chercher les résultats.\n")))
    elif style == 1:
        w.raw(f"Consultation en présence de {relation} ")
        w.ident(relative.first, "name")
        w.raw(".\n")
    else:
        w.raw(f"Annonce faite au patient et à {relation}, ")
        w.ident(relative.first, "name")
        w.raw(rng.choice((", qui souhaite être tenue informée.\n", ", présente ce jour.\n")))


def write_signature(
    w: IdentifierWriter, site: str, doctor: Person, rng: random.Random, ident: Identity | None = None
) -> None:
    """The signature, sometimes a relative named in a sentence, sometimes a copy to the family doctor."""
    _, domain = _SITE_NAMES[site]
    w.raw("\n")
    if ident is not None and rng.random() < 0.3:
        _write_relative(w, ident, rng)
    w.raw("\n")
    if rng.random() < 0.7:
        _write_name(w, doctor, rng, title=_doctor_title(rng))
    else:
        w.ident(doctor.first, "name")
        w.raw(" ")
        w.ident(doctor.last.upper(), "name")
    w.raw("\n" + rng.choice(_SPECIALTIES) + "\n")
    if rng.random() < 0.5:
        w.ident(f"{_ascii(doctor.first[0])}.{_ascii(doctor.last)}@{domain}", "email")
        w.raw("\n")
    if rng.random() < 0.5:
        colleague = _person(rng, rng.random() < 0.5)
        w.raw(rng.choice(("Copie à : ", "Copie : ", "CC : ")))
        _write_name(w, colleague, rng, title=_doctor_title(rng))
        w.raw(", médecin traitant, ")
        w.ident(f"{rng.randint(1, 90)} {rng.choice(_STREET_TYPES)} {rng.choice(_STREET_NAMES)}", "address")
        w.raw(", ")
        city = rng.choice(_CITIES)
        w.ident(f"{city[0]} {city[1]}", "city")
        if rng.random() < 0.5:
            w.raw(" (tél. ")
            w.ident(_phone(rng, False), "phone")
            w.raw(")")
        w.raw("\n")


def identifier_spans(identifiers: list[dict[str, Any]], spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A document's identifiers: the planted ones and the dates of its body, in text order."""
    planted = {(s["start"], s["end"]) for s in identifiers}
    dates = [{"start": s["start"], "end": s["end"], "type": "date", "text": s["text"], "cue": True}
             for s in spans if s["label"] == "date" and (s["start"], s["end"]) not in planted]  # fmt: skip
    return sorted([*identifiers, *dates], key=lambda s: (s["start"], s["end"]))
