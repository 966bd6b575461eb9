"""DCAT harvester: import another catalog's DCAT records (Turtle, RDF/XML, JSON-LD) as harvested datasets.

``massalia opendata harvest SOURCE --org ORG`` reads a file or an http(s) URL and makes each ``dcat:Dataset`` a
dataset of the organization, marked harvested (``harvest_source``, ``harvest_uri``):

- **Who**: a platform admin, or an editor/admin of the organization (``opendata.harvest.run``, audited); the
  check comes before the source is read.
- **Bounded source**: at most :data:`MAX_SOURCE_BYTES`, :data:`SOURCE_TIMEOUT` seconds and
  :data:`MAX_REDIRECTS` redirects; a URL (and every redirect) must be http or https, so a URL never reaches a
  local file (``file://``) or another scheme.
- **Safe parsing**: RDF/XML with a DTD (entity expansion, "billion laughs", or external entities) is refused
  before rdflib sees it (``defusedxml``); JSON-LD naming a remote ``@context`` is refused (it would be fetched).
- **Per-record errors**: each record is checked whole first (record URI, property, problem: a missing
  ``dct:title``, an ill-typed ``dct:issued``, a distribution without ``dcat:accessURL``...); a bad record is
  skipped whole, never half-imported (each good record is one catalog transaction with its resources).
- **Paged sources**: a URL's ``hydra:nextPage`` links (ckanext-dcat's and Massalia's own paging) are followed,
  within the same bounds in total and at most :data:`MAX_PAGES` pages.
- **Re-harvest** finds a record's dataset by source and record URI and publishes a new version when it changed
  (``unchanged`` otherwise); a dataset harvested from this source whose record is gone is reported ``removed``
  (kept, for the producer to decide).

Examples
--------
>>> parse_date("2024-03-01")
datetime.date(2024, 3, 1)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import defusedxml.ElementTree as SafeTree
import httpx
from defusedxml import DefusedXmlException
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF, XSD
from rdflib.term import Node

from massalia.governance import InvalidRequest
from massalia.opendata.dcat import FREQUENCIES, HYDRA
from massalia.opendata.models import LICENSES, TAG, ValidationFailed

if TYPE_CHECKING:
    from massalia.governance import Caller
    from massalia.opendata.catalog import Catalog

HARVEST = "opendata.harvest.run"
MAX_SOURCE_BYTES = 50 * 1024**2
"""A harvest source larger than this is refused (50 MiB)."""
SOURCE_TIMEOUT = 30.0
"""Seconds to read a URL source, redirects included."""
MAX_REDIRECTS = 3
MAX_RECORDS = 10_000
MAX_PAGES = 200
"""A paged source (``hydra:nextPage``) is followed for at most this many pages."""
PARSERS = {"turtle": "turtle", "xml": "xml", "json-ld": "json-ld"}
_EXTENSIONS = {".ttl": "turtle", ".rdf": "xml", ".xml": "xml", ".owl": "xml", ".jsonld": "json-ld", ".json": "json-ld"}
_MEDIA = {"text/turtle": "turtle", "application/rdf+xml": "xml", "application/xml": "xml", "text/xml": "xml",
          "application/ld+json": "json-ld", "application/json": "json-ld"}  # fmt: skip
_FREQUENCY_CODES = {code: name for name, code in FREQUENCIES.items()}


class HarvestError(InvalidRequest):
    """The source as a whole cannot be harvested (unreadable, too large, unsafe, not RDF)."""


@dataclass
class RecordError:
    """Why one record was skipped: its URI, the property at fault and the problem."""

    record: str
    property: str
    problem: str


@dataclass
class HarvestReport:
    """What a harvest did: datasets created, updated, unchanged, records skipped with errors, records removed."""

    source: str
    organization: str
    records: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "source": self.source,
            "organization": self.organization,
            "records": self.records,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [e.__dict__ for e in self.errors],
            "removed": self.removed,
            "seconds": self.seconds,
        }


# -- reading the source ---------------------------------------------------------------------------------------------
def _format_of(name: str, media: str, data: bytes) -> str:
    media = media.split(";")[0].strip().lower()
    if media in _MEDIA:
        return _MEDIA[media]
    suffix = Path(urlsplit(name).path).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    head = data.lstrip()[:1]
    if head == b"<":
        return "xml"
    if head in (b"{", b"["):
        return "json-ld"
    return "turtle"


def read_source(
    source: str,
    *,
    max_bytes: int = MAX_SOURCE_BYTES,
    timeout: float = SOURCE_TIMEOUT,
    max_redirects: int = MAX_REDIRECTS,
) -> tuple[bytes, str]:
    """The bytes of a harvest source and its RDF format: a local file, or an http(s) URL (bounded).

    Raises
    ------
    HarvestError
        The scheme is not http(s) (``file://`` and others, in the URL or a redirect), the source is larger than
        ``max_bytes``, slower than ``timeout``, redirects more than ``max_redirects`` times, or is unreadable.
    """
    scheme = urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return _read_url(source, max_bytes=max_bytes, timeout=timeout, max_redirects=max_redirects)
    if scheme and len(scheme) > 1:  # "c:" of a Windows path is not a scheme
        raise HarvestError(f"{source[:200]}: only a file path or an http(s) URL may be harvested, not {scheme}:")
    path = Path(source)
    if not path.is_file():
        raise HarvestError(f"{source[:200]}: no such file")
    size = path.stat().st_size
    if size > max_bytes:
        raise HarvestError(f"{source[:200]}: {size} bytes, more than the {max_bytes} a harvest source may have")
    data = path.read_bytes()[: max_bytes + 1]
    return data, _format_of(source, "", data)


def _read_url(url: str, *, max_bytes: int, timeout: float, max_redirects: int) -> tuple[bytes, str]:
    deadline = time.monotonic() + timeout
    current = url
    with httpx.Client(follow_redirects=False, timeout=httpx.Timeout(min(timeout, 10.0)), trust_env=False) as client:
        for _ in range(max_redirects + 1):
            if urlsplit(current).scheme.lower() not in ("http", "https"):
                raise HarvestError(f"{url[:200]}: redirected to {current[:200]}, which is not an http(s) URL")
            try:
                with client.stream("GET", current, headers={"Accept": ", ".join(_MEDIA)}) as response:
                    if response.is_redirect:
                        current = urljoin(current, response.headers.get("location", ""))
                        continue
                    if response.status_code != 200:
                        raise HarvestError(f"{current[:200]}: HTTP {response.status_code}")
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise HarvestError(f"{current[:200]}: {declared} bytes announced, more than {max_bytes}")
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise HarvestError(f"{current[:200]}: more than the {max_bytes} bytes a source may have")
                        if time.monotonic() > deadline:
                            raise HarvestError(f"{current[:200]}: not read within {timeout:g} s")
                        chunks.append(chunk)
                    data = b"".join(chunks)
                    return data, _format_of(current, response.headers.get("content-type", ""), data)
            except httpx.TimeoutException:
                raise HarvestError(f"{current[:200]}: no answer within the time limit") from None
            except httpx.HTTPError as error:
                raise HarvestError(f"{current[:200]}: {error}") from None
    raise HarvestError(f"{url[:200]}: more than {max_redirects} redirects")


def _no_remote_context(value: Any, depth: int = 0) -> None:
    if depth > 50:
        raise HarvestError("the JSON-LD document is nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("@context", "@import"):
                contexts = item if isinstance(item, list) else [item]
                if any(isinstance(c, str) for c in contexts):
                    raise HarvestError("a remote JSON-LD @context is not fetched: inline the context in the source")
            _no_remote_context(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _no_remote_context(item, depth + 1)


def parse_source(data: bytes, fmt: str) -> Graph:
    """The RDF graph of a source, refusing XML entity declarations and remote JSON-LD contexts."""
    if fmt == "xml":
        try:
            SafeTree.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
        except DefusedXmlException as error:
            raise HarvestError(f"RDF/XML with a DTD or entities is refused ({type(error).__name__})") from None
        except SafeTree.ParseError as error:
            raise HarvestError(f"not well-formed RDF/XML: {error}") from None
    elif fmt == "json-ld":
        try:
            _no_remote_context(json.loads(data))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise HarvestError(f"not JSON-LD: {error}") from None
        except RecursionError:
            raise HarvestError("the JSON-LD document is nested too deeply") from None
    # rdflib logs a traceback for each literal it cannot convert (an ill-typed date): the record check reports
    # those itself, by record and property, so the log is quietened while parsing.
    term_log = logging.getLogger("rdflib.term")
    level = term_log.level
    term_log.setLevel(logging.CRITICAL)
    try:
        return Graph().parse(data=data, format=PARSERS[fmt])
    except HarvestError:
        raise
    except Exception as error:  # rdflib's parsers raise their own errors (BadSyntax, SAXParseException...)
        raise HarvestError(f"not valid {fmt}: {str(error)[:300]}") from None
    finally:
        term_log.setLevel(level)


def read_pages(
    source: str, *, max_bytes: int = MAX_SOURCE_BYTES, timeout: float = SOURCE_TIMEOUT, max_pages: int = MAX_PAGES
) -> Graph:
    """The graph of a source and, for a URL, of the pages its ``hydra:nextPage`` links to (ckanext-dcat paging).

    Every page is read with the same bounds; together they may not exceed ``max_bytes`` nor ``max_pages``. The
    next page must be an http(s) URL; a file source's paging links are not followed (a file never makes the
    harvester go to the network).
    """
    data, fmt = read_source(source, max_bytes=max_bytes, timeout=timeout)
    graph = parse_source(data, fmt)
    total, seen, current = len(data), {source}, source
    while urlsplit(current).scheme.lower() in ("http", "https"):
        links = sorted({str(o) for o in graph.objects(None, HYDRA.nextPage)} - seen)
        if not links:
            break
        if len(seen) >= max_pages:
            raise HarvestError(f"{source[:200]}: more than {max_pages} pages")
        current = urljoin(current, links[0])
        if urlsplit(current).scheme.lower() not in ("http", "https"):
            raise HarvestError(f"{source[:200]}: the next page {current[:200]} is not an http(s) URL")
        seen.add(links[0])
        seen.add(current)
        if total >= max_bytes:
            raise HarvestError(f"{source[:200]}: its pages have more than the {max_bytes} bytes a source may have")
        data, fmt = read_source(current, max_bytes=max_bytes - total, timeout=timeout)
        total += len(data)
        graph += parse_source(data, fmt)
    return graph


# -- records --------------------------------------------------------------------------------------------------------
def parse_date(value: Any) -> dt.date | dt.datetime:
    """An xsd:date or xsd:dateTime (ISO 8601) literal's value; ValueError otherwise."""
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return dt.date.fromisoformat(text)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _literal_date(record: str, prop: str, node: Node, errors: list[RecordError]) -> dt.date | None:
    if not isinstance(node, Literal):
        errors.append(RecordError(record, prop, f"{str(node)[:100]!r} is not a date literal"))
        return None
    if node.datatype not in (None, XSD.date, XSD.dateTime, XSD.dateTimeStamp):
        errors.append(RecordError(record, prop, f"{str(node)[:100]!r} has type {node.datatype}, not a date"))
        return None
    try:
        parsed = parse_date(node)
    except ValueError:
        errors.append(RecordError(record, prop, f"{str(node)[:100]!r} is not an xsd:date or xsd:dateTime"))
        return None
    return parsed.date() if isinstance(parsed, dt.datetime) else parsed


def _text(graph: Graph, subject: Node, prop: URIRef) -> str:
    values = [o for o in graph.objects(subject, prop) if isinstance(o, Literal)]
    for lang in ("fr", None, "en"):
        for value in values:
            if value.language == lang:
                return str(value).strip()
    return str(values[0]).strip() if values else ""


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:60]


def dataset_name(organization: str, source: str, record_uri: str, title: str) -> str:
    """A dataset name for a new record: its title (or last URI segment) and a hash of where it comes from.

    The hash covers the organization, the source and the record URI: the same record harvested into two
    organizations makes two datasets, not a name clash. A re-harvest finds the dataset by record URI and keeps
    its name, even if the title changed.
    """
    tail = _slug(title) or _slug(urlsplit(record_uri).path.rstrip("/").rsplit("/", 1)[-1]) or "jeu"
    key = hashlib.sha256("\n".join((organization, source, record_uri)).encode()).hexdigest()[:10]
    return f"{tail[:60]}-{key}"


def _licence(url: str) -> str | None:
    for licence in LICENSES:
        if licence["url"] and url.rstrip("/") == str(licence["url"]).rstrip("/"):
            return str(licence["id"])
    return None


def record_package(
    graph: Graph, subject: Node, source: str, organization: str
) -> tuple[dict[str, Any] | None, list[RecordError]]:
    """The package dict of one ``dcat:Dataset`` record, or None and its errors (checked whole, first)."""
    record = str(subject) if isinstance(subject, URIRef) else f"_:{subject}"
    errors: list[RecordError] = []
    if not isinstance(subject, URIRef):
        errors.append(RecordError(record, "@id", "a record needs a URI to be harvested again (a blank node has none)"))
    title = _text(graph, subject, DCTERMS.title)
    if not title:
        errors.append(RecordError(record, "dct:title", "missing (mandatory in DCAT-AP)"))
    for prop, name in ((DCTERMS.issued, "dct:issued"), (DCTERMS.modified, "dct:modified")):
        for node in graph.objects(subject, prop):
            _literal_date(record, name, node, errors)
    start = end = None
    for period in graph.objects(subject, DCTERMS.temporal):
        for node in graph.objects(period, DCAT.startDate):
            start = _literal_date(record, "dct:temporal/dcat:startDate", node, errors)
        for node in graph.objects(period, DCAT.endDate):
            end = _literal_date(record, "dct:temporal/dcat:endDate", node, errors)
    tags = sorted({str(k).strip()[:100] for k in graph.objects(subject, DCAT.keyword) if str(k).strip()})
    for tag in tags:
        if not re.match(TAG, tag):
            errors.append(RecordError(record, "dcat:keyword", f"{tag!r} has characters a tag may not have"))
    frequency = "unknown"
    for node in graph.objects(subject, DCTERMS.accrualPeriodicity):
        frequency = _FREQUENCY_CODES.get(str(node).rsplit("/", 1)[-1], "unknown")
    landing = next((str(o) for o in graph.objects(subject, DCAT.landingPage)), "")
    resources: list[dict[str, Any]] = []
    licence_id = None
    for distribution in sorted(graph.objects(subject, DCAT.distribution), key=str):
        where = f"dcat:distribution {distribution}"
        access = next((str(o) for o in graph.objects(distribution, DCAT.accessURL)), "")
        download = next((str(o) for o in graph.objects(distribution, DCAT.downloadURL)), "")
        if not access:
            errors.append(RecordError(record, f"{where} dcat:accessURL", "missing (mandatory in DCAT-AP)"))
            continue
        url = download or access
        if not url.lower().startswith(("http://", "https://")):
            errors.append(RecordError(record, f"{where} dcat:accessURL", f"{url[:100]!r} is not an http(s) URL"))
            continue
        fmt = next((str(o) for o in graph.objects(distribution, DCTERMS.format)), "")
        for node in graph.objects(distribution, DCTERMS.license):
            licence_id = licence_id or _licence(str(node))
        resources.append(
            {
                "url": url,
                "name": _text(graph, distribution, DCTERMS.title),
                "description": _text(graph, distribution, DCTERMS.description),
                "format": fmt.rstrip("/").rsplit("/", 1)[-1][:50],
            }
        )
    for node in graph.objects(subject, DCTERMS.license):
        licence_id = licence_id or _licence(str(node))
    if errors:
        return None, errors
    package: dict[str, Any] = {
        "name": dataset_name(organization, source, record, title),
        "title": title,
        "notes": _text(graph, subject, DCTERMS.description),
        "owner_org": organization,
        "tags": [{"name": tag} for tag in tags],
        "frequency": frequency,
        "url": landing if landing.lower().startswith(("http://", "https://")) else "",
        "license_id": licence_id or "notspecified",
        "resources": resources,
        "harvest_source": source,
        "harvest_uri": record,
    }
    if start is not None:
        package["temporal_start"] = start.isoformat()
    if end is not None:
        package["temporal_end"] = end.isoformat()
    return package, []


_COMPARED = ("title", "notes", "tags", "frequency", "url", "license_id", "temporal_start", "temporal_end")


def _unchanged(current: dict[str, Any], package: dict[str, Any]) -> bool:
    for key in _COMPARED:
        have = current.get(key)
        if key == "tags":
            have = [{"name": t["name"]} for t in current.get("tags", [])]
        if (have or None) != (package.get(key) or None):
            return False
    mine = [(r.get("url"), r.get("name"), r.get("description"), r.get("format")) for r in current["resources"]]
    theirs = [(r["url"], r["name"], r["description"], r["format"]) for r in package["resources"]]
    return mine == theirs


# -- the service ----------------------------------------------------------------------------------------------------
def harvest(
    caller: Caller,
    catalog: Catalog,
    source: str,
    organization: str,
    *,
    max_bytes: int = MAX_SOURCE_BYTES,
    timeout: float = SOURCE_TIMEOUT,
) -> HarvestReport:
    """Harvest the DCAT records of ``source`` into ``organization`` (see the module's description)."""
    started = time.monotonic()
    caller.authorize(HARVEST, detail={"resource": {"source": source[:500], "organization": str(organization)[:100]}})
    org = catalog.require_publisher(caller, organization, HARVEST, source=source[:500])
    graph = read_pages(source, max_bytes=max_bytes, timeout=timeout)
    report = HarvestReport(source=source, organization=org["name"])
    subjects = sorted(set(graph.subjects(RDF.type, DCAT.Dataset)), key=str)
    if len(subjects) > MAX_RECORDS:
        raise HarvestError(f"{source[:200]}: {len(subjects)} records, more than the {MAX_RECORDS} of one harvest")
    report.records = len(subjects)
    existing = {
        doc.get("harvest_uri"): doc
        for doc in catalog.active_documents(caller)
        if doc.get("owner_org") == org["id"] and doc.get("harvest_source") == source
    }
    seen: set[str] = set()
    for subject in subjects:
        seen.add(str(subject))  # a record still in the source is not "removed", even if skipped for its errors
        package, errors = record_package(graph, subject, source, org["id"])
        if package is None:
            report.errors.extend(errors)
            continue
        current = existing.get(package["harvest_uri"])
        try:
            if current is None:
                report.created.append(catalog.package_create(caller, package)["name"])
            elif _unchanged(current, package):
                report.unchanged.append(current["name"])
            else:
                package["id"], package["name"] = current["id"], current["name"]
                report.updated.append(catalog.package_update(caller, package)["name"])
        except ValidationFailed as error:  # the catalog's own checks (one transaction: nothing was published)
            for prop, problems in error.errors.items():
                report.errors.append(RecordError(package["harvest_uri"], prop, "; ".join(problems)))
    report.removed = sorted(str(doc["name"]) for uri, doc in existing.items() if uri not in seen)
    report.seconds = round(time.monotonic() - started, 3)
    return report
