"""The incident-type catalogue: ~130 types in families, crosswalks to national and international schemes.

The catalogue is data shipped in the package (``catalogue.yaml``, ``types.csv``, ``local_codes.csv``), versioned
by the ``version`` of ``catalogue.yaml``. Each type carries its crosswalks (état 4001 index, SSMSI indicator,
UNODC ICCS, CAP 1.2 category, Smart Data Models ``Alert`` category and subCategory), each with how sure the
match is (``exact``, ``broader``, ``approximate``, ``uncertain``, ``none``): a code that could not be checked
is marked, never passed off as certain. Each source's local codes map to a type; codes met in a source that
the catalogue does not know are reported by :func:`unmapped_codes`.

Examples
--------
>>> catalogue = load_catalogue()
>>> catalogue.type("VOL.ARRACHAGE").crosswalk["sdm_subcategory"]
'robbery'
>>> catalogue.resolve("mc", "PM900")
'BRU.TAPAGE_NOCTURNE'
>>> catalogue.resolve("mc", "PM999") is None
True
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

MATCHES = ("exact", "broader", "approximate", "uncertain", "none")
"""How sure a crosswalk is, from the same acts to no counterpart at all."""

SCHEMES = ("etat4001", "iccs", "sdm")
"""Schemes whose match is recorded per type (``<scheme>_match`` columns of ``types.csv``)."""

TYPE_COLUMNS = (
    "code",
    "family",
    "label_fr",
    "label_en",
    "severity",
    "etat4001",
    "etat4001_match",
    "ssmsi",
    "iccs",
    "iccs_match",
    "cap",
    "sdm_category",
    "sdm_subcategory",
    "sdm_match",
)
SEVERITIES = ("informational", "low", "medium", "high", "critical")
"""The Smart Data Models ``Alert`` severities, used for types too."""


class CatalogueError(ValueError):
    """The shipped catalogue is inconsistent: the message names the file, the line and the field."""


@dataclass(frozen=True)
class IncidentType:
    """One incident type: its code (``FAMILY.NAME``), labels, severity and crosswalks."""

    code: str
    family: str
    label_fr: str
    label_en: str
    severity: str
    crosswalk: Mapping[str, str]


@dataclass(frozen=True)
class LocalCode:
    """A source's own code for a type (several local codes may map to one type)."""

    source: str
    code: str
    label: str
    type_code: str


@dataclass(frozen=True)
class Catalogue:
    """The loaded catalogue: types by code, families, schemes, and each source's local codes."""

    version: str
    families: Mapping[str, Mapping[str, str]]
    schemes: Mapping[str, Any]
    sources: Mapping[str, Mapping[str, str]]
    types: Mapping[str, IncidentType]
    local_codes: tuple[LocalCode, ...]
    _by_local: Mapping[tuple[str, str], str] = field(default_factory=dict, repr=False)

    def type(self, code: str) -> IncidentType:
        """The type ``code``; an unknown code raises ``KeyError`` naming a few known ones."""
        try:
            return self.types[code]
        except KeyError:
            raise KeyError(f"unknown incident type {code!r} (e.g. {', '.join(list(self.types)[:5])})") from None

    def resolve(self, source: str, local_code: str) -> str | None:
        """The type a source's local code maps to, or ``None`` when the catalogue does not know it."""
        return self._by_local.get((source, local_code.strip().upper()))

    def codes_of(self, source: str) -> list[LocalCode]:
        """Every local code of ``source``."""
        return [code for code in self.local_codes if code.source == source]

    def rows(self) -> list[dict[str, str]]:
        """The types as flat rows (one column per crosswalk), e.g. for a warehouse table."""
        return [
            {
                "type_code": t.code,
                "family": t.family,
                "label_fr": t.label_fr,
                "label_en": t.label_en,
                "severity": t.severity,
                **t.crosswalk,
                "catalogue_version": self.version,
            }
            for t in self.types.values()
        ]


def _check_type(row: dict[str, str], line: int, families: Mapping[str, Any], schemes: Mapping[str, Any]) -> None:
    where = f"types.csv line {line}"
    if row["family"] not in families:
        raise CatalogueError(f"{where}, field family: unknown family {row['family']!r}")
    if not row["code"].startswith(row["family"] + "."):
        raise CatalogueError(f"{where}, field code: {row['code']!r} does not start with its family {row['family']}")
    if row["severity"] not in SEVERITIES:
        raise CatalogueError(f"{where}, field severity: {row['severity']!r} is not one of {', '.join(SEVERITIES)}")
    for scheme in SCHEMES:
        match = row[f"{scheme}_match"]
        if match not in MATCHES:
            raise CatalogueError(f"{where}, field {scheme}_match: {match!r} is not one of {', '.join(MATCHES)}")
    if row["etat4001"] and not 1 <= int(row["etat4001"]) <= 107:
        raise CatalogueError(f"{where}, field etat4001: index {row['etat4001']} outside 1-107")
    if bool(row["etat4001"]) == (row["etat4001_match"] == "none"):
        raise CatalogueError(f"{where}, field etat4001_match: a code needs a match other than none, and none no code")
    if row["cap"] not in schemes["cap"]["values"]:
        raise CatalogueError(f"{where}, field cap: {row['cap']!r} is not a CAP 1.2 category")
    if row["sdm_category"] and row["sdm_category"] not in schemes["sdm"]["categories"]:
        raise CatalogueError(f"{where}, field sdm_category: {row['sdm_category']!r} is not an Alert category")
    if row["sdm_subcategory"] and row["sdm_subcategory"] not in schemes["sdm"]["subcategories"]:
        raise CatalogueError(f"{where}, field sdm_subcategory: {row['sdm_subcategory']!r} is not an Alert subCategory")
    if bool(row["sdm_subcategory"]) == (row["sdm_match"] == "none"):
        raise CatalogueError(f"{where}, field sdm_match: a subCategory needs a match other than none, and none none")


@cache
def load_catalogue() -> Catalogue:
    """Load and validate the shipped catalogue (cached: it is read-only data).

    Raises
    ------
    CatalogueError
        A row breaks a rule (unknown family, crosswalk code outside its scheme, local code mapped twice...).
    """
    folder = resources.files(__package__)
    meta = yaml.safe_load(folder.joinpath("catalogue.yaml").read_text(encoding="utf-8"))
    families = meta["families"]
    schemes = meta["schemes"]
    types: dict[str, IncidentType] = {}
    with io.StringIO(folder.joinpath("types.csv").read_text(encoding="utf-8"), newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != TYPE_COLUMNS:
            raise CatalogueError(f"types.csv header must be {', '.join(TYPE_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            _check_type(row, line, families, schemes)
            if row["code"] in types:
                raise CatalogueError(f"types.csv line {line}, field code: {row['code']!r} defined twice")
            crosswalk = {key: row[key] for key in TYPE_COLUMNS[5:]}
            types[row["code"]] = IncidentType(
                row["code"], row["family"], row["label_fr"], row["label_en"], row["severity"], crosswalk
            )
    local: list[LocalCode] = []
    by_local: dict[tuple[str, str], str] = {}
    with io.StringIO(folder.joinpath("local_codes.csv").read_text(encoding="utf-8"), newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            where = f"local_codes.csv line {line}"
            if row["source"] not in meta["sources"]:
                raise CatalogueError(f"{where}, field source: unknown source {row['source']!r}")
            if row["type_code"] not in types:
                raise CatalogueError(f"{where}, field type_code: unknown type {row['type_code']!r}")
            key = (row["source"], row["local_code"].upper())
            if key in by_local:
                raise CatalogueError(f"{where}, field local_code: {row['local_code']!r} mapped twice for {key[0]}")
            by_local[key] = row["type_code"]
            local.append(LocalCode(row["source"], row["local_code"], row["local_label"], row["type_code"]))
    return Catalogue(str(meta["version"]), families, schemes, meta["sources"], types, tuple(local), by_local)


def unmapped_codes(catalogue: Catalogue, seen: Iterable[tuple[str, str]]) -> list[tuple[str, str, int]]:
    """The ``(source, local code, occurrences)`` met in the data that the catalogue cannot map, most frequent first.

    Examples
    --------
    >>> unmapped_codes(load_catalogue(), [("mc", "PM101"), ("mc", "XX"), ("mc", "XX"), ("csu", "ZZ9")])
    [('mc', 'XX', 2), ('csu', 'ZZ9', 1)]
    """
    counts = Counter((source, code) for source, code in seen if catalogue.resolve(source, code) is None)
    return [(source, code, n) for (source, code), n in counts.most_common()]


def coverage(catalogue: Catalogue) -> dict[str, dict[str, int]]:
    """Per scheme, how many types have each match level (what the crosswalks claim, in numbers).

    Examples
    --------
    >>> sum(coverage(load_catalogue())["etat4001"].values()) == len(load_catalogue().types)
    True
    """
    return {
        scheme: dict(Counter(t.crosswalk[f"{scheme}_match"] for t in catalogue.types.values())) for scheme in SCHEMES
    }
