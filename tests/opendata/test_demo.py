"""The generated demo catalog: published through the guarded services, searchable, its IRVE sample queryable."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from opendata_world import OpenDataWorld

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied, Caller
from massalia.ledger import TransparencyLog
from massalia.opendata import datastore, schemas
from massalia.opendata.certify import Certifier, ledger_directory, verify_publication
from massalia.opendata.demo import IRVE_SCHEMA, build_demo
from massalia.opendata.search import search_documents


def test_the_demo_catalog_is_published_searchable_and_idempotent(
    world: OpenDataWorld, engine: DuckDBEngine, reference: Path
) -> None:
    admin, anonymous = world.caller("admin"), world.caller("anonymous")
    report = build_demo(admin, world.catalog, engine, datasets=12, reference=reference)
    assert report.organizations == 7 - 1 and report.groups == 8 - 1  # region-sud and mobilite were already there
    # 12 generated, the IRVE sample, GTFS, SCDL subsidies and decisions, the national IRVE example
    assert report.datasets == 17 and report.datastore_rows == 500 and report.files == 1 + 2 + 2 + 1 + 1
    gtfs = world.catalog.package_show(anonymous, "transports-en-commun-gtfs")["resources"]
    assert [r["name"] for r in gtfs] == ["Réseau de bus (GTFS)", "Exemple de flux GTFS (référence)"]
    # Every uploaded file is certified: one log entry each, and the GTFS zip verifies offline.
    with TransparencyLog(ledger_directory(world.home), readonly=True) as log:
        assert log.size == report.files
    path, _ = world.catalog.resource_file(
        anonymous, "transports-en-commun-gtfs", gtfs[0]["id"], "reseau-bus-demo.gtfs.zip"
    )
    assert {"stops.txt", "stop_times.txt", "trips.txt"} <= set(
        zipfile.ZipFile(io.BytesIO(path.read_bytes())).namelist()
    )
    proof = Certifier.for_home(world.home).proof(anonymous, gtfs[0]["id"])
    assert verify_publication(path.read_bytes(), proof).entry["resource_id"] == gtfs[0]["id"]
    found = search_documents(world.catalog.active_documents(anonymous), q="IRVE", facet_fields=["organization"])
    assert found["count"] >= 1 and "region-sud" in found["facets"]["organization"]
    irve = world.catalog.package_show(anonymous, "bornes-irve-region")["resources"][0]
    # The IRVE table has the schema's fields; INSEE codes stay text (Gap is 05061, the leading zero kept).
    rows = datastore.search(
        anonymous, world.catalog, engine, irve["id"], filters={"code_insee_commune": "05061"}, limit=0
    )
    assert rows["total"] > 0
    assert [f["id"] for f in rows["fields"]][-40:] == [
        f["name"] for f in schemas.resolve(IRVE_SCHEMA).descriptor()["fields"]
    ]
    _assert_declared_schemas_validate(world, anonymous)
    again = build_demo(admin, world.catalog, engine, datasets=12, reference=reference)
    assert (again.organizations, again.groups, again.datasets, again.datastore_rows, again.files) == (0, 0, 0, 0, 0)


def test_only_a_platform_admin_builds_the_demo(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    with pytest.raises(AccessDenied):
        build_demo(world.caller("alice"), world.catalog, engine, datasets=1)


def _assert_declared_schemas_validate(world: OpenDataWorld, anonymous: Caller) -> None:
    """Every demo file that declares a schema is valid against it, except the one broken on purpose."""
    declared = {
        resource["name"]: resource
        for name in (
            "bornes-irve-region",
            "subventions-region-sud",
            "deliberations-avignon",
            "bornes-irve-exemple-national",
        )
        for resource in world.catalog.package_show(anonymous, name)["resources"]
        if resource.get("schema_id")
    }
    assert set(declared) == {
        "IRVE statique",
        "Subventions 2025",
        "Subventions 2024 (export brut, non conforme)",
        "Délibérations 2025",
        "IRVE statique, exemple du schéma national",
    }
    broken = declared.pop("Subventions 2024 (export brut, non conforme)")
    for title, resource in declared.items():
        assert (title, resource["validation_status"], resource["validation_errors"]) == (title, "success", 0)
        report = schemas.validation_show(anonymous, world.catalog, resource["id"])["report"]
        assert report["status"] == "success" and report["rows"] > 0, title
    # The raw export fails honestly: two errors a row (decimal comma, boolean not oui/non), named by field.
    assert (broken["validation_status"], broken["validation_errors"]) == ("failure", 80)
    report = schemas.validation_show(anonymous, world.catalog, broken["id"])["report"]
    assert {error["field"] for error in report["errors"]} == {"montant", "notificationUE"}
    assert "invalid (80 errors)" in schemas.badge(anonymous, world.catalog, broken["id"], lang="en")
