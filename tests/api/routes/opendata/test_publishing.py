"""The schema and DCAT-AP routes over HTTP, in process: badges, validation reports, shipped schemas, the export."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from rdflib import Graph
from rdflib.namespace import DCAT, RDF

from massalia.api import create_app
from massalia.api.settings import ApiSettings
from massalia.config import Home
from massalia.governance import Caller, operator_principal
from massalia.opendata.catalog import Catalog, Upload

ACTION = "/api/v1/opendata/api/3/action"
IRVE = "etalab/schema-irve-statique@2.3.0"
PASSWORD = "correct horse battery staple, in Marseille"  # noqa: S105 (a test account of a throwaway home)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    home = Home(tmp_path_factory.mktemp("odpub") / "home").ensure()
    home.mark_initialized("duckdb")
    app = create_app(home, settings=ApiSettings())
    operator = Caller(operator_principal(), app.state.massalia.governance, "test")
    catalog = Catalog.for_home(home)
    app.state.massalia.governance.create_user("jeanne", PASSWORD, ["researcher"], actor=operator_principal())
    catalog.organization_create(
        operator, {"name": "region-sud", "title": "Région Sud", "users": [{"name": "jeanne", "capacity": "editor"}]}
    )
    dataset = catalog.package_create(operator, {"name": "bornes", "title": "Bornes", "owner_org": "region-sud"})
    resource = catalog.resource_create(
        operator,
        {"package_id": dataset["id"], "format": "CSV", "schema": IRVE},
        Upload("bornes.csv", io.BytesIO(b"nom_amenageur\nX\n")),
    )
    with TestClient(app, base_url="https://testserver") as client:
        yield client, resource["id"]


def test_anyone_reads_the_badge_and_the_report(site: tuple[TestClient, str]) -> None:
    client, resource = site
    badge = client.get(f"/api/v1/opendata/resource/{resource}/badge.svg", params={"lang": "en"})
    assert badge.status_code == 200 and badge.headers["content-type"].startswith("image/svg+xml")
    assert "invalid (" in badge.text
    shown = client.get(f"{ACTION}/resource_validation_show", params={"resource_id": resource}).json()["result"]
    assert shown["status"] == "failure" and shown["report"]["error_count"] >= 1
    assert client.get(f"{ACTION}/resource_show", params={"id": resource}).json()["result"]["validation_status"] == (
        "failure"
    )
    assert client.get("/api/v1/opendata/resource/nope/badge.svg").status_code == 404


def test_the_shipped_schemas_are_listed(site: tuple[TestClient, str]) -> None:
    client, _ = site
    listed = client.get(f"{ACTION}/schema_list").json()["result"]
    assert IRVE in {item["schema"] for item in listed}
    shown = client.get(f"{ACTION}/schema_show", params={"id": IRVE}).json()["result"]
    assert shown["descriptor"]["name"] == "schema-irve-statique"
    unknown = client.get(f"{ACTION}/schema_show", params={"id": "etalab/schema-irve-statique@0.0.1"})
    assert unknown.status_code == 409 and "shipped: 2.3.0" in unknown.text


@pytest.mark.parametrize(("suffix", "media", "parser"), [("ttl", "text/turtle", "turtle"),
                                                          ("rdf", "application/rdf+xml", "xml"),
                                                          ("jsonld", "application/ld+json", "json-ld")])  # fmt: skip
def test_the_dcat_export_is_served_in_each_format(
    site: tuple[TestClient, str], suffix: str, media: str, parser: str
) -> None:
    client, _ = site
    response = client.get(f"/api/v1/opendata/catalog.{suffix}")
    assert response.status_code == 200 and response.headers["content-type"].startswith(media)
    graph = Graph().parse(data=response.content, format=parser)
    assert len(set(graph.subjects(RDF.type, DCAT.Dataset))) == 1
    assert client.get(f"/api/v1/opendata/catalog.{suffix}", params={"page_size": 0}).status_code == 422


def test_one_dataset_is_served_in_dcat(site: tuple[TestClient, str]) -> None:
    client, _ = site
    response = client.get("/api/v1/opendata/dataset/bornes.ttl")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/turtle")
    graph = Graph().parse(data=response.content, format="turtle")
    assert len(set(graph.subjects(RDF.type, DCAT.Dataset))) == 1
    assert len(set(graph.subjects(RDF.type, DCAT.Distribution))) == 1
    assert client.get("/api/v1/opendata/dataset/no-such.jsonld").status_code == 404


def test_a_producer_publishes_with_a_schema_and_strict_refusals_publish_nothing(site: tuple[TestClient, str]) -> None:
    client, _ = site
    login = client.post("/api/v1/auth/login", json={"username": "jeanne", "password": PASSWORD})
    assert login.status_code == 200, login.text
    headers = {"X-CSRF-Token": login.json()["csrf_token"]}
    try:
        before = client.get(f"{ACTION}/package_show", params={"id": "bornes"}).json()["result"]
        refused = client.post(
            f"{ACTION}/resource_create",
            data={"package_id": "bornes", "schema": IRVE, "validation": "strict", "format": "CSV"},
            files={"upload": ("bornes.csv", b"nom_amenageur\nX\n", "text/csv")},
            headers=headers,
        )
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["__type"] == "Validation Error" and "nothing was published" in error["validation"][0]
        after = client.get(f"{ACTION}/package_show", params={"id": "bornes"}).json()["result"]
        assert after["massalia_version"] == before["massalia_version"]
        unknown = client.post(
            f"{ACTION}/resource_create",
            data={"package_id": "bornes", "schema": "etalab/schema-irve-statique@9.0.0", "url": "https://x.org/a.csv"},
            headers=headers,
        )
        assert unknown.status_code == 409 and "shipped: 2.3.0" in unknown.text
    finally:
        client.post("/api/v1/auth/logout", headers=headers)
