"""The generated demo catalog: published through the guarded services, searchable, its IRVE sample queryable."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from opendata_world import OpenDataWorld

from massalia.engine.duckdb import DuckDBEngine
from massalia.governance import AccessDenied
from massalia.ledger import TransparencyLog
from massalia.opendata import datastore
from massalia.opendata.certify import Certifier, ledger_directory, verify_publication
from massalia.opendata.demo import build_demo
from massalia.opendata.search import search_documents


def test_the_demo_catalog_is_published_searchable_and_idempotent(
    world: OpenDataWorld, engine: DuckDBEngine, reference: Path
) -> None:
    admin, anonymous = world.caller("admin"), world.caller("anonymous")
    report = build_demo(admin, world.catalog, engine, datasets=12, reference=reference)
    assert report.organizations == 7 - 1 and report.groups == 8 - 1  # region-sud and mobilite were already there
    # 12 generated, the IRVE sample, GTFS, SCDL subsidies and decisions, the national IRVE example
    assert report.datasets == 17 and report.datastore_rows == 500 and report.files == 1 + 2 + 1 + 1 + 1
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
    rows = datastore.search(anonymous, world.catalog, engine, irve["id"], filters={"commune": "Gap"}, limit=0)
    assert rows["total"] > 0
    again = build_demo(admin, world.catalog, engine, datasets=12, reference=reference)
    assert (again.organizations, again.groups, again.datasets, again.datastore_rows, again.files) == (0, 0, 0, 0, 0)


def test_only_a_platform_admin_builds_the_demo(world: OpenDataWorld, engine: DuckDBEngine) -> None:
    with pytest.raises(AccessDenied):
        build_demo(world.caller("alice"), world.catalog, engine, datasets=1)
