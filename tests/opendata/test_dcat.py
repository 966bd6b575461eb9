"""The DCAT-AP 3 export validates against the DCAT-AP 3.0.1 SHACL shapes (shipped in the shared reference folder).

The shapes are ``html-shacl/shapes.ttl`` (mandatory properties, cardinalities, datatypes) and ``range.ttl`` (the
class of each property's values); the release's single-file ``dcat-ap-SHACL.ttl`` does not load (SEMICeu/DCAT-AP
#448, see ``dcat-ap/SOURCE.txt``). A test removes each mandatory property in turn and sees the violation, so the
validation cannot pass vacuously.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from opendata_world import OpenDataWorld
from pyshacl import validate
from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, SH

from massalia.opendata import dcat
from massalia.opendata.catalog import Upload
from massalia.opendata.models import ValidationFailed
from reference_data import REFERENCE

SITE = "https://data.example.org"


def _reference() -> Path:
    """The shared reference folder, found as every other test finds it (``tests/reference_data.py``)."""
    if not (REFERENCE / "opendata" / "dcat-ap").is_dir():
        pytest.fail(f"the shared reference folder with opendata/dcat-ap is not found at {REFERENCE}")
    return REFERENCE


@pytest.fixture(scope="module")
def shapes() -> Graph:
    folder = _reference() / "opendata" / "dcat-ap" / "3.0.1" / "html-shacl"
    graph = Graph()
    graph.parse(folder / "shapes.ttl")
    graph.parse(folder / "range.ttl")
    return graph


def _conforms(graph: Graph, shapes: Graph) -> tuple[bool, Graph]:
    conforms, report, _ = validate(graph, shacl_graph=shapes, inference="none", advanced=False)
    return bool(conforms), report


def _published(world: OpenDataWorld) -> list[dict]:
    alice = world.caller("alice")
    catalog = world.catalog
    full = catalog.package_create(
        alice,
        {
            "name": "bornes-irve",
            "title": "Bornes de recharge",
            "notes": "Points de recharge de la région.",
            "owner_org": "region-sud",
            "license_id": "etalab-2.0",
            "tags": [{"name": "mobilite"}, {"name": "irve"}],
            "frequency": "monthly",
            "temporal_start": "2024-01-01",
            "temporal_end": "2025-12-31",
            "url": "https://www.maregionsud.fr/bornes",
        },
    )
    catalog.resource_create(
        alice,
        {"package_id": full["id"], "format": "CSV", "schema": "etalab/schema-irve-statique@2.3.0"},
        Upload("bornes.csv", io.BytesIO(b"a,b\n1,2\n")),
    )
    catalog.resource_create(alice, {"package_id": full["id"], "url": "https://example.org/api", "name": "API"})
    catalog.package_create(alice, {"name": "minimal", "owner_org": "region-sud"})  # no title, no notes
    gone = catalog.package_create(alice, {"name": "retire", "title": "Retiré", "owner_org": "region-sud"})
    catalog.package_delete(alice, gone["id"])
    return [catalog.package_show(alice, name) for name in ("bornes-irve", "minimal")]


@pytest.fixture
def exported(world: OpenDataWorld) -> Graph:
    _published(world)
    data, media = dcat.export(world.caller("anonymous"), world.catalog, site=SITE, fmt="ttl")
    assert media == "text/turtle"
    return Graph().parse(data=data, format="turtle")


def test_the_export_conforms_to_dcat_ap_3_in_every_format(world: OpenDataWorld, shapes: Graph) -> None:
    _published(world)
    for fmt, parser in (("ttl", "turtle"), ("rdf", "xml"), ("jsonld", "json-ld")):
        data, _ = dcat.export(world.caller("anonymous"), world.catalog, site=SITE, fmt=fmt)
        graph = Graph().parse(data=data, format=parser)
        conforms, report = _conforms(graph, shapes)
        assert conforms, f"{fmt}: {report.serialize(format='turtle')}"
        datasets = set(graph.subjects(RDF.type, DCAT.Dataset))
        assert len(datasets) == 2, f"{fmt}: the deleted dataset must not be exported"
    checksum = next(graph.objects(predicate=URIRef("http://spdx.org/rdf/terms#checksumValue")))
    assert len(str(checksum)) == 64
    conforms_to = {str(o) for o in graph.objects(predicate=DCTERMS.conformsTo)}
    assert conforms_to == {"https://schema.data.gouv.fr/etalab/schema-irve-statique/2.3.0/"}
    one, _ = dcat.export_dataset(world.caller("anonymous"), world.catalog, "bornes-irve", site=SITE, fmt="ttl")
    single = Graph().parse(data=one, format="turtle")
    assert _conforms(single, shapes)[0] and len(set(single.subjects(RDF.type, DCAT.Distribution))) == 2


@pytest.mark.parametrize(
    ("klass", "prop"),
    [
        (DCAT.Catalog, DCTERMS.title),
        (DCAT.Catalog, DCTERMS.description),
        (DCAT.Catalog, DCTERMS.publisher),
        (DCAT.Dataset, DCTERMS.title),
        (DCAT.Dataset, DCTERMS.description),
        (DCAT.Distribution, DCAT.accessURL),
        (FOAF.Agent, FOAF.name),
    ],
)
def test_dropping_a_mandatory_property_is_a_violation(
    exported: Graph, shapes: Graph, klass: URIRef, prop: URIRef
) -> None:
    assert _conforms(exported, shapes)[0]
    subject = next(iter(exported.subjects(RDF.type, klass)))
    assert (subject, prop, None) in exported
    exported.remove((subject, prop, None))
    conforms, report = _conforms(exported, shapes)
    assert not conforms
    paths = set(report.objects(predicate=SH.resultPath))
    focus = set(report.objects(predicate=SH.focusNode))
    assert prop in paths and subject in focus


def test_an_ill_typed_value_is_a_violation(exported: Graph, shapes: Graph) -> None:
    # The 3.0.1 shapes check a distribution's byte size type. They do not check a dataset's dct:issued type:
    # upstream wrote `sh:shape` for `sh:node` there (html-shacl/shapes.ttl lines 373 and 403), so the harvester
    # checks dates itself (tests/opendata/test_harvest.py).
    subject = next(iter(exported.subjects(DCAT.byteSize, None)))
    exported.remove((subject, DCAT.byteSize, None))
    exported.add((subject, DCAT.byteSize, Literal("huit octets")))
    conforms, report = _conforms(exported, shapes)
    assert not conforms and DCAT.byteSize in set(report.objects(predicate=SH.resultPath))


def test_the_export_is_paged_with_hydra(world: OpenDataWorld) -> None:
    _published(world)
    hydra = dcat.HYDRA
    pages = []
    for page in (1, 2):
        data, _ = dcat.export(world.caller("anonymous"), world.catalog, site=SITE, fmt="ttl", page=page, page_size=1)
        pages.append(Graph().parse(data=data, format="turtle"))
    names = [{str(o) for o in g.objects(predicate=DCTERMS.identifier)} for g in pages]
    assert all(len(n) == 1 for n in names) and names[0] != names[1]
    first, second = pages
    assert int(next(first.objects(predicate=hydra.totalItems))) == 2
    assert str(next(first.objects(predicate=hydra.nextPage))).endswith("catalog.ttl?page=2&page_size=1")
    assert (None, hydra.nextPage, None) not in second
    assert str(next(second.objects(predicate=hydra.previousPage))).endswith("catalog.ttl?page=1&page_size=1")
    with pytest.raises(ValidationFailed):
        dcat.export(world.caller("anonymous"), world.catalog, site=SITE, fmt="ttl", page_size=5000)
    with pytest.raises(ValidationFailed):
        dcat.export(world.caller("anonymous"), world.catalog, site=SITE, fmt="n3")
