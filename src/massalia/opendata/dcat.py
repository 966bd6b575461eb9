"""DCAT-AP 3 export of the open-data catalog (Turtle, RDF/XML, JSON-LD), paged with Hydra like ckanext-dcat.

The catalog (``dcat:Catalog``) lists the active datasets, a page at a time; each dataset (``dcat:Dataset``) has
its title, description, keywords, publisher (the organization, a ``foaf:Agent``), dates, update frequency (the EU
frequency vocabulary), temporal coverage, licence and version; each resource is a ``dcat:Distribution`` with its
access URL, download URL for uploads, format, byte size, SPDX SHA-256 checksum and, when it declares a shipped
Table Schema, ``dct:conformsTo`` that schema. The export is validated in CI against the DCAT-AP 3.0.1 SHACL shapes
(``tests/opendata/test_dcat.py``).

URIs are the site's own (``<site>/api/v1/opendata/dataset/<id>``...), so a harvester re-reading the export
(:mod:`massalia.opendata.harvest`) recognises a record it already has.

Examples
--------
>>> from rdflib import Graph
>>> g = catalog_graph([], site="https://data.example.org", page=1, page_size=10, total=0)
>>> len(g) > 0
True
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from massalia.opendata.models import LICENSES, ValidationFailed

if TYPE_CHECKING:
    from massalia.governance import Caller
    from massalia.opendata.catalog import Catalog

HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
FREQ = Namespace("http://publications.europa.eu/resource/authority/frequency/")
DCAT_VERSION = URIRef("http://www.w3.org/ns/dcat#version")
SITE_PATH = "/api/v1/opendata"
FORMATS: dict[str, tuple[str, str]] = {
    "ttl": ("turtle", "text/turtle"),
    "rdf": ("xml", "application/rdf+xml"),
    "xml": ("xml", "application/rdf+xml"),
    "jsonld": ("json-ld", "application/ld+json"),
}
"""Export formats by extension: rdflib's serializer name and the media type served."""
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100
FREQUENCIES: dict[str, str] = {
    "continuous": "CONT",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "monthly": "MONTHLY",
    "quarterly": "QUARTERLY",
    "semiannual": "ANNUAL_2",
    "annual": "ANNUAL",
    "irregular": "IRREG",
    "punctual": "NEVER",
    "unknown": "UNKNOWN",
}
"""Massalia's update frequencies as the EU frequency vocabulary's codes."""
SCHEMA_BASE = "https://schema.data.gouv.fr/"
"""Where a shipped schema's public identifier points (``dct:conformsTo``; never fetched by Massalia)."""


def _dataset_uri(site: str, ident: str) -> URIRef:
    return URIRef(f"{site}{SITE_PATH}/dataset/{ident}")


def _datetime(value: Any) -> Literal | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return Literal(parsed.replace(microsecond=0).isoformat(), datatype=XSD.dateTime)


def _date(value: Any) -> Literal | None:
    try:
        return Literal(dt.date.fromisoformat(str(value)).isoformat(), datatype=XSD.date) if value else None
    except ValueError:
        return None


def _text(value: Any) -> str:
    return str(value or "").strip()


def add_dataset(graph: Graph, document: dict[str, Any], site: str) -> URIRef:
    """Add one dataset (a CKAN package document) and its distributions to ``graph``; return its URI."""
    uri = _dataset_uri(site, document["id"])
    title = _text(document.get("title")) or document["name"]
    graph.add((uri, RDF.type, DCAT.Dataset))
    graph.add((uri, DCTERMS.identifier, Literal(document["id"])))
    graph.add((uri, DCTERMS.title, Literal(title, lang="fr")))
    graph.add((uri, DCTERMS.description, Literal(_text(document.get("notes")) or title, lang="fr")))
    for tag in document.get("tags", []):
        graph.add((uri, DCAT.keyword, Literal(tag["name"], lang="fr")))
    for stamp, prop in (("metadata_created", DCTERMS.issued), ("metadata_modified", DCTERMS.modified)):
        literal = _datetime(document.get(stamp))
        if literal is not None:
            graph.add((uri, prop, literal))
    if document.get("massalia_version"):
        graph.add((uri, DCAT_VERSION, Literal(str(document["massalia_version"]))))
    organization = document.get("organization")
    if organization:
        agent = URIRef(f"{site}{SITE_PATH}/organization/{organization['id']}")
        graph.add((uri, DCTERMS.publisher, agent))
        graph.add((agent, RDF.type, FOAF.Agent))
        graph.add((agent, FOAF.name, Literal(organization.get("title") or organization["name"])))
    frequency = FREQUENCIES.get(str(document.get("frequency") or ""))
    if frequency:
        graph.add((uri, DCTERMS.accrualPeriodicity, FREQ[frequency]))
        graph.add((FREQ[frequency], RDF.type, DCTERMS.Frequency))
    start, end = _date(document.get("temporal_start")), _date(document.get("temporal_end"))
    if start is not None or end is not None:
        period = BNode()
        graph.add((uri, DCTERMS.temporal, period))
        graph.add((period, RDF.type, DCTERMS.PeriodOfTime))
        if start is not None:
            graph.add((period, DCAT.startDate, start))
        if end is not None:
            graph.add((period, DCAT.endDate, end))
    if _text(document.get("url")).startswith(("http://", "https://")):
        page = URIRef(_text(document["url"]))
        graph.add((uri, DCAT.landingPage, page))
        graph.add((page, RDF.type, FOAF.Document))
    licence = next((lic for lic in LICENSES if lic["id"] == document.get("license_id") and lic["url"]), None)
    for resource in document.get("resources", []):
        graph.add((uri, DCAT.distribution, add_distribution(graph, resource, document["id"], site, licence)))
    return uri


def add_distribution(
    graph: Graph, resource: dict[str, Any], dataset_id: str, site: str, licence: dict[str, Any] | None
) -> URIRef:
    """Add one resource as a ``dcat:Distribution``; return its URI."""
    uri = URIRef(f"{site}{SITE_PATH}/dataset/{dataset_id}/resource/{resource['id']}")
    graph.add((uri, RDF.type, DCAT.Distribution))
    url = _text(resource.get("url"))
    if url.startswith("/"):
        url = site + url
    access = URIRef(url) if url.startswith(("http://", "https://")) else uri
    graph.add((uri, DCAT.accessURL, access))
    if resource.get("url_type") == "upload" and url:
        graph.add((uri, DCAT.downloadURL, URIRef(url)))
    if _text(resource.get("name")):
        graph.add((uri, DCTERMS.title, Literal(_text(resource["name"]), lang="fr")))
    if _text(resource.get("description")):
        graph.add((uri, DCTERMS.description, Literal(_text(resource["description"]), lang="fr")))
    if _text(resource.get("format")):
        kind = URIRef(f"http://publications.europa.eu/resource/authority/file-type/{_text(resource['format']).upper()}")
        graph.add((uri, DCTERMS.format, kind))
        graph.add((kind, RDF.type, DCTERMS.MediaTypeOrExtent))
    if resource.get("size") is not None:
        graph.add((uri, DCAT.byteSize, Literal(int(resource["size"]), datatype=XSD.nonNegativeInteger)))
    digest = _text(resource.get("hash")).removeprefix("sha256:")
    if len(digest) == 64:
        checksum = BNode()
        graph.add((uri, SPDX.checksum, checksum))
        graph.add((checksum, RDF.type, SPDX.Checksum))
        graph.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
        graph.add((checksum, SPDX.checksumValue, Literal(digest, datatype=XSD.hexBinary)))
    schema = _text(resource.get("schema_id"))
    if schema and "@" in schema:
        ident, _, version = schema.partition("@")
        standard = URIRef(f"{SCHEMA_BASE}{ident}/{version}/")
        graph.add((uri, DCTERMS.conformsTo, standard))
        graph.add((standard, RDF.type, DCTERMS.Standard))
    if licence is not None:
        document = URIRef(str(licence["url"]))
        graph.add((uri, DCTERMS.license, document))
        graph.add((document, RDF.type, DCTERMS.LicenseDocument))
    modified = _datetime(resource.get("last_modified"))
    if modified is not None:
        graph.add((uri, DCTERMS.modified, modified))
    return uri


def catalog_graph(
    documents: list[dict[str, Any]],
    *,
    site: str,
    page: int,
    page_size: int,
    total: int,
    fmt: str = "ttl",
    title: str = "Massalia — données ouvertes",
    description: str = "Le catalogue des données ouvertes publiées sur cette plateforme.",
) -> Graph:
    """The DCAT-AP graph of one page of the catalog (``documents``), with Hydra paging over ``total`` datasets."""
    graph = Graph()
    for prefix, namespace in (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("hydra", HYDRA), ("spdx", SPDX)):
        graph.bind(prefix, namespace)
    base = f"{site}{SITE_PATH}"
    catalog = URIRef(f"{base}/catalog")
    graph.add((catalog, RDF.type, DCAT.Catalog))
    graph.add((catalog, DCTERMS.title, Literal(title, lang="fr")))
    graph.add((catalog, DCTERMS.description, Literal(description, lang="fr")))
    publisher = URIRef(f"{base}/organization/site")
    graph.add((catalog, DCTERMS.publisher, publisher))
    graph.add((publisher, RDF.type, FOAF.Agent))
    graph.add((publisher, FOAF.name, Literal("Massalia")))
    homepage = URIRef(f"{site}/")
    graph.add((catalog, FOAF.homepage, homepage))
    graph.add((homepage, RDF.type, FOAF.Document))
    for document in documents:
        graph.add((catalog, DCAT.dataset, add_dataset(graph, document, site)))
    last = max(1, -(-total // page_size))
    size = f"&page_size={page_size}" if page_size != DEFAULT_PAGE_SIZE else ""

    def link(number: int) -> str:
        return f"{base}/catalog.{fmt}?page={number}{size}"

    paging = URIRef(link(page))
    graph.add((paging, RDF.type, HYDRA.PagedCollection))
    graph.add((paging, HYDRA.totalItems, Literal(total, datatype=XSD.integer)))
    graph.add((paging, HYDRA.itemsPerPage, Literal(page_size, datatype=XSD.integer)))
    graph.add((paging, HYDRA.firstPage, Literal(link(1))))
    graph.add((paging, HYDRA.lastPage, Literal(link(last))))
    if page < last:
        graph.add((paging, HYDRA.nextPage, Literal(link(page + 1))))
    if page > 1:
        graph.add((paging, HYDRA.previousPage, Literal(link(page - 1))))
    return graph


def serialize(graph: Graph, fmt: str) -> tuple[bytes, str]:
    """The graph's bytes in an export format and their media type."""
    if fmt not in FORMATS:
        raise ValidationFailed({"format": [f"must be one of {', '.join(FORMATS)}"]})
    name, media = FORMATS[fmt]
    data = graph.serialize(format=name, encoding="utf-8")
    return data, media


def export(
    caller: Caller,
    catalog: Catalog,
    *,
    site: str,
    fmt: str = "ttl",
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> tuple[bytes, str]:
    """One page of the public catalog in DCAT-AP 3 (``opendata.catalog.read``: what anyone may read).

    Datasets come in name order; ``page`` counts from 1, ``page_size`` is at most :data:`MAX_PAGE_SIZE`.
    """
    if fmt not in FORMATS:
        raise ValidationFailed({"format": [f"must be one of {', '.join(FORMATS)}"]})
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValidationFailed({"page_size": [f"must be from 1 to {MAX_PAGE_SIZE}"]})
    if not 1 <= page <= 10**6:
        raise ValidationFailed({"page": ["must be from 1 to 1000000"]})
    documents = sorted(catalog.active_documents(caller), key=lambda d: str(d["name"]))
    chosen = documents[(page - 1) * page_size : page * page_size]
    graph = catalog_graph(chosen, site=site, page=page, page_size=page_size, total=len(documents), fmt=fmt)
    return serialize(graph, fmt)


def export_dataset(caller: Caller, catalog: Catalog, ref: str, *, site: str, fmt: str = "ttl") -> tuple[bytes, str]:
    """One dataset in DCAT-AP 3 (``opendata.catalog.read``; a deleted dataset only for its producers)."""
    if fmt not in FORMATS:
        raise ValidationFailed({"format": [f"must be one of {', '.join(FORMATS)}"]})
    document = catalog.package_show(caller, ref)
    graph = Graph()
    for prefix, namespace in (("dcat", DCAT), ("dct", DCTERMS), ("foaf", FOAF), ("spdx", SPDX)):
        graph.bind(prefix, namespace)
    add_dataset(graph, document, site)
    return serialize(graph, fmt)
