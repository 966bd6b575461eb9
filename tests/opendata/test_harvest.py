"""The DCAT harvester: per-record errors, nothing half-imported, re-harvest updates, removed records reported.

Attacks: a producer harvesting into another organization, a URL (or a redirect) reaching a local file, a huge
or slow endpoint, endless redirects, XML entity expansion and external entities in RDF/XML, a remote JSON-LD
context.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opendata_world import OpenDataWorld
from rdflib import Graph

from massalia.governance import AccessDenied
from massalia.ledger import TransparencyLog
from massalia.opendata import dcat
from massalia.opendata.harvest import HarvestError, harvest, read_source

SOURCE = """
@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

<https://autre.example.org/dataset/qualite-air> a dcat:Dataset ;
    dct:title "Qualité de l'air"@fr ;
    dct:description "Mesures horaires."@fr ;
    dct:issued "2024-02-01"^^xsd:date ;
    dct:modified "2025-03-04T10:00:00"^^xsd:dateTime ;
    dcat:keyword "air", "pollution" ;
    dct:accrualPeriodicity <http://publications.europa.eu/resource/authority/frequency/DAILY> ;
    dct:temporal [ a dct:PeriodOfTime ; dcat:startDate "2020-01-01"^^xsd:date ] ;
    dcat:distribution <https://autre.example.org/dataset/qualite-air/csv> .
<https://autre.example.org/dataset/qualite-air/csv> a dcat:Distribution ;
    dct:title "Mesures (CSV)" ;
    dcat:accessURL <https://autre.example.org/files/air.csv> ;
    dct:format <http://publications.europa.eu/resource/authority/file-type/CSV> ;
    dct:license <https://www.etalab.gouv.fr/licence-ouverte-open-licence/> .

<https://autre.example.org/dataset/date-fausse> a dcat:Dataset ;
    dct:title "Date fausse" ;
    dct:issued "le 3 mars"^^xsd:date ;
    dcat:distribution [ a dcat:Distribution ; dcat:accessURL <https://autre.example.org/files/x.csv> ] .

<https://autre.example.org/dataset/sans-acces> a dcat:Dataset ;
    dct:title "Sans accès" ;
    dcat:distribution [ a dcat:Distribution ; dct:title "rien" ] .
"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dcat="http://www.w3.org/ns/dcat#"
         xmlns:dct="http://purl.org/dc/terms/">
  <dcat:Dataset rdf:about="https://x.example.org/d"><dct:title>&lol3;</dct:title></dcat:Dataset>
</rdf:RDF>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [ <!ENTITY secret SYSTEM "file:///etc/hostname"> ]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dcat="http://www.w3.org/ns/dcat#"
         xmlns:dct="http://purl.org/dc/terms/">
  <dcat:Dataset rdf:about="https://x.example.org/d"><dct:title>&secret;</dct:title></dcat:Dataset>
</rdf:RDF>"""


class _Handler(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 (shared by the test server's threads on purpose)
    pages: dict[str, bytes] = {}  # noqa: RUF012 (paths a test serves, e.g. the pages of an export)

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path in type(self).pages:
            body = type(self).pages[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "text/turtle")
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/catalog.ttl":
            body = SOURCE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/turtle")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/to-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.end_headers()
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.end_headers()
        elif self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/turtle")
            self.end_headers()
            try:
                for _ in range(10_000):
                    self.wfile.write(b"# " + b"x" * 65_533 + b"\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "text/turtle")
            self.end_headers()
            try:
                for _ in range(40):
                    self.wfile.write(b"#\n")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self.send_response(404)
            self.end_headers()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _names(world: OpenDataWorld) -> list[str]:
    return world.catalog.package_list(world.caller("admin"))


def test_a_harvest_imports_good_records_and_reports_bad_ones_whole(world: OpenDataWorld, server: str) -> None:
    report = harvest(world.caller("alice"), world.catalog, f"{server}/catalog.ttl", "region-sud")
    assert report.records == 3 and len(report.created) == 1 and not report.updated
    errors = {(e.record.rsplit("/", 1)[-1], e.property) for e in report.errors}
    assert errors == {
        ("date-fausse", "dct:issued"),
        ("sans-acces", f"dcat:distribution {_bnode(report)} dcat:accessURL"),
    }
    assert "le 3 mars" in next(e.problem for e in report.errors if e.property == "dct:issued")
    assert _names(world) == report.created  # the two bad records left nothing behind
    shown = world.catalog.package_show(world.caller("anonymous"), report.created[0])
    assert shown["harvest_uri"] == "https://autre.example.org/dataset/qualite-air"
    assert shown["harvest_source"] == f"{server}/catalog.ttl"
    assert (shown["title"], shown["frequency"], shown["license_id"]) == ("Qualité de l'air", "daily", "etalab-2.0")
    assert shown["temporal_start"] == "2020-01-01"
    assert [t["name"] for t in shown["tags"]] == ["air", "pollution"]
    assert [(r["url"], r["format"]) for r in shown["resources"]] == [("https://autre.example.org/files/air.csv", "CSV")]


def _bnode(report: object) -> str:
    problem = next(e for e in report.errors if e.record.endswith("sans-acces"))  # type: ignore[attr-defined]
    return problem.property.split(" ")[1]


def test_a_re_harvest_updates_instead_of_duplicating_and_reports_removed_records(
    world: OpenDataWorld, tmp_path: Path
) -> None:
    source = tmp_path / "source.ttl"
    source.write_text(SOURCE, encoding="utf-8")
    first = harvest(world.caller("alice"), world.catalog, str(source), "region-sud")
    again = harvest(world.caller("alice"), world.catalog, str(source), "region-sud")
    assert again.unchanged == first.created and not again.created and not again.updated
    source.write_text(SOURCE.replace("Qualité de l'air", "Qualité de l'air ambiant"), encoding="utf-8")
    changed = harvest(world.caller("alice"), world.catalog, str(source), "region-sud")
    assert changed.updated == first.created and not changed.created
    shown = world.catalog.package_show(world.caller("anonymous"), first.created[0])
    assert shown["title"] == "Qualité de l'air ambiant" and shown["massalia_version"] == 2
    assert len(_names(world)) == 1
    source.write_text(SOURCE.split("<https://autre.example.org/dataset/date-fausse>")[0], encoding="utf-8")
    source.write_text(
        source.read_text(encoding="utf-8").replace("dataset/qualite-air>", "dataset/autre>", 1), encoding="utf-8"
    )
    gone = harvest(world.caller("alice"), world.catalog, str(source), "region-sud")
    assert gone.removed == first.created and len(gone.created) == 1


def test_our_own_export_harvests_in_every_format(world: OpenDataWorld, tmp_path: Path) -> None:
    alice = world.caller("alice")
    for name in ("velos", "parkings"):
        made = world.catalog.package_create(
            alice, {"name": name, "title": name.title(), "owner_org": "region-sud", "notes": "n"}
        )
        world.catalog.resource_create(alice, {"package_id": made["id"], "url": f"https://example.org/{name}.csv"})
    data, _ = dcat.export(world.caller("anonymous"), world.catalog, site="https://sud.example.org", fmt="ttl")
    graph = Graph().parse(data=data, format="turtle")
    for suffix, fmt in (("ttl", "turtle"), ("rdf", "xml"), ("jsonld", "json-ld")):
        path = tmp_path / f"export.{suffix}"
        path.write_bytes(graph.serialize(format=fmt, encoding="utf-8"))
        report = harvest(world.caller("bob"), world.catalog, str(path), "ville-nice")
        assert (len(report.created), report.errors) == (2, []), (suffix, report.as_dict())
    assert len(_names(world)) == 2 + 3 * 2  # each format is its own source: its own harvested datasets


def test_the_same_source_harvests_into_two_organizations_apart(world: OpenDataWorld, tmp_path: Path) -> None:
    source = tmp_path / "source.ttl"
    source.write_text(SOURCE, encoding="utf-8")
    sud = harvest(world.caller("alice"), world.catalog, str(source), "region-sud")
    nice = harvest(world.caller("bob"), world.catalog, str(source), "ville-nice")
    assert len(sud.created) == len(nice.created) == 1 and sud.created != nice.created
    again = harvest(world.caller("bob"), world.catalog, str(source), "ville-nice")
    assert again.unchanged == nice.created and not again.removed


def test_a_deeply_nested_json_ld_source_is_a_clear_error(world: OpenDataWorld, tmp_path: Path) -> None:
    path = tmp_path / "deep.jsonld"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HarvestError, match="nested too deeply"):
        harvest(world.caller("alice"), world.catalog, str(path), "region-sud")


def test_a_paged_endpoint_is_followed_page_by_page(world: OpenDataWorld, server: str) -> None:
    alice = world.caller("alice")
    for name in ("velos", "parkings", "bornes"):
        world.catalog.package_create(alice, {"name": name, "title": name.title(), "owner_org": "region-sud"})
    for page in (1, 2, 3):
        data, _ = dcat.export(world.caller("anonymous"), world.catalog, site=server, fmt="ttl", page=page, page_size=1)
        _Handler.pages[f"/api/v1/opendata/catalog.ttl?page={page}&page_size=1"] = data
    _Handler.hits.clear()
    first = f"{server}/api/v1/opendata/catalog.ttl?page=1&page_size=1"
    report = harvest(world.caller("bob"), world.catalog, first, "ville-nice")
    assert (report.records, len(report.created), report.errors) == (3, 3, [])
    assert _Handler.hits == [f"/api/v1/opendata/catalog.ttl?page={page}&page_size=1" for page in (1, 2, 3)]


def test_attack_a_producer_cannot_harvest_into_another_organization(world: OpenDataWorld, server: str) -> None:
    _Handler.hits.clear()
    for caller in ("bob", "carol", "anonymous"):
        with pytest.raises(AccessDenied):
            harvest(world.caller(caller), world.catalog, f"{server}/catalog.ttl", "region-sud")
    assert _Handler.hits == []  # refused before the source was read
    assert _names(world) == []
    with TransparencyLog(world.home.ledger, readonly=True) as log:
        entries = [json.dumps(log.get(i).entry) for i in range(log.size)]
    denied = [e for e in entries if "opendata.harvest.run" in e and '"denied"' in e]
    assert any("od-bob" in e for e in denied) and any("od-carol" in e for e in denied)


def test_attack_a_url_never_reaches_a_local_file(world: OpenDataWorld, server: str) -> None:
    for source in ("file:///etc/passwd", "ftp://127.0.0.1/x.ttl", "gopher://127.0.0.1/x"):
        with pytest.raises(HarvestError, match="only a file path or an http"):
            read_source(source)
    with pytest.raises(HarvestError, match="not an http"):
        read_source(f"{server}/to-file")
    with pytest.raises(HarvestError, match="more than 3 redirects"):
        read_source(f"{server}/loop")
    with pytest.raises(HarvestError, match="not an http"):
        harvest(world.caller("alice"), world.catalog, f"{server}/to-file", "region-sud")


def test_attack_a_huge_or_slow_endpoint_is_cut_off(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(HarvestError, match="more than the 1000000 bytes"):
        read_source(f"{server}/huge", max_bytes=1_000_000)
    with pytest.raises(HarvestError, match="not read within 1 s"):
        read_source(f"{server}/slow", timeout=1.0)
    assert time.monotonic() - started < 6


@pytest.mark.parametrize(("name", "payload"), [("billion-laughs.rdf", BILLION_LAUGHS), ("xxe.rdf", EXTERNAL_ENTITY)])
def test_attack_xml_entities_are_refused(world: OpenDataWorld, tmp_path: Path, name: str, payload: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(payload)
    with pytest.raises(HarvestError, match="DTD or entities is refused"):
        harvest(world.caller("alice"), world.catalog, str(path), "region-sud")
    assert _names(world) == []


def test_attack_a_remote_json_ld_context_is_not_fetched(world: OpenDataWorld, tmp_path: Path, server: str) -> None:
    path = tmp_path / "remote.jsonld"
    _Handler.hits.clear()
    path.write_text(json.dumps({"@context": f"{server}/context.jsonld", "@id": "https://x.example.org/d"}))
    with pytest.raises(HarvestError, match="remote JSON-LD @context"):
        harvest(world.caller("alice"), world.catalog, str(path), "region-sud")
    assert _Handler.hits == []
